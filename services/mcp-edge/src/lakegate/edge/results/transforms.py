"""Results of the tools that build tables: silver transforms, gold views and file uploads."""

from __future__ import annotations

from lakegate.common.contracts.transforms import GoldView, TransformResult, UploadResult
from lakegate.edge.results.base import ToolResult
from lakegate.edge.results.catalog import DatasetColumn
from pydantic import Field


class SilverTableResult(ToolResult):
    """A silver table built from a bronze one."""

    bronze_table: str
    silver_table: str = Field(description="`<catalog>.silver.<name>`; query it with query_sql.")
    rows_in: int
    rows_out: int
    rows_removed: int = Field(description="Rows the filters, NULL drops and dedupes removed.")
    columns: list[DatasetColumn] = Field(description="Output columns; `source_type` is the bronze type.")
    sql: str = Field(description="The statement that built the table, in Databricks SQL.")
    version: int | None = None
    hint: str

    @classmethod
    def of(cls, result: TransformResult) -> SilverTableResult:
        return cls(
            bronze_table=str(result.source),
            silver_table=str(result.target),
            rows_in=result.rows_in,
            rows_out=result.rows_out,
            rows_removed=result.rows_in - result.rows_out,
            columns=[DatasetColumn.of(c) for c in result.columns],
            sql=result.sql,
            version=result.table_version,
            hint=f"preview it with preview_table('{result.target}'); build gold views over it with create_gold_view",
        )


class GoldViewResult(ToolResult):
    """A gold view over silver and gold tables."""

    view_name: str = Field(description="`<catalog>.gold.<name>`; query it with query_sql.")
    sql: str
    columns: list[DatasetColumn]
    upstream: list[str] = Field(description="Tables the view reads.")
    hint: str

    @classmethod
    def of(cls, view: GoldView) -> GoldViewResult:
        return cls(
            view_name=str(view.ref),
            sql=view.sql,
            columns=[DatasetColumn.of(c) for c in view.columns],
            upstream=[str(ref) for ref in view.upstream],
            hint=f"query it with query_sql, e.g. SELECT * FROM {view.ref} LIMIT 10",
        )


class UploadedTableResult(ToolResult):
    """A file loaded into a bronze table."""

    table_name: str = Field(description="`<catalog>.bronze.<name>`; query it with query_sql.")
    format: str = Field(description="The format the file was read as, e.g. 'csv'.")
    row_count: int
    columns: list[DatasetColumn] = Field(description="Inferred columns; `source_type` is what the file said.")
    version: int | None = None
    hint: str

    @classmethod
    def of(cls, result: UploadResult) -> UploadedTableResult:
        return cls(
            table_name=str(result.ref),
            format=result.format,
            row_count=result.row_count,
            columns=[DatasetColumn.of(c) for c in result.columns],
            version=result.table_version,
            hint=(
                f"check the inferred types with describe_table('{result.ref}'); clean it into silver with "
                "transform_to_silver"
            ),
        )
