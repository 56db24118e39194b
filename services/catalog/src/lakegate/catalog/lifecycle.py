"""The run state machine, driven by the steps on `run.<run_id>.<step>` and by cancellation.

    queued ──▶ extracting ──▶ loading ──▶ succeeded     (`loading` may come before `extracted`: a
                                                      loader that loads while the run is extracted)
       ├───────────┴─────────────┴──────▶ failed
       └───────────┴─────────────┴──────▶ cancelled ──(a `loaded` that raced the cancel)──▶ succeeded

Status only moves forward. A duplicate or late step (a redelivery, or `extracting` arriving after
`loaded`) changes nothing. `loaded` waits (transiently) until `extracted` has been recorded, so a
succeeded run always has its columns. The row is locked, decided on and written in one transaction;
the public event is published after the commit and remembered once JetStream accepted it, so a
failed publish is retried by redelivering the step and a redelivered step publishes nothing twice.

A run succeeds in the transaction that also stores its table's new cursor and dataset, so the
cursor moves only with a committed load. A cancelled run is finished, with one exception: the
loader may have committed before it heard of the cancel, and then `loaded` arrives afterwards.
The data is in the table, so the run becomes `succeeded` (its cursor advances, a completed event
follows the cancelled one); anything else that arrives for a cancelled run changes nothing, and a
step that shows a worker still busy with it repeats the cancel signal.
"""

from __future__ import annotations

import logging
from dataclasses import replace
from datetime import datetime

import asyncpg
from lakegate.catalog.cursors import normalise, record_cursor
from lakegate.catalog.datasets import record_dataset
from lakegate.catalog.events import outcome_of, sync_event
from lakegate.catalog.publisher import Publisher
from lakegate.catalog.runs import RunRecord, RunStore, run_not_found, write_run
from lakegate.common.contracts.runs import (
    TERMINAL_STATUSES,
    CancelRun,
    ErrorInfo,
    Extracted,
    Extracting,
    Failed,
    Loaded,
    Loading,
    RunStatus,
)
from lakegate.common.errors import Cancelled, Conflict, InvalidInput, LakegateError, first_invalid
from lakegate.common.metrics import ServiceMetrics
from lakegate.common.subjects import STREAMING_STEP, RunStep
from pydantic import ValidationError

log = logging.getLogger(__name__)

Step = Extracting | Extracted | Loading | Loaded | Failed
STEP_MODELS: dict[RunStep, type[Step]] = {
    RunStep.EXTRACTING: Extracting,
    RunStep.EXTRACTED: Extracted,
    RunStep.LOADING: Loading,
    RunStep.LOADED: Loaded,
    RunStep.FAILED: Failed,
}
#: Steps on the run subjects that are not the catalog's business: a range is one part of an extraction,
#: which reports the whole as `extracted`; `streaming` tells the loader where an attempt's parts are.
UNTRACKED_STEPS: frozenset[str] = frozenset({RunStep.RANGE, STREAMING_STEP})
_STEP_NAMES: dict[type[Step], RunStep] = {model: name for name, model in STEP_MODELS.items()}
_RANK: dict[RunStatus, int] = {
    "queued": 0,
    "extracting": 1,
    "loading": 2,
    "succeeded": 3,
    "failed": 3,
    "cancelled": 3,
}


def tracked(subject: str) -> bool:
    """Whether the step on `run.<run_id>.<step>` moves the run; False for steps the catalog only acknowledges."""
    return subject.rsplit(".", 1)[-1] not in UNTRACKED_STEPS


def parse_step(subject: str, body: bytes) -> Step:
    """The step model named by the last token of a `run.<run_id>.<step>` subject."""
    name = subject.rsplit(".", 1)[-1]
    try:
        model = STEP_MODELS[RunStep(name)]
    except (ValueError, KeyError):
        raise InvalidInput(f"{subject} names no run step; expected one of {[s.value for s in RunStep]}") from None
    try:
        step = model.model_validate_json(body)
    except ValidationError as exc:
        raise InvalidInput(f"step on {subject} is not a valid {model.__name__} message: {first_invalid(exc)}") from None
    if not subject.endswith(f".{step.run_id}.{name}"):
        raise InvalidInput(f"step on {subject} is about run {step.run_id}; a step is published on its own run")
    return step


