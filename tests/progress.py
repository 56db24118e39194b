"""Watching runs from the outside, as any NATS subscriber could."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import nats
from lakegate.common.contracts.runs import Progress
from lakegate.devstack.stack import Stack
from nats.aio.msg import Msg


@asynccontextmanager
async def extracting_runs(stack: Stack) -> AsyncIterator[asyncio.Queue[str]]:
    """Run ids as their extraction reports its first rows, from the runs' progress subjects."""
    nc = await nats.connect(stack.urls.nats, **stack.nats_credentials())
    extracting: asyncio.Queue[str] = asyncio.Queue()

    async def on_progress(msg: Msg) -> None:
        progress = Progress.model_validate_json(msg.data)
        if progress.step == "extracting" and progress.rows > 0:
            extracting.put_nowait(progress.run_id)

    await nc.subscribe(stack.topology.progress("*"), cb=on_progress)
    await nc.flush()
    try:
        yield extracting
    finally:
        await nc.close()
