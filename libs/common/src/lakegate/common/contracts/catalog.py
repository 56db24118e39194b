"""Datasets the catalog knows: which warehouse table came from which source table."""

from __future__ import annotations

from datetime import datetime

from lakegate.common.contracts.base import Message, TenantScoped
from lakegate.common.contracts.runs import ColumnMapping, TableRef
from pydantic import Field


class Dataset(Message):
    target: TableRef
    connection_id: str | None
    source_table: str | None = Field(description="`schema.table` in the source, for synced tables.")
    row_count: int | None
    columns: list[ColumnMapping]
    last_run_id: str | None
    updated_at: datetime


class ListDatasets(TenantScoped):
    pass


class DatasetList(Message):
    datasets: list[Dataset]
