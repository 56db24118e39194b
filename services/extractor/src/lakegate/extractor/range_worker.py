"""One range of a large table, read in its coordinator's snapshot and staged (`cmd.extract_range`).

Every replica takes these commands from one durable consumer, so the ranges of a table are read by
several replicas at once. A range worker:

1. stops when the run already reported its extraction or failure, or was cancelled;
2. resolves the source's credentials, adopts the coordinator's snapshot (`SET TRANSACTION SNAPSHOT`)
   and exports its own, resolves the table and plans it in that snapshot, exactly as the coordinator did;
3. parses the range back from its predicate (`RangeBounds.parse`), adds the condition for rows past
   `since`, and streams the range into staging under `<attempt>r<index>a<delivery>` (e.g. `a1r2a1`:
   the coordinator's attempt 1, range 2, first delivery), reporting `Progress` with `range_index`;
4. publishes `RangeExtracted` with the greatest cursor value of the range, unless the run ended
   meanwhile (another range failed it): then it deletes the run's staged parts instead.

A snapshot that has ended means the coordinator stopped; its redelivery starts over with a new
snapshot and new ranges, so this range is dropped (rejected) without failing the run. Any other
terminal failure is reported as `RangeFailed`, and the coordinator fails the run.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from lakegate.common.contracts.runs import ErrorInfo, ExtractRange, RangeExtracted, RangeFailed
from lakegate.common.contracts.sources import SourceRef
from lakegate.common.delivery import Delivery, Work, parsed
from lakegate.common.errors import InvalidInput, LakegateError
from lakegate.common.names import SourceTableName
from lakegate.common.service import Runtime
from lakegate.common.staging import StagingStore
from lakegate.common.subjects import RunStep
from lakegate.extractor.cancellation import unless_cancelled
from lakegate.extractor.config import ExtractorSettings
from lakegate.extractor.cursors import late_window, named_cursor
from lakegate.extractor.introspection import describe_source, resolve_table
from lakegate.extractor.logins import Logins
from lakegate.extractor.ranges import RangeBounds
from lakegate.extractor.snapshots import SnapshotGone, source_snapshot
from lakegate.extractor.steps import RunSteps
from lakegate.extractor.transfer import staged_writer, transfer

log = logging.getLogger(__name__)


class RangeWorker:
    """Runs `ExtractRange` commands."""

    def __init__(
        self,
        rt: Runtime,
        settings: ExtractorSettings,
        staging: Callable[[], StagingStore],
        steps: RunSteps,
        logins: Logins,
    ) -> None:
        self._rt, self._settings, self._staging, self._steps = rt, settings, staging, steps
        self._logins = logins
        #: (run id, range index) of every range this replica staged, oldest first.
        self.staged: list[tuple[str, int]] = []

    @property
    def work(self) -> Work[ExtractRange]:
        """`cmd.extract_range`: ack when staged, retry a transient failure, drop or report a terminal one."""

        def location(command: ExtractRange, delivery: int) -> str:
            return f"{command.attempt or 'a0'}r{command.index}a{delivery}"

        async def run(command: ExtractRange, delivery: Delivery) -> None:
            cancelled = await unless_cancelled(
                self._rt,
                command.tenant_id,
                command.run_id,
                lambda: self.extract(command, location(command, delivery.attempt)),
            )
            if cancelled:
                await self._staging().delete(command.run_id)
                log.info("run %s: cancelled; range %d stopped, staged parts deleted", command.run_id, command.index)

        async def fail(command: ExtractRange, error: LakegateError) -> None:
            if isinstance(error, SnapshotGone):
                log.info("run %s: range %d dropped: %s", command.run_id, command.index, error)
                return
            report = RangeFailed(
                tenant_id=command.tenant_id,
                run_id=command.run_id,
                index=command.index,
                attempt=command.attempt,
                error=ErrorInfo(code=error.code, message=error.message, transient=False),
            )
            # One failure report per range and attempt: the coordinator fails the run on the first.
            await self._steps.publish(command.run_id, report, RunStep.RANGE, suffix=f"{location(command, 0)}.failed")

        return Work(
            parse=parsed(ExtractRange),
            run=run,
            fail=fail,
            doing=lambda command: f"extracting range {command.index + 1} of {command.count} of run {command.run_id}",
        )

    async def extract(self, command: ExtractRange, location: str) -> RangeExtracted | None:
        """Stage one range under `location`; None when the run had already finished."""
        if await self._steps.finished(command.run_id):
            log.info("run %s already reported its extraction; range %d not read", command.run_id, command.index)
            return None
        credentials = await self._logins.credentials(
            self._rt, SourceRef(tenant_id=command.tenant_id, connection_id=command.connection_id)
        )
        name = SourceTableName(command.source_schema, command.source_table)
        async with source_snapshot(credentials, self._settings, adopt=command.snapshot) as snapshot:
            relation = await resolve_table(snapshot.conn, name, describe_source(credentials))
            bounds = RangeBounds.parse(command.predicate, relation.query)
            query = relation.query.where(bounds.sql)
            cursor = named_cursor(relation.query, command.cursor_column) if command.cursor_column else None
            if command.since is not None:
                if cursor is None:
                    raise InvalidInput(f"range {command.index} of run {command.run_id} has a cursor but no column")
                query = query.where(cursor.after(command.since, late_window(relation, self._settings)))

            async def report(rows: int) -> None:
                await self._steps.progress(command.run_id, rows, range_index=command.index)

            writer = await staged_writer(self._staging(), command.run_id, location, query, command.data_files_for)
            moved = await transfer(
                credentials.login, snapshot.id, query, writer, self._settings, cursor=cursor, report=report
            )
        if await self._steps.finished(command.run_id):
            # The coordinator failed the run meanwhile (another range failed): nobody will load these parts.
            # It published `failed` before deleting the run's parts, so parts staged after that are deleted here.
            await self._staging().delete(command.run_id)
            log.info("run %s ended while range %d was read; its parts are deleted", command.run_id, command.index)
            return None
        extracted = RangeExtracted(
            tenant_id=command.tenant_id,
            run_id=command.run_id,
            index=command.index,
            row_count=moved.rows,
            staged=moved.staged,
            max_cursor=cursor.text(moved.greatest) if cursor and moved.greatest is not None else None,
            attempt=command.attempt,
        )
        await self._steps.publish(command.run_id, extracted, RunStep.RANGE, suffix=location)
        self.staged.append((command.run_id, command.index))
        log.info("run %s: range %d of %d staged, %d rows", command.run_id, command.index, command.count, moved.rows)
        return extracted
