"""Tools about the lakehouse: SQL queries, table listings and descriptions."""

from __future__ import annotations

from typing import Annotated, Literal

from lakegate.common.contracts.warehouse import (
    DescribeTable,
    ListTables,
    QueryResult,
    RunQuery,
    TableDescription,
    TableList,
)
from lakegate.edge.backend import Backend
from lakegate.edge.failures import tool_errors
from lakegate.edge.results import SqlQueryResult, TableDescriptionResult, TableListResult
from mcp.server.mcpserver import MCPServer
from mcp.types import ToolAnnotations
from pydantic import Field

READS_LAKEHOUSE = ToolAnnotations(read_only_hint=True, idempotent_hint=True, open_world_hint=False)


def add_warehouse_tools(server: MCPServer, backend: Backend) -> None:
    """Register query_sql, list_tables and describe_table."""
    rpc, topology, settings = backend.rpc, backend.topology, backend.settings

    @server.tool(annotations=READS_LAKEHOUSE.model_copy(update={"title": "Query the lakehouse with SQL"}))
    @tool_errors
    async def query_sql(
        sql: Annotated[
            str,
            Field(
                description=(
                    "One read-only statement in Databricks SQL over your own tables, written "
                    "`<catalog>.<layer>.<table>` as list_tables shows them."
                ),
                min_length=1,
            ),
        ],
        max_rows: Annotated[int, Field(description="Most rows to return.", ge=1, le=100_000)] = 1000,
    ) -> SqlQueryResult:
        """Run one read-only SQL query on the lakehouse and return its rows."""
        query = RunQuery(tenant_id=backend.tenant(), sql=sql, max_rows=max_rows)
        result = await rpc.call(topology.warehouse_query, query, QueryResult, timeout=settings.query_timeout_seconds)
        return SqlQueryResult.of(result)

    @server.tool(annotations=READS_LAKEHOUSE.model_copy(update={"title": "List lakehouse tables"}))
    @tool_errors
    async def list_tables(
        layer: Annotated[
            Literal["bronze", "silver", "gold"],
            Field(description="`bronze` holds raw synced tables, `silver` cleaned ones, `gold` curated views."),
        ] = "bronze",
    ) -> TableListResult:
        """List the tables of one layer of your lakehouse catalog, with row counts and sizes."""
        listing = await rpc.call(
            topology.warehouse_tables_list, ListTables(tenant_id=backend.tenant(), layer=layer), TableList
        )
        return TableListResult.of(layer, listing)

    @server.tool(annotations=READS_LAKEHOUSE.model_copy(update={"title": "Describe a lakehouse table"}))
    @tool_errors
    async def describe_table(
        table_name: Annotated[
            str,
            Field(description="`table`, `layer.table` or `catalog.layer.table`; the layer defaults to bronze."),
        ],
    ) -> TableDescriptionResult:
        """Show the columns, types, row count and size of one lakehouse table."""
        request = DescribeTable(tenant_id=backend.tenant(), table_name=table_name)
        return TableDescriptionResult.of(await rpc.call(topology.warehouse_tables_describe, request, TableDescription))
