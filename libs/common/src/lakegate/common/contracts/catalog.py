"""Datasets the catalog knows (which warehouse table came from where), and its listings."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from lakegate.common.contracts.base import Message, TenantScoped
from lakegate.common.contracts.runs import ColumnMapping, RunView, TableRef
from pydantic import Field


class Dataset(Message):
    target: TableRef
    connection_id: str | None
    source_table: str | None = Field(description="`schema.table` in the source, for synced tables.")
    row_count: int | None
    columns: list[ColumnMapping]
    last_run_id: str | None
    updated_at: datetime
    kind: Literal["synced", "silver", "gold", "upload"] = "synced"
    upstream: list[TableRef] = Field(default_factory=list, description="Warehouse tables it was built from.")
    keys: list[str] = Field(default_factory=list, description="Known key columns (the source's primary key).")
    definition: str | None = Field(default=None, description="SQL that defines it (silver, gold).")
    last_synced_at: datetime | None = Field(default=None, description="When the last successful sync finished.")
    file_name: str | None = Field(default=None, description="The file an uploaded table was loaded from.")


class ListDatasets(TenantScoped):
    limit: int = Field(default=100, ge=1, le=1000)
    offset: int = Field(default=0, ge=0)


class DatasetList(Message):
    datasets: list[Dataset]
    next_offset: int | None = Field(default=None, description="Pass as `offset` for the next page; None at the end.")


class ListRuns(TenantScoped):
    connection_id: str | None = None
    limit: int = Field(default=50, ge=1, le=500)
    offset: int = Field(default=0, ge=0)


class RunList(Message):
    runs: list[RunView] = Field(description="Newest first.")
    next_offset: int | None = None
