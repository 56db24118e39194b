"""Following a sync run while the tool call that started it waits.

The edge listens on core NATS (so it consumes nothing from the streams) to everything the run says
(`run_signals.RunSignals.subjects`), and only then re-reads the run from the catalog, so a step
taken before the subscriptions existed still counts. It waits until the catalog says the run is
terminal (succeeded, failed or cancelled) or the wait is over, and turns every message into MCP
progress. Each step of the run is also announced as an update of the resource `run://<id>` to the
`subscriptions/listen` streams (2026-07-28) that subscribed to it, and its end as an update of
`datasource://<id>/status` (the source was just read, so a listener re-checks it).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator

from lakegate.common.contracts.runs import TERMINAL_STATUSES, RunRef, RunView
from lakegate.common.errors import TransientError
from lakegate.edge.backend import Backend
from lakegate.edge.progress import ProgressMeter, ReportProgress, Signal
from lakegate.edge.run_signals import RunSignals, status_signal
from mcp.server.subscriptions import ResourceUpdated, SubscriptionBus
from nats.aio.msg import Msg
from nats.aio.subscription import Subscription

log = logging.getLogger(__name__)


class RunWatch:
    """Waits for sync runs over the edge's NATS connection."""

    def __init__(self, backend: Backend, updates: SubscriptionBus, *, poll_seconds: float = 5.0) -> None:
        self._backend = backend
        self._updates = updates
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
        resource = ResourceUpdated(uri=f"run://{run.run_id}")
        async with self._signals(run) as inbox:
            run = await self._refresh(run)
            await meter.show(status_signal(run))
            await self._updates.publish(resource)
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
                await self._updates.publish(resource)
                if signal.settles:
                    run = await self._refresh(run)
                    await meter.show(status_signal(run))
            await self._updates.publish(resource)
        await self._updates.publish(ResourceUpdated(uri=f"datasource://{run.connection_id}/status"))
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
        reader = RunSignals(run, self._backend.topology)
        connection = self._backend.runtime.broker.connection
        inbox: asyncio.Queue[Signal] = asyncio.Queue()

        async def deliver(msg: Msg) -> None:
            signal = reader.read(msg.subject, msg.data)
            if signal is not None:
                inbox.put_nowait(signal)

        subscriptions: list[Subscription] = []
        try:
            for subject in reader.subjects:
                subscriptions.append(await connection.subscribe(subject, cb=deliver))
            await connection.flush()  # the server holds the subscriptions before the run is re-read
            yield inbox
        finally:
            for subscription in subscriptions:
                with contextlib.suppress(Exception):
                    await subscription.unsubscribe()
