"""Stopping work on a run that was cancelled.

`cancel_sync` makes the catalog record the run `cancelled` and publish on core NATS
`cancel.<run_id>`; whoever works on the run stops. A worker subscribes to that subject before it
starts and then asks the catalog for the run's status, so a cancel that came before it subscribed
is not missed. On a cancel the work is cancelled (the reading thread stops, the source transaction
rolls back); the caller then deletes what it staged and acknowledges its command, publishing
nothing more for the run.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

from lakegate.common.contracts.runs import RunRef, RunView
from lakegate.common.service import Runtime
from nats.aio.msg import Msg

log = logging.getLogger(__name__)


async def unless_cancelled(rt: Runtime, tenant_id: str, run_id: str, work: Callable[[], Awaitable[object]]) -> bool:
    """Run `work` until it ends or the run is cancelled; True when it was cancelled (and `work` stopped)."""
    cancelled = asyncio.Event()

    async def on_cancel(_msg: Msg) -> None:
        cancelled.set()

    subscription = await rt.broker.connection.subscribe(rt.topology.cancel(run_id), cb=on_cancel)
    try:
        run = await rt.rpc.call(rt.topology.runs_get, RunRef(tenant_id=tenant_id, run_id=run_id), RunView)
        if run.status == "cancelled":
            return True
        task = asyncio.ensure_future(work())
        stop = asyncio.ensure_future(cancelled.wait())
        try:
            await asyncio.wait({task, stop}, return_when=asyncio.FIRST_COMPLETED)
            stopped = not task.done()
        finally:
            stop.cancel()
            if not task.done():
                task.cancel()
                await asyncio.wait({task})  # let it clean up; its CancelledError is not ours
        if stopped:
            if not task.cancelled() and task.exception() is not None:
                log.info("run %s: work stopped by the cancel ended with %r", run_id, task.exception())
            return True
        task.result()  # the work's own error, if any
        return False
    finally:
        await subscription.unsubscribe()