def step_name(step: Step) -> RunStep:
    """The step a message reports, e.g. `loaded`."""
    return _STEP_NAMES[type(step)]


def _forward(run: RunRecord, status: RunStatus) -> RunStatus:
    return status if _RANK[status] > _RANK[run.status] else run.status


def _extracted(run: RunRecord, step: Extracted) -> RunRecord:
    """What the `extracted` step records, whatever the status: columns, key, rows, bytes and cursor."""
    return replace(
        run,
        columns=step.columns,
        primary_key=step.primary_key,
        staged_rows=step.row_count,
        staged_bytes=step.staged.bytes + sum(part.bytes for part in step.ranges),
        cursor=normalise(step.cursor) if step.cursor else None,
    )


def _loaded(run: RunRecord, step: Loaded, now: datetime) -> RunRecord:
    if run.columns is None:
        raise Conflict(
            f"run {run.run_id} reported `loaded` before the catalog recorded its `extracted` step; "
            "retrying until that step is recorded"
        )
    return replace(
        run,
        status="succeeded",
        started_at=run.started_at or now,
        row_count=step.row_count,
        bytes=step.bytes,
        table_version=step.table_version,
        schema_changes=step.schema_changes,
        deleted_rows=step.deleted_rows,
        finished_at=now,
    )


def _after_cancel(run: RunRecord, step: Step, now: datetime) -> RunRecord:
    """A cancelled run learns what was extracted, and succeeds if its load committed anyway."""
    match step:
        case Extracted() if run.columns is None:
            return _extracted(run, step)
        case Loaded():
            # The table holds the run's rows: say so, and announce the completion after the cancellation.
            succeeded = _loaded(run, step, now)
            return replace(succeeded, error=None, failed_step=None, event_published_at=None)
        case _:
            return run


def advance(run: RunRecord, step: Step, now: datetime) -> RunRecord:
    """The run after `step`; the same run when the step is late or a duplicate."""
    if run.status == "cancelled":
        return _after_cancel(run, step, now)
    if run.status in TERMINAL_STATUSES:
        return run
    started = run.started_at or now
    match step:
        case Extracting():
            if run.status == "queued" or (run.status == "extracting" and step.attempt != run.attempt):
                # A new attempt while extracting: the previous extractor died and the command was redelivered.
                return replace(
                    run, status="extracting", started_at=started, attempt=step.attempt, attempts=run.attempts + 1
                )
            if run.status == "loading" and run.columns is None and step.attempt != run.attempt:
                # A new attempt while a loader followed the last one's parts: it follows the new one's now.
                return replace(run, attempt=step.attempt, attempts=run.attempts + 1)
            return run
        case Extracted():
            if _RANK[run.status] > _RANK["extracting"] and run.columns is not None:
                return run
            return replace(_extracted(run, step), status=_forward(run, "extracting"), started_at=started)
        case Loading():
            return replace(run, status=_forward(run, "loading"), started_at=started)
        case Loaded():
            return _loaded(run, step, now)
        case Failed():
            return replace(run, status="failed", error=step.error, failed_step=step.step, finished_at=now)


def cancelled(run: RunRecord, now: datetime) -> RunRecord:
    """The run after a request to cancel it: an unfinished run is cancelled, a cancelled one stays so."""
    if run.status == "cancelled":
        return run
    if run.status in TERMINAL_STATUSES:
        assert run.finished_at is not None  # a finished run always has its finish time
        raise InvalidInput(
            f"run {run.run_id} already finished: it {run.status} at {run.finished_at:%Y-%m-%d %H:%M:%S} UTC, so "
            "there is nothing to cancel"
        )
    reason = Cancelled(
        f"run {run.run_id} was cancelled on request while {run.status}; {run.target} keeps what it held before "
        "and the cursor did not move; start the sync again when you want it"
    )
    return replace(
        run,
        status="cancelled",
        error=ErrorInfo(code=reason.code, message=reason.message),
        failed_step=run.status,
        finished_at=now,
        cancelled_at=now,
    )


