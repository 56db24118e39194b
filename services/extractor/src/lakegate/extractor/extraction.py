"""One extraction: a source table read in one read-only snapshot and staged as bounded Arrow parts.

    cmd.extract ─▶ cancelled or finished already? stop ─▶ credentials from the catalog ─▶ run.<id>.extracting
                ─▶ asyncpg: BEGIN REPEATABLE READ READ ONLY, export the snapshot; in it resolve the table,
                   plan its columns, read its primary key, choose the cursor column, plan ranges
                ─▶ small table: run.<id>.streaming (full, incremental: where the parts go, so a loader can load
                   them as they arrive) ─▶ ADBC reads it in that snapshot (reader.py) ─▶ staged parts, progress
                   large table: K ranges read by the replicas in that snapshot (coordination.py)
                ─▶ run.<id>.extracted with the new cursor, or run.<id>.failed when the error is terminal

A full sync, when the extractor shares the local lakehouse's filesystem (`lakehouse_dir`), is staged
as the table's own Parquet data files instead of Arrow parts (`DataFileStaging`); the loader then
only commits them. Every other run, and every extractor without that setting, stages Arrow parts.

Incremental and merge runs read only the rows past the stored cursor (`since`, see `cursors.py`); a
full run reads every row and still reports the greatest cursor value when the table has a cursor
column, so that an incremental run after it goes on from there. A merge run needs a primary key.

Each delivery of a command is one attempt with parts of its own (`a<delivery>`), so a redelivered
command never mixes its parts with a crashed attempt's. A run that already reported `extracted` or
`failed` is not extracted again. A cancelled run stops, deletes its staged parts and reports nothing.
"""

from __future__ import annotations

import base64
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import replace

import pyarrow as pa
from lakegate.common.contracts.runs import Cursor, Extracted, Extracting, ExtractTable, StagedParts, Streaming
from lakegate.common.contracts.sources import SourceRef
from lakegate.common.delivery import Delivery, Work, parsed
from lakegate.common.errors import InvalidInput, LakegateError
from lakegate.common.names import SourceTableName
from lakegate.common.service import Runtime
from lakegate.common.staging import StagingStore, followed_location
from lakegate.common.subjects import RunStep
from lakegate.common.telemetry import tracer
from lakegate.extractor.allowlist import refuse_sensitive_table
from lakegate.extractor.cancellation import unless_cancelled
from lakegate.extractor.config import ExtractorSettings
from lakegate.extractor.coordination import extract_in_ranges, ready_range_readers
from lakegate.extractor.cursors import CursorColumn, CursorValue, choose_cursor, late_window
from lakegate.extractor.details import primary_key
from lakegate.extractor.introspection import Relation, describe_source, resolve_table
from lakegate.extractor.logins import Credentials, Logins
from lakegate.extractor.ranges import RangeBounds, plan_ranges
from lakegate.extractor.snapshots import SourceSnapshot, source_snapshot
from lakegate.extractor.steps import RunSteps
from lakegate.extractor.transfer import data_files_for, staged_writer, transfer

log = logging.getLogger(__name__)

#: Modes a loader can load while the parts are staged (`Streaming`); a merge keeps one row per key of all of them.
STREAMED_MODES = frozenset({"full", "incremental"})


def encode_schema(schema: pa.Schema) -> str:
    """An Arrow schema as base64 Arrow IPC, the way `Extracted.arrow_schema` carries it."""
    return base64.b64encode(schema.serialize().to_pybytes()).decode("ascii")


@contextlib.asynccontextmanager
async def _phase(rt: Runtime, phase: str, command: ExtractTable, name: SourceTableName) -> AsyncIterator[None]:
    """The extraction as one span and one `lakegate_phase_seconds` observation."""
    attributes = {"lakegate.run_id": command.run_id, "lakegate.table": str(name), "lakegate.mode": command.sync_mode}
    with rt.metrics.phase(phase), tracer(__name__).start_as_current_span(phase, attributes=attributes):
        yield


