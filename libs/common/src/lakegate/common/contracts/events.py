"""Public events: CloudEvents 1.0 (structured JSON mode) on `events.<tenant>.sync.completed|failed`."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from lakegate.common.contracts.base import Message
from lakegate.common.contracts.runs import (
    DELETED_ROWS_DESCRIPTION,
    ColumnMapping,
    Cursor,
    ErrorInfo,
    SchemaChange,
    SyncMode,
    TableRef,
)
from pydantic import Field

SYNC_COMPLETED = "io.lakegate.sync.completed.v1"
SYNC_FAILED = "io.lakegate.sync.failed.v1"


class SyncOutcome(Message):
    """What a finished sync did; the `data` of both public sync events."""

    run_id: str
    tenant_id: str
    connection_id: str
    source_table: str = Field(description="`schema.table` in the source database.")
    target: TableRef
    sync_mode: SyncMode
    status: Literal["succeeded", "failed", "cancelled"]
    row_count: int | None = None
    bytes: int | None = None
    deleted_rows: int | None = Field(default=None, description=DELETED_ROWS_DESCRIPTION)
    duration_seconds: float | None = None
    columns: list[ColumnMapping] = Field(default_factory=list)
    error: ErrorInfo | None = None
    schema_changes: list[SchemaChange] = Field(default_factory=list)
    cursor: Cursor | None = None
    schedule_id: str | None = None


class SyncEvent(Message):
    """A CloudEvents 1.0 envelope around a SyncOutcome."""

    specversion: Literal["1.0"] = "1.0"
    id: str = Field(description="Unique per event; equal ids are the same event delivered twice.")
    source: str = Field(description="URI reference of the producer, e.g. '/lakegate/catalog'.")
    type: Literal["io.lakegate.sync.completed.v1", "io.lakegate.sync.failed.v1"]
    subject: str = Field(description="The run id.")
    time: datetime
    datacontenttype: Literal["application/json"] = "application/json"
    data: SyncOutcome
