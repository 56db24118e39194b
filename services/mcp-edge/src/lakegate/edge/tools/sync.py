"""Tools about sync runs: copy a source table into bronze, follow or cancel a run, and list past runs."""

from __future__ import annotations

import asyncio
import logging
import math
from collections.abc import Callable
from typing import Annotated

import anyio
from lakegate.common.contracts.catalog import ListRuns, RunList
from lakegate.common.contracts.runs import TERMINAL_STATUSES, CancelRun, RunRef, RunView, StartRun, SyncMode
from lakegate.common.contracts.sources import SourceRef, SourceTables
from lakegate.common.errors import InvalidInput, LakegateError, NotFound, Unavailable
from lakegate.common.names import parse_source_table
from lakegate.edge.backend import Backend
from lakegate.edge.progress import CombinedProgress, ReportProgress
from lakegate.edge.results.base import Offset
from lakegate.edge.results.runs import (
    RunListResult,
    SyncResult,
    SyncRunResult,
    TableRun,
    TableSyncOutcome,
)
from lakegate.edge.run_watch import RunWatch
from lakegate.edge.task_calls import current_task
from mcp.server.mcpserver import Context, MCPServer
from mcp.types import ToolAnnotations
from pydantic import Field

log = logging.getLogger(__name__)

READS_CATALOG = ToolAnnotations(
    read_only_hint=True, destructive_hint=False, idempotent_hint=True, open_world_hint=False
)

#: How the sync modes work, for every tool that takes one.
SYNC_MODES = (
    "`full` (default): copy the whole table, replacing bronze atomically. `incremental`: append the rows whose "
    "cursor column grew since the last successful sync (all on the first run); deletes are not seen. `merge`: "
    "upsert those rows on the primary key (required; for a key seen twice the greatest cursor wins); rows "
    "deleted at the source stay unless `detect_deletes` is true."
)
DETECT_DELETES = (
    "merge only: also remove from bronze the rows deleted at the source, by comparing all primary keys "
    "(streamed, bounded memory). Without it only a full sync removes deleted rows."
)
#: The same, for a tool listed after sync_table_to_bronze (tools/list describes the modes once).
SAME_SYNC_MODES = "`full` (default), `incremental` or `merge`, as sync_table_to_bronze describes them."
SAME_DETECT_DELETES = "merge only: each run also removes rows deleted at the source, as for sync_table_to_bronze."
SAME_CURSOR_COLUMN = "incremental/merge: the cursor column, as for sync_table_to_bronze; inferred when omitted."
CURSOR_COLUMN = (
    "incremental/merge: the column whose value grows when a row is inserted or updated, e.g. `updated_at` "
    "(timestamp) or a serial `id` (integer). Omit it to let lakegate infer one (an `updated_at`-like timestamp "
    "column, else a single-column integer primary key); the run shows which it used. The cursor only moves "
    "when a run commits."
)


#: Relation kinds a whole-schema sync copies (views are left out: name them in `table_name` to copy one).
SCHEMA_KINDS = frozenset({"table", "partitioned table"})


