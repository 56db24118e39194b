"""Results of the lakehouse tools: query rows, table listings, descriptions and previews."""

from __future__ import annotations

from typing import Any

from lakegate.common.contracts.warehouse import QueryResult, TableDescription, TableList, TableSummary
from lakegate.edge.results.base import ToolResult
from pydantic import Field


def qualified_name(catalog: str, table_name: str) -> str:
    """`table`, `layer.table` or `catalog.layer.table` written out in full, for display (the loader decides)."""
    parts = [part.strip("`") for part in table_name.strip().lower().split(".")]
    if len(parts) == 1:
        return f"{catalog}.bronze.{parts[0]}"
    if len(parts) == 2:
        return f"{catalog}.{parts[0]}.{parts[1]}"
    return ".".join(parts)


class ResultColumnInfo(ToolResult):
    name: str
    type: str = Field(description="Arrow type of the column, e.g. 'decimal128(38, 10)'.")


class SqlQueryResult(ToolResult):
    """Rows of a read-only query. Decimals and large integers are exact strings, timestamps ISO 8601."""

    columns: list[ResultColumnInfo]
    rows: list[list[Any]]
    row_count: int
    truncated: bool = Field(description="True when more rows existed than max_rows; narrow the query or add LIMIT.")

    @classmethod
    def of(cls, result: QueryResult) -> SqlQueryResult:
        return cls(
            columns=[ResultColumnInfo(name=c.name, type=c.type) for c in result.columns],
            rows=result.rows,
            row_count=result.row_count,
            truncated=result.truncated,
        )


class PreviewResult(ToolResult):
    """The first rows of one lakehouse table."""

    table_name: str = Field(description="`<catalog>.<layer>.<name>`, as written in SQL.")
    columns: list[ResultColumnInfo]
    rows: list[list[Any]]
    row_count: int
    truncated: bool = Field(description="True when the table has more rows than were shown.")

    @classmethod
    def of_table(cls, table_name: str, result: QueryResult) -> PreviewResult:
        return cls(table_name=table_name, **SqlQueryResult.of(result).model_dump())


class TableInfo(ToolResult):
    table_name: str = Field(description="`<catalog>.<layer>.<name>`, as written in SQL.")
    name: str = Field(description="The table's own name, without catalog and layer.")
    layer: str
    row_count: int
    size_bytes: int
    version: int | None = Field(default=None, description="Delta table version, when the warehouse has one.")

    @classmethod
    def of(cls, table: TableSummary) -> TableInfo:
        return cls(
            table_name=str(table.ref),
            name=table.ref.name,
            layer=table.layer,
            row_count=table.row_count,
            size_bytes=table.size_bytes,
            version=table.table_version,
        )


class TableListResult(ToolResult):
    """Tables of one layer of your lakehouse catalog."""

    layer: str
    tables: list[TableInfo]
    next_offset: int | None = Field(default=None, description="Pass as `offset` for the next page; None at the end.")

    @classmethod
    def of(cls, layer: str, listing: TableList) -> TableListResult:
        return cls(layer=layer, tables=[TableInfo.of(t) for t in listing.tables], next_offset=listing.next_offset)


#: Most JSON bytes of columns one describe_table answer shows, well under a client's 1 MiB message.
DESCRIPTION_BYTES = 512 * 1024


class ColumnInfo(ToolResult):
    name: str
    type: str
    nullable: bool
    source_type: str | None = Field(default=None, description="Type at the source, e.g. `character(25)`.")
    null_count: int | None = Field(default=None, description="Rows where the column is NULL.")
    distinct_estimate: int | None = Field(default=None, description="Approximate number of distinct values.")
    min: Any = Field(default=None, description="Smallest value; None for types without order.")
    max: Any = Field(default=None, description="Largest value; None for types without order.")


class TableDescriptionResult(ToolResult):
    """Columns and statistics of one lakehouse table."""

    table_name: str = Field(description="`<catalog>.<layer>.<name>`, as written in SQL.")
    columns: list[ColumnInfo]
    column_count: int = Field(default=0, description="How many columns the table has.")
    columns_truncated: bool = Field(
        default=False,
        description="True when only the first columns are shown, to keep the answer a readable size; "
        "query_sql with `DESCRIBE <table>` lists every name and type.",
    )
    row_count: int
    size_bytes: int
    version: int | None = None
    properties: dict[str, str] = Field(default_factory=dict)

    @classmethod
    def of(cls, description: TableDescription) -> TableDescriptionResult:
        columns: list[ColumnInfo] = []
        size = 0
        for column in description.columns:
            shown = ColumnInfo(**column.model_dump(exclude={"version"}))
            size += len(shown.model_dump_json())
            if size > DESCRIPTION_BYTES:
                break
            columns.append(shown)
        return cls(
            table_name=str(description.ref),
            columns=columns,
            column_count=len(description.columns),
            columns_truncated=len(columns) < len(description.columns),
            row_count=description.row_count,
            size_bytes=description.size_bytes,
            version=description.table_version,
            properties=description.properties,
        )