class Extractor:
    """Runs `ExtractTable` commands, coordinating the ranges of large tables."""

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

    @property
    def work(self) -> Work[ExtractTable]:
        """`cmd.extract`: ack when staged or cancelled, retry a transient failure later, or fail the run."""

        async def run(command: ExtractTable, delivery: Delivery) -> None:
            attempt = f"a{delivery.attempt}"
            cancelled = await unless_cancelled(
                self._rt, command.tenant_id, command.run_id, lambda: self.extract(command, attempt)
            )
            if cancelled:
                await self._staging().delete(command.run_id)
                log.info("run %s: cancelled; extraction stopped, staged parts deleted", command.run_id)

        async def fail(command: ExtractTable, error: LakegateError) -> None:
            await self._steps.failed(command.tenant_id, command.run_id, error)
            with contextlib.suppress(Exception):  # parts nobody will load; they would expire anyway
                await self._staging().delete(command.run_id)

        return Work(
            parse=parsed(ExtractTable),
            run=run,
            fail=fail,
            doing=lambda command: f"extracting {command.source_schema}.{command.source_table} for run {command.run_id}",
        )

    async def extract(self, command: ExtractTable, attempt: str) -> Extracted | None:
        """Extract the command's table as attempt `attempt`; None when the run had already finished."""
        if await self._steps.finished(command.run_id):
            log.info("run %s already reported its extraction; nothing to do", command.run_id)
            return None
        refuse_sensitive_table(command.source_schema, command.source_table)
        credentials = await self._logins.credentials(
            self._rt, SourceRef(tenant_id=command.tenant_id, connection_id=command.connection_id)
        )
        await self._steps.publish(
            command.run_id,
            Extracting(tenant_id=command.tenant_id, run_id=command.run_id, attempt=attempt),
            RunStep.EXTRACTING,
            suffix=attempt,
        )
        started = time.monotonic()
        name = SourceTableName(command.source_schema, command.source_table)
        since = command.since if command.sync_mode != "full" else None
        async with (
            source_snapshot(credentials, self._settings) as snapshot,
            _phase(self._rt, "extract", command, name),
        ):
            relation = await resolve_table(snapshot.conn, name, describe_source(credentials))
            key = await primary_key(snapshot.conn, name)
            if command.sync_mode == "merge" and not key:
                raise InvalidInput(
                    f"{name} in {describe_source(credentials)} has no primary key, and a merge sync upserts on it: "
                    "add a primary key at the source, or sync the table with sync_mode 'incremental' or 'full'"
                )
            cursor = await choose_cursor(
                snapshot.conn, relation, key, mode=command.sync_mode, requested=command.cursor_column, since=since
            )
            ranges = await plan_ranges(
                snapshot.conn, relation, key, self._settings, readers=lambda: ready_range_readers(self._rt)
            )
            if ranges:
                staged, rows, greatest = await self._in_ranges(command, attempt, snapshot, ranges, cursor, since)
            else:
                staged, rows, greatest = await self._in_one(
                    command, attempt, credentials, snapshot, relation, key, cursor, since
                )
            source_keys = None
            if command.detect_deletes and command.sync_mode == "merge":
                source_keys = await self._keys(command, attempt, credentials, snapshot, relation, key)
        extracted = Extracted(
            tenant_id=command.tenant_id,
            run_id=command.run_id,
            target=command.target,
            sync_mode=command.sync_mode,
            arrow_schema=encode_schema(relation.query.schema),
            columns=[plan.as_mapping() for plan in relation.query.plans],
            row_count=rows,
            staged=staged[0],
            ranges=list(staged[1:]),
            primary_key=key,
            cursor=cursor.at_least(since, greatest, snapshot.visible) if cursor else since,
            source_keys=source_keys,
        )
        await self._steps.publish(command.run_id, extracted, RunStep.EXTRACTED)
        self._rt.metrics.moved("extracted", command.sync_mode, rows, sum(parts.bytes for parts in staged))
        log.info(
            "run %s: extracted %d rows of %s in %d range(s), %d parts (%d bytes) in %.1fs",
            command.run_id,
            rows,
            name,
            len(staged),
            sum(parts.parts for parts in staged),
            sum(parts.bytes for parts in staged),
            time.monotonic() - started,
        )
        return extracted

    async def _in_one(
        self,
        command: ExtractTable,
        attempt: str,
        credentials: Credentials,
        snapshot: SourceSnapshot,
        relation: Relation,
        key: Sequence[str],
        cursor: CursorColumn | None,
        since: Cursor | None,
    ) -> tuple[list[StagedParts], int, CursorValue | None]:
        """Read the whole table (past `since`) as one stream; a loader may follow its parts (`Streaming`)."""
        late = late_window(relation, self._settings)
        query = relation.query.where(cursor.after(since, late)) if cursor and since else relation.query

        async def report(rows: int) -> None:
            await self._steps.progress(command.run_id, rows)

        writer = await staged_writer(self._staging(), command.run_id, attempt, query, data_files_for(command))
        location = followed_location(writer)
        if location is not None and command.sync_mode in STREAMED_MODES and self._settings.announce_streaming:
            await self._steps.streaming(
                Streaming(
                    tenant_id=command.tenant_id,
                    run_id=command.run_id,
                    attempt=attempt,
                    target=command.target,
                    sync_mode=command.sync_mode,
                    arrow_schema=encode_schema(relation.query.schema),
                    columns=[plan.as_mapping() for plan in relation.query.plans],
                    location=location,
                    primary_key=list(key),
                    cursor_column=cursor.name if cursor else None,
                )
            )
        moved = await transfer(
            credentials.login, snapshot.id, query, writer, self._settings, cursor=cursor, report=report
        )
        return [moved.staged], moved.rows, moved.greatest

    async def _keys(
        self,
        command: ExtractTable,
        attempt: str,
        credentials: Credentials,
        snapshot: SourceSnapshot,
        relation: Relation,
        key: Sequence[str],
    ) -> StagedParts:
        """Stage the primary key of every row of the table, in the rows' snapshot, for the merge to find deletes."""
        keys = replace(relation.query, plans=tuple(p for p in relation.query.plans if p.name in key), conditions=())

        async def quiet(rows: int) -> None:
            return None

        writer = await self._staging().writer(command.run_id, f"{attempt}-keys")
        moved = await transfer(credentials.login, snapshot.id, keys, writer, self._settings, cursor=None, report=quiet)
        return moved.staged

    async def _in_ranges(
        self,
        command: ExtractTable,
        attempt: str,
        snapshot: SourceSnapshot,
        ranges: Sequence[RangeBounds],
        cursor: CursorColumn | None,
        since: Cursor | None,
    ) -> tuple[list[StagedParts], int, CursorValue | None]:
        """Have the replicas read the table's ranges in this snapshot, which stays open until all are staged."""
        reports = await extract_in_ranges(self._rt, command, attempt, snapshot.id, ranges, cursor=cursor, since=since)
        rows = sum(report.row_count for report in reports)
        await self._steps.progress(command.run_id, rows)
        greatest = None
        if cursor is not None:
            greatest = cursor.greatest(cursor.parse(r.max_cursor) for r in reports if r.max_cursor is not None)
        return [report.staged for report in reports], rows, greatest
