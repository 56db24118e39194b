"""Following a sync run while the tool call that started it waits.

The edge listens on core NATS (so it consumes nothing from the streams) to the run's step subjects,
its lossy progress subject and the tenant's public sync events, and only then re-reads the run from
the catalog, so a step taken before the subscriptions existed still counts. It waits until the
catalog says the run is terminal or the wait is over, and turns every step into MCP progress.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass

from lakegate.common.contracts.events import SyncEvent
from lakegate.common.contracts.runs import (
    TERMINAL_STATUSES,
    Extracted,
    Failed,
    Loaded,
    Progress,
    RunRef,
    RunView,
)
from lakegate.common.errors import TransientError
from lakegate.common.subjects import RunStep
from lakegate.edge.backend import Backend
from nats.aio.msg import Msg
from nats.aio.subscription import Subscription
from pydantic import ValidationError

log = logging.getLogger(__name__)

#: Reports progress to the MCP client: (progress, total, message), like `Context.report_progress`.
ReportProgress = Callable[[float, float | None, str | None], Awaitable[None]]

#: Progress phases: the value goes 0 → 4 and only ever increases; `TOTAL` is sent as the total.
QUEUED, EXTRACTING, LOADING, FINISHING, DONE = range(5)
TOTAL = float(DONE)
#: Rows move progress within a phase without ever reaching the next one.
_ROWS_SCALE = 100_000


@dataclass(frozen=True)
class Signal:
    """Something a run reported: which phase it is in, and words for the client."""

    phase: int
    message: str
    rows: int | None = None
    settles: bool = False  # the run may be terminal now: re-read it from the catalog


class ProgressMeter:
    """Turns a run's signals into MCP progress notifications whose value only increases."""

    def __init__(self, report: ReportProgress) -> None:
        self._report = report
        self._phase = QUEUED
        self._last = -1.0
        self._said = ""

    async def show(self, signal: Signal) -> None:
        """Report one signal, unless it is behind what was shown already or says nothing new."""
        if signal.phase < self._phase:
            return  # e.g. a re-read that lags behind the steps already seen
        rows = signal.rows or 0
        value = signal.phase + (rows / (rows + _ROWS_SCALE) if signal.phase < DONE else 0.0)
        if value <= self._last:
            if signal.message == self._said:
                return
            value = self._last + 1e-4  # a new message within the same phase still moves forward
        if value >= signal.phase + 1 or value > TOTAL:
            return
        self._phase, self._last, self._said = signal.phase, value, signal.message
        await self._report(round(value, 6), TOTAL, signal.message)


def status_signal(run: RunView) -> Signal:
    """The signal a run's recorded status amounts to."""
    rows = f"{run.row_count:,} rows" if run.row_count is not None else "rows"
    if run.status == "queued":
        return Signal(QUEUED, f"run {run.run_id} queued: syncing {run.source_table} into {run.target}")
    if run.status == "extracting":
        return Signal(EXTRACTING, f"extracting {run.source_table}", run.row_count)
    if run.status == "loading":
        return Signal(LOADING, f"loading {rows} into {run.target}", run.row_count)
    if run.status == "succeeded":
        return Signal(DONE, f"succeeded: {rows} in {run.target}")
    return Signal(DONE, f"failed: {run.error.message if run.error else 'no reason recorded'}")


