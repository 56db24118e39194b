"""Schedules: syncs the catalog starts by itself, every N seconds or on a five-field cron expression (UTC).

A schedule is a row, so it survives restarts. Creating one checks, through the extractor, that the
table exists in the source: a typo is refused at once, not found out by every scheduled run.

Its first run is one interval (or the next cron time) after it is created: an agent usually syncs
once by hand, then schedules the rest. When a run is due, the next one is set from the time it was
due, skipping any turns that passed while nobody was scheduling (a catalog down for a day starts
one run, not a day's worth).
"""

from __future__ import annotations

import secrets
from datetime import UTC, datetime, timedelta
from typing import cast

import asyncpg
from croniter import CroniterBadDateError, croniter
from lakegate.catalog.clock import Clock
from lakegate.catalog.launcher import check_detect_deletes
from lakegate.catalog.paging import Window
from lakegate.catalog.sources import SourceStore
from lakegate.common.contracts.explore import DescribeSourceTable, SourceTableDetail
from lakegate.common.contracts.runs import SyncMode
from lakegate.common.contracts.schedules import MAX_EVERY_SECONDS, CreateSchedule, Schedule
from lakegate.common.errors import InvalidInput, NotFound
from lakegate.common.names import check_tenant_id, parse_source_table
from lakegate.common.rpc import RpcClient
from lakegate.common.subjects import Topology

CRON_FIELDS = 5
_CRON_HINT = "five fields in UTC: minute hour day-of-month month day-of-week, e.g. '0 2 * * *' for 02:00 every day"


def new_schedule_id() -> str:
    """`sch_<random>`."""
    return f"sch_{secrets.token_hex(8)}"


def schedule_not_found(schedule_id: str) -> NotFound:
    """The same answer for a missing schedule and another tenant's."""
    return NotFound(f"schedule {schedule_id!r} not found for this tenant: list the schedules to find its id")


def check_cron(expression: str) -> str:
    """A five-field cron expression, trimmed; anything else is refused with the expected form."""
    text = " ".join(expression.split())
    if len(text.split(" ")) != CRON_FIELDS or not croniter.is_valid(text):
        raise InvalidInput(f"cron {expression!r} is not a valid cron expression: use {_CRON_HINT}")
    try:
        croniter(text, datetime(2000, 1, 1, tzinfo=UTC)).get_next(datetime)
    except CroniterBadDateError as exc:
        raise InvalidInput(
            f"cron {expression!r} never matches a date (e.g. February 31st, or the 31st of a 30-day month): "
            f"pick a day that every chosen month has; {_CRON_HINT}"
        ) from exc
    return text


def check_every(every_seconds: int) -> int:
    """An interval of at least a minute and at most a year and a day."""
    if every_seconds > MAX_EVERY_SECONDS:
        raise InvalidInput(
            f"every_seconds {every_seconds} is more than a year and a day ({MAX_EVERY_SECONDS}): "
            "schedule at most yearly, or use cron, e.g. '0 0 1 1 *' for every 1 January"
        )
    return every_seconds


def next_cron(expression: str, after: datetime) -> datetime:
    """The first time strictly after `after` that matches the cron expression."""
    upcoming: datetime = croniter(expression, after).get_next(datetime)
    return upcoming


def first_run(every_seconds: int | None, cron: str | None, now: datetime) -> datetime:
    """When a new schedule runs first: one interval from now, or the next cron time."""
    if cron is not None:
        return next_cron(cron, now)
    assert every_seconds is not None  # a schedule has exactly one of the two
    return now + timedelta(seconds=every_seconds)


def following_run(schedule: Schedule, now: datetime) -> datetime:
    """When a schedule runs next after its due turn, skipping turns already past at `now`."""
    if schedule.cron is not None:
        return next_cron(schedule.cron, max(schedule.next_run_at, now))
    assert schedule.every_seconds is not None  # a schedule has exactly one of the two
    every = timedelta(seconds=schedule.every_seconds)
    missed = max(0, int((now - schedule.next_run_at) / every))
    return schedule.next_run_at + (missed + 1) * every


def schedule_of(row: asyncpg.Record) -> Schedule:
    """Read a `SELECT * FROM schedules` row."""
    return Schedule(
        schedule_id=row["schedule_id"],
        tenant_id=row["tenant_id"],
        connection_id=row["connection_id"],
        table_name=row["table_name"],
        sync_mode=cast(SyncMode, row["sync_mode"]),
        cursor_column=row["cursor_column"],
        detect_deletes=row["detect_deletes"],
        every_seconds=row["every_seconds"],
        cron=row["cron"],
        next_run_at=row["next_run_at"],
        last_run_id=row["last_run_id"],
        last_run_at=row["last_run_at"],
        created_at=row["created_at"],
    )


class ScheduleStore:
    """The `schedules` table, as tenants see it."""

    def __init__(
        self, pool: asyncpg.Pool, sources: SourceStore, clock: Clock, rpc: RpcClient, topology: Topology
    ) -> None:
        self._pool, self._sources, self._clock, self._rpc, self._topology = pool, sources, clock, rpc, topology

    async def create(self, request: CreateSchedule) -> Schedule:
        """Store a schedule of one of the tenant's source tables."""
        tenant = check_tenant_id(request.tenant_id)
        if (request.every_seconds is None) == (request.cron is None):
            raise InvalidInput(
                "a schedule needs exactly one of every_seconds (at least 60) or cron "
                f"({_CRON_HINT}); give one and leave the other out"
            )
        check_detect_deletes(request.sync_mode, request.detect_deletes)
        cron = None if request.cron is None else check_cron(request.cron)
        if request.every_seconds is not None:
            check_every(request.every_seconds)
        source = await self._sources.get(tenant, request.connection_id)
        table = parse_source_table(request.table_name)
        # The extractor answers `not_found` naming the table (and the closest names) when it is not there.
        describe = DescribeSourceTable(
            tenant_id=tenant, connection_id=source.connection_id, table_name=str(table), sample_size=0
        )
        await self._rpc.call(self._topology.source_table_describe, describe, SourceTableDetail)
        now = self._clock.now()
        row = await self._pool.fetchrow(
            """
            INSERT INTO schedules (schedule_id, tenant_id, connection_id, table_name, sync_mode, cursor_column,
                                   detect_deletes, every_seconds, cron, next_run_at, created_at)
            VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)
            RETURNING *
            """,
            new_schedule_id(),
            tenant,
            source.connection_id,
            str(table),
            request.sync_mode,
            request.cursor_column,
            request.detect_deletes,
            request.every_seconds,
            cron,
            first_run(request.every_seconds, cron, now),
            now,
        )
        assert row is not None  # INSERT ... RETURNING always returns the row
        return schedule_of(row)

    async def of_tenant(self, tenant_id: str, window: Window) -> tuple[list[Schedule], int | None]:
        """A page of the tenant's schedules, oldest first."""
        rows = await self._pool.fetch(
            "SELECT * FROM schedules WHERE tenant_id = $1 ORDER BY created_at, schedule_id LIMIT $2 OFFSET $3",
            tenant_id,
            window.fetch,
            window.offset,
        )
        page, next_offset = window.cut(rows)
        return [schedule_of(row) for row in page], next_offset

    async def delete(self, tenant_id: str, schedule_id: str) -> Schedule:
        """Remove a schedule; runs it already started go on. Returns the schedule as it was."""
        row = await self._pool.fetchrow(
            "DELETE FROM schedules WHERE schedule_id = $1 AND tenant_id = $2 RETURNING *", schedule_id, tenant_id
        )
        if row is None:
            raise schedule_not_found(schedule_id)
        return schedule_of(row)
