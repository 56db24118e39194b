"""Tools about sync runs: copy a source table into bronze, follow a run, and list past runs."""

from __future__ import annotations

from typing import Annotated

from lakegate.common.contracts.catalog import ListRuns, RunList
from lakegate.common.contracts.runs import RunRef, RunView, StartRun, SyncMode
from lakegate.edge.backend import Backend
from lakegate.edge.results.base import Offset
from lakegate.edge.results.runs import RunListResult, SyncRunResult
from lakegate.edge.run_watch import RunWatch
from mcp.server.mcpserver import Context, MCPServer
from mcp.types import ToolAnnotations
from pydantic import Field

READS_CATALOG = ToolAnnotations(
    read_only_hint=True, destructive_hint=False, idempotent_hint=True, open_world_hint=False
)


def add_sync_tools(server: MCPServer, backend: Backend, watch: RunWatch) -> None:
    """Register sync_table_to_bronze, get_sync_run and list_sync_runs."""
    topology, settings, failures = backend.topology, backend.settings, backend.failures
    guard = failures.tool_errors

    @server.tool(
        annotations=ToolAnnotations(
            title="Sync a source table into bronze",
            read_only_hint=False,
            destructive_hint=True,
            idempotent_hint=False,
            open_world_hint=True,
        )
    )
    @guard
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
        run = await backend.call(topology.runs_start, start, RunView)
        run = failures.public_run(await watch.follow(run, settings.sync_wait_seconds, ctx.report_progress))
        if run.status == "failed":
            raise failures.run_failure(run)
        return SyncRunResult.of(run)

    @server.tool(annotations=READS_CATALOG.model_copy(update={"title": "Get a sync run"}))
    @guard
    async def get_sync_run(
        run_id: Annotated[str, Field(description="Id of a run, as sync_table_to_bronze returned it.")],
    ) -> SyncRunResult:
        """Show a sync run: its status, row count, columns, timings, and the error when it failed."""
        run = await backend.call(topology.runs_get, RunRef(tenant_id=backend.tenant(), run_id=run_id), RunView)
        return SyncRunResult.of(failures.public_run(run))

    @server.tool(annotations=READS_CATALOG.model_copy(update={"title": "List sync runs"}))
    @guard
    async def list_sync_runs(
        connection_id: Annotated[
            str | None, Field(description="Only the runs of this source; all your runs when omitted.")
        ] = None,
        offset: Offset = 0,
        limit: Annotated[int, Field(description="Most runs to return.", ge=1, le=500)] = 50,
    ) -> RunListResult:
        """List your sync runs, newest first: status, rows, duration and errors. Use get_sync_run for one in full."""
        request = ListRuns(tenant_id=backend.tenant(), connection_id=connection_id, offset=offset, limit=limit)
        listing = await backend.call(topology.runs_list, request, RunList)
        return RunListResult(
            runs=[SyncRunResult.of(failures.public_run(run), with_columns=False) for run in listing.runs],
            next_offset=listing.next_offset,
        )
