"""Sync runs: the command that starts one, the steps it reports, and how anyone sees it."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from lakegate.common.contracts.base import Message, TenantScoped
from pydantic import Field

SyncMode = Literal["full", "incremental", "merge"]
RunStatus = Literal["queued", "extracting", "loading", "succeeded", "failed"]
TERMINAL_STATUSES: frozenset[str] = frozenset({"succeeded", "failed"})


class TableRef(Message):
    """A table in the warehouse: `<catalog>.<schema>.<name>`."""

    catalog: str
    schema_name: str
    name: str

    def __str__(self) -> str:
        return f"{self.catalog}.{self.schema_name}.{self.name}"


class StartRun(TenantScoped):
    """Catalog: record a run and send it to the extractor."""

    connection_id: str
    table_name: str = Field(description="`table` or `schema.table` in the source.")
    sync_mode: SyncMode = "full"


class RunRef(TenantScoped):
    run_id: str


class ErrorInfo(Message):
    code: str = Field(description="Error code from lakegate's taxonomy, e.g. 'not_found'.")
    message: str = Field(description="What went wrong and what to do about it.")
    transient: bool = False


class ColumnMapping(Message):
    """How one source column was written to the warehouse."""

    name: str
    source_type: str
    arrow_type: str
    mapped: bool = Field(description="False when the source type had no explicit mapping and became text.")


class RunView(Message):
    """A run as the edge and any client see it."""

    run_id: str
    tenant_id: str
    connection_id: str
    source_table: str
    target: TableRef
    sync_mode: SyncMode
    status: RunStatus
    row_count: int | None = None
    bytes: int | None = None
    columns: list[ColumnMapping] = Field(default_factory=list)
    error: ErrorInfo | None = None
    created_at: datetime
    started_at: datetime | None = None
    finished_at: datetime | None = None
    duration_seconds: float | None = Field(
        default=None, description="Seconds from start (or creation) to finish; None until the run finishes."
    )
    rows_per_second: float | None = Field(
        default=None, description="Rows written per second of duration; None until the run succeeds."
    )


class ExtractTable(Message):
    """Command `cmd.extract`: stream one source table out to staging."""

    tenant_id: str
    run_id: str
    connection_id: str
    source_schema: str
    source_table: str
    target: TableRef
    sync_mode: SyncMode


class Extracting(Message):
    """Step `run.<id>.extracting`: an extractor took the run."""

    tenant_id: str
    run_id: str
    attempt: str


class StagedParts(Message):
    """Where the parts of one extraction attempt wait for the loader."""

    store: Literal["jetstream", "memory", "directory"] = "jetstream"
    location: str = Field(description="Subject (jetstream) or path (directory) holding the parts.")
    parts: int
    bytes: int = Field(description="Compressed bytes staged.")


class Extracted(Message):
    """Step `run.<id>.extracted`: every part is staged; the loader may commit."""

    tenant_id: str
    run_id: str
    target: TableRef
    sync_mode: SyncMode
    arrow_schema: str = Field(description="The Arrow schema of every part, as base64 Arrow IPC.")
    columns: list[ColumnMapping]
    row_count: int
    staged: StagedParts
    primary_key: list[str] = Field(default_factory=list, description="The source table's primary key columns.")


class Loading(Message):
    """Step `run.<id>.loading`: a loader took the staged parts."""

    tenant_id: str
    run_id: str


class Loaded(Message):
    """Step `run.<id>.loaded`: the warehouse committed the run."""

    tenant_id: str
    run_id: str
    target: TableRef
    row_count: int
    bytes: int
    table_version: int | None = Field(default=None, description="Delta table version of the commit, if any.")


class Failed(Message):
    """Step `run.<id>.failed`: the run cannot finish; the target is as it was."""

    tenant_id: str
    run_id: str
    step: str = Field(description="Which step failed: 'extract' or 'load'.")
    error: ErrorInfo


class Progress(Message):
    """Core-NATS `progress.<run_id>`: lossy, for showing progress only."""

    run_id: str
    step: Literal["extracting", "loading"]
    rows: int
