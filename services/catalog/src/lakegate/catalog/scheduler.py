"""The scheduler: one catalog replica at a time starts the runs of due schedules.

Leadership is a PostgreSQL session advisory lock, held on a connection of the scheduler's own:
whichever replica takes it first schedules; when it dies, its session ends, the lock is free and
another replica takes it on its next tick. Each tick the leader

- claims due schedules one by one: in one short transaction it locks the row (`next_run_at <= now`,
  `FOR UPDATE SKIP LOCKED`, so even two leaders for a moment never claim one turn twice), checks
  that the schedule's previous run is finished and moves `next_run_at` on. A schedule whose
  previous run is still queued, extracting or loading is skipped for this turn (and logged);
- starts each claimed turn's run through the same `RunLauncher` as `runs.start`, with the
  schedule's id (a table busy with another run is skipped the same way), then records it as the
  schedule's last run;
- announces finished runs whose public event never went out (the catalog stopped between
  recording the end of a run and publishing it, or a cancel whose publish failed).

A turn is claimed before its run starts, so no connection is held while NATS is called and a turn
runs at most once: if the leader dies between the claim and the start, that turn is lost and the
next one runs as usual.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import datetime

import asyncpg
from lakegate.catalog.clock import Clock
from lakegate.catalog.launcher import RunLauncher
from lakegate.catalog.lifecycle import RunLifecycle
from lakegate.catalog.runs import ACTIVE_STATUSES
from lakegate.catalog.schedules import following_run, schedule_of
from lakegate.common.contracts.runs import StartRun
from lakegate.common.contracts.schedules import Schedule
from lakegate.common.errors import Conflict, LakegateError

log = logging.getLogger(__name__)

#: Arbitrary but fixed, and not the migration lock: the advisory lock the scheduling leader holds.
SCHEDULER_LOCK = 0x6C616B6567617465 + 1
#: Most schedules one tick starts, so a tick stays short; the rest are due on the next one.
TICK_BATCH = 100


@dataclass
class Tick:
    """What one tick did."""

    started: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    refused: list[str] = field(default_factory=list)
    announced: list[str] = field(default_factory=list)


class Scheduler:
    """Starts due schedules' runs, while this replica holds the scheduling lock."""

    def __init__(
        self, pool: asyncpg.Pool, dsn: str, launcher: RunLauncher, lifecycle: RunLifecycle, clock: Clock
    ) -> None:
        self._pool, self._dsn, self._launcher, self._lifecycle, self._clock = pool, dsn, launcher, lifecycle, clock
        self._lock: asyncpg.Connection | None = None
        #: Set while this replica is the scheduling leader.
        self.leading = asyncio.Event()

    async def tick(self) -> Tick:
        """Start every due schedule's run (up to a batch), then announce finished runs nobody announced."""
        done, now = Tick(), self._clock.now()
        for _ in range(TICK_BATCH):
            claimed = await self._claim(now)
            if claimed is None:
                break
            schedule, active = claimed
            if active is not None:
                log.info("schedule %s: its run %s is still going; skipping this turn", schedule.schedule_id, active)
                done.skipped.append(schedule.schedule_id)
                continue
            run_id = await self._start(schedule, done)
            if run_id is not None:
                await self._pool.execute(
                    "UPDATE schedules SET last_run_id = $2, last_run_at = $3 WHERE schedule_id = $1",
                    schedule.schedule_id,
                    run_id,
                    now,
                )
        done.announced = await self._lifecycle.announce_overdue()
        return done

    async def _claim(self, now: datetime) -> tuple[Schedule, str | None] | None:
        """Take the next due schedule's turn: move it on; with the id of its run that is still going, if any."""
        async with self._pool.acquire() as conn, conn.transaction():
            row = await conn.fetchrow(
                """
                SELECT * FROM schedules WHERE next_run_at <= $1
                 ORDER BY next_run_at, schedule_id LIMIT 1 FOR UPDATE SKIP LOCKED
                """,
                now,
            )
            if row is None:
                return None
            schedule = schedule_of(row)
            active: str | None = await conn.fetchval(
                "SELECT run_id FROM runs WHERE schedule_id = $1 AND status = ANY($2::text[]) LIMIT 1",
                schedule.schedule_id,
                list(ACTIVE_STATUSES),
            )
            await conn.execute(
                "UPDATE schedules SET next_run_at = $2 WHERE schedule_id = $1",
                schedule.schedule_id,
                following_run(schedule, now),
            )
        return schedule, active

    async def _start(self, schedule: Schedule, done: Tick) -> str | None:
        """Start a claimed turn's run; its id, or None when it was refused (and logged)."""
        request = StartRun(
            tenant_id=schedule.tenant_id,
            connection_id=schedule.connection_id,
            table_name=schedule.table_name,
            sync_mode=schedule.sync_mode,
            cursor_column=schedule.cursor_column,
            detect_deletes=schedule.detect_deletes,
            schedule_id=schedule.schedule_id,
        )
        try:
            run = await self._launcher.start(request)
        except Conflict as exc:
            log.info("schedule %s: skipping this turn: %s", schedule.schedule_id, exc)
            done.skipped.append(schedule.schedule_id)
            return None
        except LakegateError as exc:
            log.warning("schedule %s: its run was not started: %s", schedule.schedule_id, exc)
            done.refused.append(schedule.schedule_id)
            return None
        log.info("schedule %s started run %s", schedule.schedule_id, run.run_id)
        done.started.append(run.run_id)
        return run.run_id

    async def lead(self) -> bool:
        """Whether this replica is the scheduling leader, taking the lock when it is free."""
        try:
            if self.leading.is_set():
                if self._lock is None or self._lock.is_closed():
                    raise ConnectionError("the connection holding the lock closed")
                await self._lock.fetchval("SELECT 1")  # the session, and so the lock, is still there
                return True
            if self._lock is None or self._lock.is_closed():
                self._lock = await asyncpg.connect(self._dsn)
            if await self._lock.fetchval("SELECT pg_try_advisory_lock($1)", SCHEDULER_LOCK):
                log.info("this catalog replica now starts the runs of due schedules")
                self.leading.set()
            return self.leading.is_set()
        except Exception as exc:  # whatever broke the lock's session (asyncpg has several), the lock is not ours
            if self.leading.is_set():
                log.warning("lost the scheduling lock (%s); another replica will take over", exc)
            await self.release()
            return False

    async def run(self, every: float) -> None:
        """Tick every `every` seconds while leading; try to lead as often."""
        while True:
            try:
                if await self.lead():
                    await self.tick()
            except Exception:
                log.exception("scheduler tick failed; trying again in %gs", every)
            await asyncio.sleep(every)  # paces the loop; nothing waits on it

    async def release(self) -> None:
        """Give up leadership: close the lock's session, so another replica can take it."""
        self.leading.clear()
        lock, self._lock = self._lock, None
        if lock is not None:
            with contextlib.suppress(Exception):
                await lock.close(timeout=5)


@contextlib.asynccontextmanager
async def scheduling(scheduler: Scheduler, every: float, enabled: bool) -> AsyncIterator[Scheduler]:
    """Run the scheduler loop while the body runs (when enabled); give up the lock on exit."""
    task = asyncio.create_task(scheduler.run(every), name="lakegate-catalog-scheduler") if enabled else None
    try:
        yield scheduler
    finally:
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        await scheduler.release()
