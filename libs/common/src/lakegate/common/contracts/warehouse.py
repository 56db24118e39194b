"""Requests the loader answers about the warehouse: SQL, table listings, descriptions."""

from __future__ import annotations

from typing import Any, Literal

from lakegate.common.contracts.base import Message, TenantScoped
from lakegate.common.contracts.rpc import CALL_ID_DESCRIPTION
from lakegate.common.contracts.runs import TableRef
from pydantic import Field


class RunQuery(TenantScoped):
    sql: str = Field(description="One read-only statement in Databricks SQL.")
    max_rows: int = Field(default=1000, ge=1, le=100_000)
    call_id: str | None = Field(default=None, description=CALL_ID_DESCRIPTION)


class ResultColumn(Message):
    name: str
    type: str = Field(description="Arrow type of the column, e.g. 'decimal128(38, 10)'.")


class QueryResult(Message):
    """Rows as JSON values that lose nothing: integers as numbers, decimals as strings in plain
    notation, timestamps as ISO 8601 (instants in UTC with '+00:00'), bytes as base64, NaN and
    infinities as strings. The loader's README has the whole table."""

    columns: list[ResultColumn]
    rows: list[list[Any]]
    row_count: int
    truncated: bool = Field(description="True when more rows existed than max_rows; narrow the query or add LIMIT.")


class ListTables(TenantScoped):
    layer: str = "bronze"
    limit: int = Field(default=100, ge=1, le=1000)
    offset: int = Field(default=0, ge=0)


class TableSummary(Message):
    ref: TableRef
    layer: str
    row_count: int
    size_bytes: int
    table_version: int | None = Field(default=None, description="Delta table version; None if the warehouse has none.")
    kind: Literal["table", "view"] = Field(
        default="table", description="`view` for gold views: no files of their own; rows counted now, -1 if that fails."
    )


class TableList(Message):
    tables: list[TableSummary]
    next_offset: int | None = Field(default=None, description="Pass as `offset` for the next page; None at the end.")


class DescribeTable(TenantScoped):
    with_stats: bool = Field(default=True, description="Compute per-column nulls, distinct estimate, min and max.")
    table_name: str = Field(description="`table`, `layer.table` or `catalog.layer.table`; layer defaults to bronze.")
    call_id: str | None = Field(default=None, description=CALL_ID_DESCRIPTION)


class WarehouseColumn(Message):
    name: str
    type: str
    nullable: bool
    source_type: str | None = Field(
        default=None,
        description="The column's type at the source, e.g. `character(25)`, when a sync wrote it; how it behaves "
        "in SQL is in the loader's README.",
    )
    null_count: int | None = None
    distinct_estimate: int | None = None
    min: Any = Field(default=None, description="Smallest value, as a JSON value; None for types without order.")
    max: Any = None


class TableDescription(Message):
    ref: TableRef
    columns: list[WarehouseColumn]
    row_count: int
    size_bytes: int
    table_version: int | None = Field(default=None, description="Delta table version; None if the warehouse has none.")
    properties: dict[str, str] = Field(default_factory=dict)
    kind: Literal["table", "view"] = Field(default="table", description="`view` for gold views.")
