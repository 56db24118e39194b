"""The run state machine, driven by the steps on `run.<run_id>.<step>`.

    queued ──▶ extracting ──▶ loading ──▶ succeeded
       └───────────┴─────────────┴──────▶ failed

Status only moves forward. A duplicate or late step (a redelivery, or `extracting` arriving after
`loaded`) changes nothing. `loaded` waits (transiently) until `extracted` has been recorded, so a
succeeded run always has its columns. The row is locked, decided on and written in one transaction;
the public event is published after the commit and remembered once JetStream accepted it, so a
failed publish is retried by redelivering the step and a redelivered step publishes nothing twice.
"""

from __future__ import annotations

import logging
from dataclasses import replace
from datetime import datetime

import asyncpg
from lakegate.catalog.datasets import record_dataset
from lakegate.catalog.events import outcome_of, sync_event
from lakegate.catalog.publisher import Publisher
from lakegate.catalog.runs import RunRecord, RunStore, run_not_found, write_run
from lakegate.common.contracts.runs import (
    TERMINAL_STATUSES,
    ErrorInfo,
    Extracted,
    Extracting,
    Failed,
    Loaded,
    Loading,
    RunStatus,
)
from lakegate.common.errors import Conflict, InvalidInput
from lakegate.common.subjects import RunStep
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
_STEP_NAMES: dict[type[Step], RunStep] = {model: name for name, model in STEP_MODELS.items()}
_RANK: dict[RunStatus, int] = {"queued": 0, "extracting": 1, "loading": 2, "succeeded": 3, "failed": 3}


def parse_step(subject: str, body: bytes) -> Step:
    """The step model named by the last token of a `run.<run_id>.<step>` subject."""
    name = subject.rsplit(".", 1)[-1]
    try:
        model = STEP_MODELS[RunStep(name)]
    except ValueError:
        raise InvalidInput(f"{subject} names no run step; expected one of {[s.value for s in RunStep]}") from None
    try:
        step = model.model_validate_json(body)
    except ValidationError as exc:
        raise InvalidInput(f"step on {subject} is not a valid {model.__name__} message: {exc}") from None
    if not subject.endswith(f".{step.run_id}.{name}"):
        raise InvalidInput(f"step on {subject} is about run {step.run_id}; a step is published on its own run")
    return step


def step_name(step: Step) -> RunStep:
    """The step a message reports, e.g. `loaded`."""
    return _STEP_NAMES[type(step)]


def _forward(run: RunRecord, status: RunStatus) -> RunStatus:
    return status if _RANK[status] > _RANK[run.status] else run.status


def advance(run: RunRecord, step: Step, now: datetime) -> RunRecord:
    """The run after `step`; the same run when the step is late or a duplicate."""
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
            return run
        case Extracted():
            if _RANK[run.status] > _RANK["extracting"] and run.columns is not None:
                return run
            return replace(
                run,
                status=_forward(run, "extracting"),
                started_at=started,
                columns=step.columns,
                primary_key=step.primary_key,
                staged_rows=step.row_count,
                staged_bytes=step.staged.bytes,
            )
        case Loading():
            return replace(run, status=_forward(run, "loading"), started_at=started)
        case Loaded():
            if run.columns is None:
                raise Conflict(
                    f"run {run.run_id} reported `loaded` before the catalog recorded its `extracted` step; "
                    "retrying until that step is recorded"
                )
            return replace(
                run,
                status="succeeded",
                started_at=started,
                row_count=step.row_count,
                bytes=step.bytes,
                table_version=step.table_version,
                finished_at=now,
            )
        case Failed():
            return replace(run, status="failed", error=step.error, failed_step=step.step, finished_at=now)


class RunLifecycle:
    """Applies steps to runs and announces finished runs."""

    def __init__(self, pool: asyncpg.Pool, runs: RunStore, publisher: Publisher) -> None:
        self._pool, self._runs, self._publisher = pool, runs, publisher

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
        if run != before:
            log.info("run %s: %s → %s", run.run_id, before.status, run.status)
        await self.announce(run)
        return run

    async def announce(self, run: RunRecord) -> None:
        """Publish a finished run's event unless it already was."""
        if run.status not in TERMINAL_STATUSES or run.event_published_at is not None:
            return
        await self._publisher.sync_event(sync_event(run), outcome_of(run))
        await self._runs.mark_announced(run.run_id)

    async def fail(self, tenant_id: str, run_id: str, step: str, error: ErrorInfo) -> RunRecord:
        """Mark a run failed because the catalog itself could not carry it further."""
        return await self.apply(Failed(tenant_id=tenant_id, run_id=run_id, step=step, error=error))