def add_sync_tools(server: MCPServer, backend: Backend, watch: RunWatch) -> None:
    """Register sync_table_to_bronze, get_sync_run, cancel_sync and list_sync_runs."""
    topology, settings, failures = backend.topology, backend.settings, backend.failures
    guard = failures.tool_errors

    async def read(run_id: str) -> RunView:
        return await backend.call(topology.runs_get, RunRef(tenant_id=backend.tenant(), run_id=run_id), RunView)

    @server.tool(
        annotations=ToolAnnotations(
            title="Sync source tables into bronze",
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
            str | list[str] | None,
            Field(
                description="`table` or `schema.table` in the source (schema defaults to public), or a list of "
                "them. Give this or schema_name."
            ),
        ] = None,
        schema_name: Annotated[
            str | None,
            Field(description="Sync every table (not views) of this source schema, e.g. `public`."),
        ] = None,
        sync_mode: Annotated[SyncMode, Field(description=SYNC_MODES)] = "full",
        cursor_column: Annotated[str | None, Field(description=CURSOR_COLUMN)] = None,
        detect_deletes: Annotated[bool, Field(description=DETECT_DELETES)] = False,
    ) -> SyncResult:
        """Copy source tables into the lakehouse's bronze layer and wait for them to finish.

        One table: the result is its run, with rows read and written, the cursor the next incremental
        or merge run continues from, and columns added, dropped or changed at the source. Several
        tables (a list, or schema_name): one run per table, run concurrently, each committed on its
        own; the result lists each table's outcome. Progress is reported while it waits. A run that
        takes longer than the edge waits comes back `running`: follow it with get_sync_run, stop it
        with cancel_sync.
        """
        task = current_task()  # a call run as an MCP task waits for the runs' end and reports to the task
        wait, report = (math.inf, task.report) if task else (settings.sync_wait_seconds, ctx.report_progress)

        def start(name: str) -> StartRun:
            return StartRun(
                tenant_id=backend.tenant(),
                connection_id=connection_id,
                table_name=name,
                sync_mode=sync_mode,
                cursor_column=cursor_column,
                detect_deletes=detect_deletes,
            )

        if isinstance(table_name, str) and schema_name is None:
            return SyncResult.of_run(await _sync_one(backend, watch, start(table_name), wait, report))
        names = await _tables_to_sync(backend, connection_id, table_name, schema_name)
        starts = [start(name) for name in names]
        finished = await _sync_many(backend, watch, starts, wait, CombinedProgress(report, len(names)))
        return _tables_result(connection_id, sync_mode, names, finished, failures.public)

    @server.tool(annotations=READS_CATALOG.model_copy(update={"title": "Get a sync run"}))
    @guard
    async def get_sync_run(
        run_id: Annotated[str, Field(description="Id of a run, as sync_table_to_bronze returned it.")],
    ) -> SyncRunResult:
        """Show a sync run: its status, rows extracted and written, cursor, schema changes, columns, timings,
        and the error when it failed."""
        return SyncRunResult.of(failures.public_run(await read(run_id)))

    @server.tool(
        annotations=ToolAnnotations(
            title="Cancel a sync run",
            read_only_hint=False,
            destructive_hint=False,
            idempotent_hint=True,
            open_world_hint=False,
        )
    )
    @guard
    async def cancel_sync(
        run_id: Annotated[str, Field(description="Id of a queued or running sync run.")],
    ) -> SyncRunResult:
        """Stop a sync run that has not finished. Nothing of it is written: the bronze table stays as it was
        and the cursor does not move. Returns the run as it is after the cancel (status `cancelled`)."""
        request = CancelRun(tenant_id=backend.tenant(), run_id=run_id)
        try:
            run = await backend.call(topology.runs_cancel, request, RunView)
        except LakegateError as exc:
            if isinstance(exc, NotFound | Unavailable):
                raise
            finished = await read(run_id)
            if finished.status not in TERMINAL_STATUSES:
                raise
            raise InvalidInput(_already_finished(finished)) from exc
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
        """List your sync runs, newest first: status, mode, rows, duration, throughput (rows/s), cursor,
        the schedule that started each, and errors. Use get_sync_run for one in full."""
        request = ListRuns(tenant_id=backend.tenant(), connection_id=connection_id, offset=offset, limit=limit)
        listing = await backend.call(topology.runs_list, request, RunList)
        return RunListResult(
            runs=[SyncRunResult.of(failures.public_run(run), with_columns=False) for run in listing.runs],
            next_offset=listing.next_offset,
        )


async def _sync_one(
    backend: Backend, watch: RunWatch, start: StartRun, wait: float, report: ReportProgress
) -> SyncRunResult:
    """Start one run and follow it; a cancelled call cancels its run, so nothing is written."""
    failures = backend.failures
    with anyio.CancelScope(shield=True):  # a run started is a run the edge can cancel below
        run = await backend.call(backend.topology.runs_start, start, RunView)
    try:
        run = failures.public_run(await watch.follow(run, wait, report))
    except anyio.get_cancelled_exc_class():
        # The client cancelled the call or went away: the run stops too, so nothing is written.
        with anyio.CancelScope(shield=True):
            await _cancel_abandoned(backend, run)
        raise
    if run.status == "failed":
        raise failures.run_failure(run)
    return SyncRunResult.of(run)


async def _sync_many(
    backend: Backend, watch: RunWatch, starts: list[StartRun], wait: float, progress: CombinedProgress
) -> list[RunView | LakegateError]:
    """Start one run per table and follow them all at once, on one progress stream.

    The edge only queues the runs; the extractor's consumers take them within their own limits
    (replicas, in-flight messages), so a schema of many tables does not open as many source queries.
    """
    runs: list[RunView | LakegateError] = []
    with anyio.CancelScope(shield=True):  # every run started is a run the edge can cancel below
        for start in starts:
            try:
                runs.append(await backend.call(backend.topology.runs_start, start, RunView))
            except LakegateError as exc:
                runs.append(exc)
    started = [run for run in runs if isinstance(run, RunView)]
    if not started:
        first = runs[0]
        assert isinstance(first, LakegateError)
        raise first  # e.g. an unknown source: every table was refused for the same reason

    async def follow(index: int, run: RunView | LakegateError) -> RunView | LakegateError:
        name = starts[index].table_name
        if not isinstance(run, RunView):
            await progress.finish(index, name, "not started")
            return run
        try:
            run = await watch.follow(run, wait, progress.part(index, name))
        except LakegateError as exc:  # the run goes on; the caller follows it with get_sync_run
            log.warning("stopped following run %s of a several-table sync: %s", run.run_id, exc.message)
        run = backend.failures.public_run(run)
        if run.status in TERMINAL_STATUSES:
            await progress.finish(index, name, run.status)
        return run

    try:
        return list(await asyncio.gather(*(follow(index, run) for index, run in enumerate(runs))))
    except anyio.get_cancelled_exc_class():
        # The client cancelled the call or went away: every run stops too, so nothing is written.
        with anyio.CancelScope(shield=True):
            for run in started:
                await _cancel_abandoned(backend, run)
        raise


