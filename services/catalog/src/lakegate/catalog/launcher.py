"""Starting a sync run: check the request, record the run, hand it to the extractors."""

from __future__ import annotations

import logging

from lakegate.catalog.lifecycle import RunLifecycle
from lakegate.catalog.publisher import Publisher
from lakegate.catalog.runs import RunStore
from lakegate.catalog.sources import SourceStore
from lakegate.common.contracts.runs import ErrorInfo, ExtractTable, RunView, StartRun, TableRef
from lakegate.common.errors import LakegateError, Unavailable, Unsupported
from lakegate.common.names import bronze_table_name, parse_source_table, tenant_catalog

log = logging.getLogger(__name__)

SUPPORTED_MODES = ("full",)


class RunLauncher:
    """Turns a `StartRun` request into a queued run and one `ExtractTable` command."""

    def __init__(self, sources: SourceStore, runs: RunStore, lifecycle: RunLifecycle, publisher: Publisher) -> None:
        self._sources, self._runs, self._lifecycle, self._publisher = sources, runs, lifecycle, publisher

    async def start(self, request: StartRun) -> RunView:
        """Record the run `queued` and publish its command; a run whose command was refused is failed."""
        source = await self._sources.get(request.tenant_id, request.connection_id)
        table = parse_source_table(request.table_name)
        if request.sync_mode not in SUPPORTED_MODES:
            raise Unsupported(f"sync_mode {request.sync_mode!r} is not available yet; use 'full'")
        target = TableRef(
            catalog=tenant_catalog(request.tenant_id),
            schema_name="bronze",
            name=bronze_table_name(source.name, table),
        )
        run = await self._runs.create(
            tenant_id=request.tenant_id,
            connection_id=source.connection_id,
            source_table=str(table),
            target=target,
            sync_mode=request.sync_mode,
        )
        command = ExtractTable(
            tenant_id=run.tenant_id,
            run_id=run.run_id,
            connection_id=run.connection_id,
            source_schema=table.schema,
            source_table=table.table,
            target=target,
            sync_mode=run.sync_mode,
        )
        try:
            await self._publisher.extract(command)
        except Unavailable as exc:
            # Nobody will ever take this run, so it must not stay queued.
            refused = Unavailable(f"run {run.run_id} could not be queued: {exc.message}; start the sync again")
            try:
                reason = ErrorInfo(code=refused.code, message=refused.message, transient=True)
                await self._lifecycle.fail(run.tenant_id, run.run_id, "queue", reason)
            except LakegateError as announce:
                log.warning("run %s is failed but its event was not published: %s", run.run_id, announce)
            raise refused from exc
        return run.view()
