"""Results of the lakehouse tools: query rows, table listings, descriptions and previews."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from lakegate.common.contracts.warehouse import QueryResult, TableDescription, TableList, TableSummary
from lakegate.edge.budget import answer, compact_json, within_budget
from lakegate.edge.results.base import ToolResult
from mcp.types import CallToolResult
from pydantic import Field

#: Rows quoted in an answer's text block, for clients that read only text; all rows are in the structured content.
TEXT_SAMPLE_ROWS = 10
TEXT_SAMPLE_BYTES = 4096


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
    row_count: int = Field(description="Rows in this answer.")
    truncated: bool = Field(description="True when the query had more rows than this answer holds; see `note`.")
    note: str | None = Field(default=None, description="When truncated: why, and how to get the rest.")

    @classmethod
    def of(cls, result: QueryResult) -> SqlQueryResult:
        return cls(
            columns=[ResultColumnInfo(name=c.name, type=c.type) for c in result.columns],
            rows=result.rows,
            row_count=result.row_count,
            truncated=result.truncated,
            note=ROWS_LIMIT_NOTE if result.truncated else None,
        )


ROWS_LIMIT_NOTE = (
    "more rows exist than this answer holds (max_rows, or the service's result size limit): raise max_rows, "
    "aggregate, or page with ORDER BY <key> LIMIT n OFFSET <rows seen so far>"
)


PREVIEW_LIMIT_NOTE = "the table has more rows than `limit`: raise limit (up to 1000), or use query_sql"


def budget_note(kept: int, budget: int) -> str:
    """Why an answer stops after `kept` rows although more were read, and how to get the rest."""
    return (
        f"only the first {kept} rows fit in one answer of at most {budget} bytes (edge setting "
        "LAKEGATE_EDGE_ANSWER_MAX_BYTES): select fewer or narrower columns, or page with "
        f"ORDER BY <key> LIMIT {max(kept, 1)} OFFSET {kept} (if the query had an OFFSET already, add {kept} "
        "to it), moving OFFSET on by each answer's row_count until an answer is not truncated"
    )


def rows_text(result: SqlQueryResult, heading: str) -> str:
    """The compact text form of a rows answer: a summary and the first few rows as JSON lines."""
    columns = ", ".join(f"{c.name} {c.type}" for c in result.columns)
    lines = [f"{heading}: {result.row_count} rows; columns: {columns}"]
    if result.truncated:
        lines.append(f"truncated: {result.note}")
    sample: list[str] = []
    used = 0
    for row in result.rows[:TEXT_SAMPLE_ROWS]:
        line = compact_json(row)
        used += len(line) + 1
        if used > TEXT_SAMPLE_BYTES:
            break
        sample.append(line)
    if result.rows:
        shown = "all rows" if len(sample) == result.row_count else f"the first {len(sample)} rows"
        lines.append(f"{shown} below, one JSON array per row; every row is in the structured content `rows`:")
        lines.extend(sample)
    return "\n".join(lines)


def rows_answer(
    result: QueryResult, budget: int, heading: str, *, table_name: str | None = None, more: str = ROWS_LIMIT_NOTE
) -> CallToolResult:
    """The answer of query_sql / query_source, or of preview_table when `table_name` is given, within `budget` bytes.

    `more` is the note when the service itself stopped before the last row.
    """

    def build(rows: Sequence[list[Any]], cut: bool) -> CallToolResult:
        shown = SqlQueryResult.of(result).model_copy(
            update={"rows": list(rows), "row_count": len(rows), "note": more if result.truncated else None}
        )
        if cut:
            shown = shown.model_copy(update={"truncated": True, "note": budget_note(len(rows), budget)})
        final = shown if table_name is None else PreviewResult(table_name=table_name, **shown.model_dump())
        return answer(final, rows_text(shown, heading))

    return within_budget(result.rows, budget, build)


class PreviewResult(ToolResult):
    """The first rows of one lakehouse table."""

    table_name: str = Field(description="`<catalog>.<layer>.<name>`, as written in SQL.")
    columns: list[ResultColumnInfo]
    rows: list[list[Any]]
    row_count: int = Field(description="Rows in this answer.")
    truncated: bool = Field(description="True when the table has more rows than were shown; see `note`.")
    note: str | None = Field(default=None, description="When truncated: why, and how to see more.")

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