async def _cancel_abandoned(backend: Backend, run: RunView) -> None:
    """Cancel the run of a tool call the client cancelled; a run that finished meanwhile stays as it is."""
    try:
        await backend.call(backend.topology.runs_cancel, CancelRun(tenant_id=run.tenant_id, run_id=run.run_id), RunView)
        log.info("sync run %s cancelled: its tool call was cancelled by the client", run.run_id)
    except LakegateError as exc:
        log.info("sync run %s was not cancelled with its tool call: %s", run.run_id, exc.message)


def _already_finished(run: RunView) -> str:
    when = f" at {run.finished_at.isoformat(timespec='seconds')}" if run.finished_at else ""
    outcome = {
        "succeeded": f"its rows are in {run.target}",
        "failed": f"{run.target} is as it was before it",
        "cancelled": "it was cancelled already",
    }[run.status]
    return f"sync run {run.run_id} already finished ({run.status}{when}), so there is nothing to cancel: {outcome}"


async def _tables_to_sync(
    backend: Backend, connection_id: str, tables: str | list[str] | None, schema_name: str | None
) -> list[str]:
    """The `schema.table` names one several-table sync copies, in order, each once."""
    most = backend.settings.sync_max_tables
    if (tables is None) == (schema_name is None):
        raise InvalidInput(
            "give either table_name (a `table` or `schema.table` name, or a list of them) or schema_name (to "
            "sync every table of one source schema), not both and not neither"
        )
    if tables is not None:
        if isinstance(tables, str):
            tables = [tables]
        if not tables:
            raise InvalidInput("table_name is an empty list: name at least one table, or give schema_name")
        names = [str(parse_source_table(table)) for table in tables]
        twice = sorted({name for name in names if names.count(name) > 1})
        if twice:
            raise InvalidInput(f"table_name names {', '.join(twice)} more than once: name each table once")
        if len(names) > most:
            raise InvalidInput(
                f"table_name has {len(names)} names, more than the {most} one call syncs "
                "(LAKEGATE_EDGE_SYNC_MAX_TABLES): split them over several calls"
            )
        return names
    assert schema_name is not None
    ref = SourceRef(tenant_id=backend.tenant(), connection_id=connection_id)
    listing = await backend.call(
        backend.topology.source_tables_list, ref, SourceTables, timeout=backend.settings.source_timeout_seconds
    )
    names = [
        f"{table.schema_name}.{table.name}"
        for table in listing.tables
        if table.schema_name == schema_name and table.kind in SCHEMA_KINDS
    ]
    if not names:
        schemas = sorted({table.schema_name for table in listing.tables})
        raise InvalidInput(
            f"schema_name {schema_name!r} has no tables this source's user can read (schemas with tables: "
            f"{', '.join(schemas) or 'none'}); check the spelling with list_source_tables"
        )
    if len(names) > most:
        raise InvalidInput(
            f"schema_name {schema_name!r} holds {len(names)} tables, more than the {most} one call syncs "
            "(LAKEGATE_EDGE_SYNC_MAX_TABLES): pass them as a table_name list in several calls"
        )
    return names


def _tables_result(
    connection_id: str,
    sync_mode: SyncMode,
    names: list[str],
    finished: list[RunView | LakegateError],
    public: Callable[[str], str],
) -> SyncResult:
    outcomes: list[TableSyncOutcome] = []
    for name, run in zip(names, finished, strict=True):
        if isinstance(run, LakegateError):
            outcomes.append(TableSyncOutcome(source_table=name, outcome="not_started", error=public(run.message)))
            continue
        result = SyncRunResult.of(run)
        outcome = run.status if run.status in TERMINAL_STATUSES else "running"
        outcomes.append(
            TableSyncOutcome(source_table=name, outcome=outcome, run=TableRun.of(result), error=result.error)
        )
    counts = {key: sum(1 for o in outcomes if o.outcome == key) for key in ("succeeded", "running")}
    failed = len(outcomes) - counts["succeeded"] - counts["running"]
    hint = None
    if counts["running"]:
        hint = "some runs are still going: follow each with get_sync_run, or stop it with cancel_sync"
    elif failed:
        hint = "fix the cause of each failed table, then sync those tables again; the others are committed"
    return SyncResult(
        connection_id=connection_id,
        sync_mode=sync_mode,
        tables=outcomes,
        succeeded=counts["succeeded"],
        failed=failed,
        running=counts["running"],
        hint=hint,
    )
