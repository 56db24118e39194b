"""Warehouse-side work beyond loads: bronze → silver transforms, gold views, file uploads, previews.

A silver spec is declarative: a list of steps applied in order. The loader validates every column
name and type against the bronze table and builds the SQL from a parsed syntax tree, never by
pasting text.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from lakegate.common.contracts.base import Message, TenantScoped
from lakegate.common.contracts.rpc import CALL_ID_DESCRIPTION
from lakegate.common.contracts.runs import ColumnMapping, TableRef
from pydantic import Field

#: Types a cast may target, in Databricks SQL spelling; `decimal(p,s)` is also accepted.
CAST_TYPES = ("string", "boolean", "smallint", "int", "bigint", "float", "double", "date", "timestamp", "timestamp_ntz")


class Rename(Message):
    kind: Literal["rename"] = "rename"
    column: str
    to: str = Field(description="New name: letters, digits and _, starting with a letter or _.")


class Cast(Message):
    kind: Literal["cast"] = "cast"
    column: str
    to: str = Field(description=f"One of {', '.join(CAST_TYPES)} or decimal(p,s).")
    on_error: Literal["fail", "null"] = Field(
        default="fail", description="`fail` stops the transform on a value that does not cast; `null` keeps NULL."
    )


class Trim(Message):
    kind: Literal["trim"] = "trim"
    columns: list[str] | None = Field(default=None, description="String columns to trim; all of them when omitted.")
    empty_as_null: bool = Field(default=False, description="Also turn strings that are empty after trimming to NULL.")


class FillNull(Message):
    kind: Literal["fill_null"] = "fill_null"
    column: str
    value: str | int | float | bool


class DropNull(Message):
    kind: Literal["drop_null"] = "drop_null"
    columns: list[str] = Field(description="Rows with NULL in any of these columns are removed.")


class Filter(Message):
    kind: Literal["filter"] = "filter"
    column: str
    op: Literal["=", "!=", "<", "<=", ">", ">=", "in", "not_in", "is_null", "is_not_null", "like"]
    value: Any = Field(default=None, description="A literal, or a list of literals for `in` / `not_in`.")


class Dedupe(Message):
    kind: Literal["dedupe"] = "dedupe"
    keys: list[str] = Field(description="Columns that identify a row; one row per key is kept.")
    latest_by: str | None = Field(
        default=None, description="Keep the row with the greatest value here (ties: any one, deterministically)."
    )


SilverStep = Annotated[Rename | Cast | Trim | FillNull | DropNull | Filter | Dedupe, Field(discriminator="kind")]


class SilverSpec(Message):
    steps: list[SilverStep] = Field(default_factory=list)
    target_name: str | None = Field(default=None, description="Silver table name; the bronze name by default.")


class TransformToSilver(TenantScoped):
    bronze_table: str = Field(description="`table`, `bronze.table` or `<catalog>.bronze.table`.")
    spec: SilverSpec | None = Field(default=None, description="No spec: keep types, remove exact duplicate rows.")
    call_id: str | None = Field(default=None, description=CALL_ID_DESCRIPTION)


class TransformResult(Message):
    source: TableRef
    target: TableRef
    rows_in: int
    rows_out: int
    columns: list[ColumnMapping] = Field(description="Output columns; `source_type` is the bronze type.")
    sql: str = Field(description="The statement that built the table, in Databricks SQL.")
    table_version: int | None = None


class CreateGoldView(TenantScoped):
    name: str = Field(description="View name in the gold layer.")
    sql: str = Field(description="One SELECT over silver and gold tables, in Databricks SQL.")
    call_id: str | None = Field(default=None, description=CALL_ID_DESCRIPTION)


class GoldView(Message):
    ref: TableRef
    sql: str
    columns: list[ColumnMapping]
    upstream: list[TableRef]


class UploadFile(TenantScoped):
    file_name: str = Field(description="Name with extension: .csv, .tsv, .json, .ndjson/.jsonl, .parquet, .xlsx.")
    dataset_name: str = Field(description="Bronze table name to create or replace.")
    content_base64: str
    call_id: str | None = Field(default=None, description=CALL_ID_DESCRIPTION)


class UploadResult(Message):
    ref: TableRef
    format: str
    row_count: int
    columns: list[ColumnMapping] = Field(description="Inferred columns; `source_type` is what the file said.")
    table_version: int | None = None


class PreviewTable(TenantScoped):
    table_name: str
    limit: int = Field(default=20, ge=1, le=1000)
    call_id: str | None = Field(default=None, description=CALL_ID_DESCRIPTION)


class DatasetRecord(Message):
    """Command `cmd.datasets.record` (loader → catalog): a warehouse table was created or replaced."""

    tenant_id: str
    target: TableRef
    kind: Literal["silver", "gold", "upload"]
    upstream: list[TableRef] = Field(default_factory=list)
    row_count: int | None = None
    columns: list[ColumnMapping] = Field(default_factory=list)
    definition: str | None = Field(default=None, description="SQL that defines it (silver, gold).")
    file_name: str | None = None