class RunWatch:
    """Waits for sync runs over the edge's NATS connection."""

    def __init__(self, backend: Backend, *, poll_seconds: float = 5.0) -> None:
        self._backend = backend
        # Core NATS may drop a message (a reconnect, a slow consumer); a periodic re-read bounds the cost.
        self._poll_seconds = poll_seconds

    async def follow(self, run: RunView, wait_seconds: float, report: ReportProgress) -> RunView:
        """Wait until `run` is terminal or `wait_seconds` have passed; return it as the catalog has it."""
        public = self._backend.failures.public

        async def report_public(progress: float, total: float | None, message: str | None) -> None:
            # Step messages quote other services' errors; they reach the client like any tool error.
            await report(progress, total, public(message) if message else message)

        meter = ProgressMeter(report_public)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + wait_seconds
        async with self._signals(run) as inbox:
            run = await self._refresh(run)
            await meter.show(status_signal(run))
            while run.status not in TERMINAL_STATUSES:
                remaining = deadline - loop.time()
                if remaining <= 0:
                    return await self._refresh(run)  # the handle shows the latest status, not the last one read
                try:
                    signal = await asyncio.wait_for(inbox.get(), min(remaining, self._poll_seconds))
                except TimeoutError:
                    run = await self._refresh(run)
                    await meter.show(status_signal(run))
                    continue
                await meter.show(signal)
                if signal.settles:
                    run = await self._refresh(run)
                    await meter.show(status_signal(run))
        return run

    async def _read(self, run: RunView) -> RunView:
        backend = self._backend
        return await backend.call(
            backend.topology.runs_get, RunRef(tenant_id=run.tenant_id, run_id=run.run_id), RunView
        )

    async def _refresh(self, run: RunView) -> RunView:
        # The run is started: a catalog that is briefly away is no reason to fail the tool call.
        try:
            return await self._read(run)
        except TransientError as exc:
            log.warning("could not re-read run %s, still waiting: %s", run.run_id, exc)
            return run

    @contextlib.asynccontextmanager
    async def _signals(self, run: RunView) -> AsyncIterator[asyncio.Queue[Signal]]:
        topology = self._backend.topology
        connection = self._backend.runtime.broker.connection
        steps = {topology.run_step(run.run_id, step): step for step in RunStep}
        progress = topology.progress(run.run_id)
        inbox: asyncio.Queue[Signal] = asyncio.Queue()

        async def deliver(msg: Msg) -> None:
            signal = decode(run, msg.subject, msg.data, steps=steps, progress=progress)
            if signal is not None:
                inbox.put_nowait(signal)

        subscriptions: list[Subscription] = []
        try:
            for subject in (*steps, progress, topology.sync_events(run.tenant_id)):
                subscriptions.append(await connection.subscribe(subject, cb=deliver))
            await connection.flush()  # the server holds the subscriptions before the run is re-read
            yield inbox
        finally:
            for subscription in subscriptions:
                with contextlib.suppress(Exception):
                    await subscription.unsubscribe()


def decode(run: RunView, subject: str, data: bytes, *, steps: dict[str, RunStep], progress: str) -> Signal | None:
    """Read one message about `run`; None when it is about another run or cannot be read."""
    if subject in steps:
        return step_signal(run, steps[subject], data)
    try:
        if subject == progress:
            update = Progress.model_validate_json(data)
            phase, where = (EXTRACTING, run.source_table) if update.step == "extracting" else (LOADING, run.target)
            return Signal(phase, f"{update.step} {where}: {update.rows:,} rows so far", update.rows)
        event = SyncEvent.model_validate_json(data)
    except ValidationError as exc:
        log.debug("ignoring an unreadable message on %s: %s", subject, exc)
        return None
    outcome = event.data
    if outcome.run_id != run.run_id:
        return None
    if outcome.status == "succeeded":
        return Signal(FINISHING, f"sync completed: {outcome.row_count or 0:,} rows", settles=True)
    reason = outcome.error.message if outcome.error else "no reason recorded"
    return Signal(FINISHING, f"sync failed: {reason}", settles=True)


def step_signal(run: RunView, step: RunStep, data: bytes) -> Signal:
    """The signal of one run step; its body only adds detail, so an unreadable one still counts."""
    try:
        if step is RunStep.EXTRACTED:
            rows = Extracted.model_validate_json(data).row_count
            return Signal(LOADING, f"extracted {rows:,} rows from {run.source_table}; waiting for the loader", rows)
        if step is RunStep.LOADED:
            rows = Loaded.model_validate_json(data).row_count
            return Signal(FINISHING, f"loaded {rows:,} rows into {run.target}; recording the run", settles=True)
        if step is RunStep.FAILED:
            failed = Failed.model_validate_json(data)
            return Signal(FINISHING, f"the {failed.step} step failed: {failed.error.message}", settles=True)
    except ValidationError as exc:
        log.debug("run %s step %s has an unreadable body: %s", run.run_id, step.value, exc)
    plain = {
        RunStep.EXTRACTING: Signal(EXTRACTING, f"extracting {run.source_table}"),
        RunStep.EXTRACTED: Signal(LOADING, f"extracted {run.source_table}; waiting for the loader"),
        RunStep.LOADING: Signal(LOADING, f"loading into {run.target}"),
        RunStep.LOADED: Signal(FINISHING, f"loaded into {run.target}; recording the run", settles=True),
        RunStep.FAILED: Signal(FINISHING, "a step failed; reading the run", settles=True),
    }
    return plain[step]
