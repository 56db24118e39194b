"""The MCP server and its tools."""

from __future__ import annotations

from lakegate.edge.backend import Backend
from lakegate.edge.run_watch import RunWatch
from lakegate.edge.tools.sources import add_source_tools
from lakegate.edge.tools.sync import add_sync_tools
from lakegate.edge.tools.warehouse import add_warehouse_tools
from mcp.server.mcpserver import MCPServer

INSTRUCTIONS = """\
lakegate brings PostgreSQL tables into a lakehouse and answers SQL over them.
Typical flow: connect_postgres (once per database) → list_source_tables → sync_table_to_bronze
→ list_tables / describe_table → query_sql. Tables are named <catalog>.<layer>.<table>; bronze
holds raw synced copies. A long sync returns a run handle: follow it with get_sync_run.
"""


def create_server(backend: Backend) -> MCPServer:
    """An MCP server whose tools call the catalog, the extractor and the loader through `backend`."""
    server = MCPServer("lakegate", title="lakegate", instructions=INSTRUCTIONS, version="0.1.0")
    add_source_tools(server, backend)
    add_sync_tools(server, backend, RunWatch(backend.runtime))
    add_warehouse_tools(server, backend)
    return server
