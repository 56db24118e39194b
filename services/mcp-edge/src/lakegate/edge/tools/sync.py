"""Tools about sync runs: copy a source table into bronze, and follow a run."""

from __future__ import annotations

from typing import Annotated

from lakegate.common.contracts.runs import RunRef, RunView, StartRun, SyncMode
from lakegate.edge.backend import Backend
from lakegate.edge.failures import run_failure, tool_errors
from lakegate.edge.results import SyncRunResult
from lakegate.edge.run_watch import RunWatch
from mcp.server.mcpserver import Context, MCPServer
from mcp.types import ToolAnnotations
from pydantic import Field


def add_sync_tools(server: MCPServer, backend: Backend, watch: RunWatch) -> None:
    """Register sync_table_to_bronze and get_sync_run."""
    rpc, topology, settings = backend.rpc, backend.topology, backend.settings

    @server.tool(
        annotations=ToolAnnotations(
            title="Sync a source table into bronze",
            read_only_hint=False,
            destructive_hint=True,
            idempotent_hint=False,
            open_world_hint=True,
        )
    )
    @tool_errors
    async def sync_table_to_bronze(
        ctx: Context,
        connection_id: Annotated[str, Field(description="Id of a registered source, as connect_postgres returned it.")],
        table_name: Annotated[
            str, Field(description="`table` or `schema.table` in the source; schema defaults to public.")
        ],
        sync_mode: Annotated[
            SyncMode,
            Field(
                description=(
                    "`full` replaces the bronze table atomically; `incremental` appends rows past the stored "
                    "cursor; `merge` upserts on the primary key."
                )
            ),
        ] = "full",
    ) -> SyncRunResult:
        """Copy one source table into the lakehouse's bronze layer and wait for it to finish.

        Reports progress while it waits. A run that takes longer than the edge waits comes back as a
        handle with its status: follow it with get_sync_run.
        """
        start = StartRun(
            tenant_id=backend.tenant(), connection_id=connection_id, table_name=table_name, sync_mode=sync_mode
        )
        run = await rpc.call(topology.runs_start, start, RunView)
        run = await watch.follow(run, settings.sync_wait_seconds, ctx.report_progress)
        if run.status == "failed":
            raise run_failure(run)
        return SyncRunResult.of(run)

    @server.tool(
        annotations=ToolAnnotations(
            title="Get a sync run", read_only_hint=True, idempotent_hint=True, open_world_hint=False
        )
    )
    @tool_errors
    async def get_sync_run(
        run_id: Annotated[str, Field(description="Id of a run, as sync_table_to_bronze returned it.")],
    ) -> SyncRunResult:
        """Show a sync run: its status, row count, timings, and the error when it failed."""
        run = await rpc.call(topology.runs_get, RunRef(tenant_id=backend.tenant(), run_id=run_id), RunView)
        return SyncRunResult.of(run)
