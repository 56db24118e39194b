"""Starting a sync run: check the request, record the run, hand it to the extractors.

The same path serves `runs.start` and the scheduler, so a scheduled run is checked, refused and
recorded exactly like one an agent started. One run per target at a time: a second start while a
run of the same bronze table is queued, extracting or loading is refused (`Conflict`) naming that
run, so the caller can wait for it or cancel it. The database enforces it (a unique index over the
active runs), so two replicas starting the same table at once cannot both win.
"""

from __future__ import annotations

import logging

from lakegate.catalog.cursors import CursorStore, start_of
from lakegate.catalog.lifecycle import RunLifecycle
from lakegate.catalog.publisher import Publisher
from lakegate.catalog.runs import RunStore
from lakegate.catalog.sources import SourceStore
from lakegate.common.contracts.runs import ErrorInfo, ExtractTable, RunView, StartRun, SyncMode, TableRef
from lakegate.common.errors import InvalidInput, LakegateError, Unavailable
from lakegate.common.names import SourceTableName, bronze_table_name, parse_source_table, tenant_catalog

log = logging.getLogger(__name__)


def bronze_target(tenant_id: str, source_name: str, table: SourceTableName) -> TableRef:
    """The bronze table a source table is synced into."""
    return TableRef(catalog=tenant_catalog(tenant_id), schema_name="bronze", name=bronze_table_name(source_name, table))


def check_detect_deletes(sync_mode: SyncMode, detect_deletes: bool) -> None:
    """Refuse detect_deletes outside merge, for runs and schedules alike."""
    if detect_deletes and sync_mode != "merge":
        raise InvalidInput(
            f"detect_deletes applies to sync_mode 'merge' only, not {sync_mode!r}: a full sync "
            "replaces the table (deleted rows go with it), an incremental one only appends; drop detect_deletes "
            "or use sync_mode 'merge'"
        )


class RunLauncher:
    """Turns a `StartRun` request into a queued run and one `ExtractTable` command."""

    def __init__(
        self,
        sources: SourceStore,
        runs: RunStore,
        cursors: CursorStore,
        lifecycle: RunLifecycle,
        publisher: Publisher,
    ) -> None:
        self._sources, self._runs, self._cursors = sources, runs, cursors
        self._lifecycle, self._publisher = lifecycle, publisher

    async def start(self, request: StartRun) -> RunView:
        """Record the run `queued` and publish its command; a run whose command was refused is failed."""
        check_detect_deletes(request.sync_mode, request.detect_deletes)
        source = await self._sources.get(request.tenant_id, request.connection_id)
        table = parse_source_table(request.table_name)
        target = bronze_target(request.tenant_id, source.name, table)
        stored = await self._cursors.stored(request.tenant_id, source.connection_id, str(table), target)
        begin = start_of(request.sync_mode, request.cursor_column, stored, str(table))
        run = await self._runs.create(
            tenant_id=request.tenant_id,
            connection_id=source.connection_id,
            source_table=str(table),
            target=target,
            sync_mode=request.sync_mode,
            cursor_column=begin.cursor_column,
            since=begin.since,
            schedule_id=request.schedule_id,
        )
        command = ExtractTable(
            tenant_id=run.tenant_id,
            run_id=run.run_id,
            connection_id=run.connection_id,
            source_schema=table.schema,
            source_table=table.table,
            target=target,
            sync_mode=run.sync_mode,
            cursor_column=begin.cursor_column,
            since=begin.since,
            detect_deletes=request.detect_deletes,
        )
        try:
            await self._publisher.extract(command)
        except Unavailable as exc:
            # Nobody will ever take this run, so it must not stay queued (and hold its target).
            refused = Unavailable(f"run {run.run_id} could not be queued: {exc.message}; start the sync again")
            try:
                reason = ErrorInfo(code=refused.code, message=refused.message, transient=True)
                await self._lifecycle.fail(run.tenant_id, run.run_id, "queue", reason)
            except LakegateError as announce:
                log.warning("run %s is failed but its event was not published: %s", run.run_id, announce)
            raise refused from exc
        return run.view()
