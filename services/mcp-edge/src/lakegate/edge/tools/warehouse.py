"""Tools that read the lakehouse: SQL queries, table listings, descriptions, previews, and all metadata."""

from __future__ import annotations

from typing import Annotated, Literal

from lakegate.common.contracts.warehouse import ListTables, QueryResult, RunQuery, TableList
from lakegate.common.names import tenant_catalog
from lakegate.edge.backend import Backend
from lakegate.edge.briefings import describe, preview
from lakegate.edge.metadata import lakehouse_metadata
from lakegate.edge.results.base import Offset
from lakegate.edge.results.catalog import MetadataResult
from lakegate.edge.results.warehouse import (
    PREVIEW_LIMIT_NOTE,
    PreviewResult,
    SqlQueryResult,
    TableDescriptionResult,
    TableListResult,
    qualified_name,
    rows_answer,
)
from lakegate.edge.tools import SQL_MAX_CHARS
from mcp.server.mcpserver import MCPServer
from mcp.types import CallToolResult, ToolAnnotations
from pydantic import Field

READS_LAKEHOUSE = ToolAnnotations(
    read_only_hint=True, destructive_hint=False, idempotent_hint=True, open_world_hint=False
)
TableName = Annotated[
    str,
    Field(
        description="`table`, `layer.table` or `catalog.layer.table`, e.g. `silver.orders`; layer defaults to bronze.",
        min_length=1,
    ),
]


def add_warehouse_tools(server: MCPServer, backend: Backend) -> None:
    """Register query_sql, list_tables, describe_table, preview_table and get_metadata."""
    topology, settings, guard = backend.topology, backend.settings, backend.failures.tool_errors

    @server.tool(annotations=READS_LAKEHOUSE.model_copy(update={"title": "Query the lakehouse with SQL"}))
    @guard
    async def query_sql(
        sql: Annotated[
            str,
            Field(
                description=(
                    "One read-only statement in Databricks SQL over your own tables, written "
                    "`<catalog>.<layer>.<table>` (or `<layer>.<table>`) as list_tables shows them."
                ),
                min_length=1,
                max_length=SQL_MAX_CHARS,
            ),
        ],
        max_rows: Annotated[int, Field(description="Most rows to return.", ge=1, le=100_000)] = 1000,
    ) -> Annotated[CallToolResult, SqlQueryResult]:
        """Run one read-only SQL query on the lakehouse and return its rows.

        Only SELECT-like statements over your catalog run. An answer holds at most max_rows rows and about
        900 KB; `truncated` and `note` say when there is more and how to page with ORDER BY ... LIMIT ... OFFSET.
        """
        query = RunQuery(tenant_id=backend.tenant(), sql=sql, max_rows=max_rows)
        result = await backend.call(
            topology.warehouse_query, query, QueryResult, timeout=settings.query_timeout_seconds, cancels=True
        )
        return rows_answer(result, settings.answer_max_bytes, "query_sql")

    @server.tool(annotations=READS_LAKEHOUSE.model_copy(update={"title": "List lakehouse tables"}))
    @guard
    async def list_tables(
        layer: Annotated[
            Literal["bronze", "silver", "gold"],
            Field(description="`bronze` holds raw synced tables, `silver` cleaned ones, `gold` curated views."),
        ] = "bronze",
        offset: Offset = 0,
        limit: Annotated[int, Field(description="Most tables to return.", ge=1, le=1000)] = 100,
    ) -> TableListResult:
        """List the tables of one layer of your lakehouse catalog, with row counts and sizes.

        get_metadata shows every layer at once, with lineage. Pass next_offset as offset for the next page.
        """
        request = ListTables(tenant_id=backend.tenant(), layer=layer, offset=offset, limit=limit)
        return TableListResult.of(layer, await backend.call(topology.warehouse_tables_list, request, TableList))

    @server.tool(annotations=READS_LAKEHOUSE.model_copy(update={"title": "Describe a lakehouse table"}))
    @guard
    async def describe_table(
        table_name: TableName,
        with_stats: Annotated[
            bool,
            Field(description="Compute per-column NULL counts, distinct estimates, min and max (scans the table)."),
        ] = True,
    ) -> TableDescriptionResult:
        """Show the columns (types, nullability, statistics), row count and size of one lakehouse table."""
        return TableDescriptionResult.of(await describe(backend, table_name, with_stats=with_stats))

    @server.tool(annotations=READS_LAKEHOUSE.model_copy(update={"title": "Preview a lakehouse table"}))
    @guard
    async def preview_table(
        table_name: TableName,
        limit: Annotated[int, Field(description="Rows to show.", ge=1, le=1000)] = 20,
    ) -> Annotated[CallToolResult, PreviewResult]:
        """Show the first rows of one lakehouse table, without writing SQL (at most about 900 KB of them)."""
        shown = qualified_name(tenant_catalog(backend.tenant()), table_name)
        result = await preview(backend, table_name, limit)
        return rows_answer(
            result, settings.answer_max_bytes, f"preview of {shown}", table_name=shown, more=PREVIEW_LIMIT_NOTE
        )

    @server.tool(annotations=READS_LAKEHOUSE.model_copy(update={"title": "Everything in the lakehouse"}))
    @guard
    async def get_metadata() -> MetadataResult:
        """Show every table of your lakehouse in one call: bronze, silver and gold, with row counts, columns,
        known keys, and lineage from each PostgreSQL source table through bronze and silver to gold."""
        return await lakehouse_metadata(backend)