class RunLifecycle:
    """Applies steps to runs and announces finished runs."""

    def __init__(
        self, pool: asyncpg.Pool, runs: RunStore, publisher: Publisher, metrics: ServiceMetrics | None = None
    ) -> None:
        self._pool, self._runs, self._publisher = pool, runs, publisher
        self._metrics = metrics or ServiceMetrics("catalog")

    def _moved(self, before: RunRecord, run: RunRecord) -> None:
        """Count a run that reached a new status, and a finished sync's rows and bytes."""
        if run.status == before.status:
            return
        self._metrics.run_reached(run.status, run.sync_mode)
        if run.status == "succeeded":
            self._metrics.moved("synced", run.sync_mode, run.row_count or 0, run.bytes or 0)

    async def apply(self, step: Step) -> RunRecord:
        """Record one step, then publish the public event if the run is finished and not yet announced."""
        async with self._pool.acquire() as conn, conn.transaction():
            row = await conn.fetchrow("SELECT *, now() AS now FROM runs WHERE run_id = $1 FOR UPDATE", step.run_id)
            if row is None or row["tenant_id"] != step.tenant_id:
                raise run_not_found(step.run_id)
            before = RunRecord.from_row(row)
            run = advance(before, step, row["now"])
            if run != before:
                await write_run(conn, run)
                if run.status == "succeeded":
                    await record_dataset(conn, run)
                    await record_cursor(conn, run)
        if run.status != before.status:
            log.info("run %s: %s → %s", run.run_id, before.status, run.status)
            self._moved(before, run)
        if run.status == "cancelled" and isinstance(step, (Extracting, Extracted, Loading)):
            # Someone still works on a cancelled run (a redelivered command, a missed signal): tell it again.
            await self._signal_cancel(run)
        await self.announce(run)
        return run

    async def cancel(self, tenant_id: str, run_id: str) -> RunRecord:
        """Cancel an unfinished run: record it, tell its workers to stop, announce it; again is harmless."""
        async with self._pool.acquire() as conn, conn.transaction():
            row = await conn.fetchrow("SELECT *, now() AS now FROM runs WHERE run_id = $1 FOR UPDATE", run_id)
            if row is None or row["tenant_id"] != tenant_id:
                raise run_not_found(run_id)
            before = RunRecord.from_row(row)
            run = cancelled(before, row["now"])
            if run != before:
                await write_run(conn, run)
        if run != before:
            log.info("run %s: %s → cancelled", run.run_id, before.status)
            self._moved(before, run)
        await self._publisher.cancel(CancelRun(tenant_id=run.tenant_id, run_id=run.run_id))
        await self.announce(run)
        return run

    async def _signal_cancel(self, run: RunRecord) -> None:
        try:
            await self._publisher.cancel(CancelRun(tenant_id=run.tenant_id, run_id=run.run_id))
        except LakegateError as exc:  # the step is still recorded; the worker's next step repeats the signal
            log.warning("cancel signal for run %s not sent: %s", run.run_id, exc)

    async def announce(self, run: RunRecord) -> None:
        """Publish a finished run's event unless it already was."""
        if run.status not in TERMINAL_STATUSES or run.event_published_at is not None:
            return
        await self._publisher.sync_event(sync_event(run), outcome_of(run))
        await self._runs.mark_announced(run.run_id)

    async def announce_overdue(self) -> list[str]:
        """Publish the events of runs that finished a while ago unannounced; the ids of those announced."""
        announced = []
        for run in await self._runs.unannounced():
            try:
                await self.announce(run)
            except LakegateError as exc:  # NATS is away: the next sweep tries again
                log.warning("the event of run %s is still not published: %s", run.run_id, exc)
                break
            log.info("published the overdue event of run %s", run.run_id)
            announced.append(run.run_id)
        return announced

    async def fail(self, tenant_id: str, run_id: str, step: str, error: ErrorInfo) -> RunRecord:
        """Mark a run failed because the catalog itself could not carry it further."""
        return await self.apply(Failed(tenant_id=tenant_id, run_id=run_id, step=step, error=error))
