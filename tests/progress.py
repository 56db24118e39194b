"""Watching runs from the outside, as any NATS subscriber could."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import nats
from lakegate.devstack.stack import Stack


@asynccontextmanager
async def extracting_runs(stack: Stack) -> AsyncIterator[asyncio.Queue[str]]:
    """Run ids as their extraction reports its first rows, from the runs' progress subjects."""
    nc = await nats.connect(stack.urls.nats, **stack.nats_credentials())
    extracting: asyncio.Queue[str] = asyncio.Queue()

    async def on_progress(msg: Any) -> None:
        body = json.loads(msg.data)
        if body.get("step") == "extracting" and body.get("rows", 0) > 0:
            extracting.put_nowait(body["run_id"])

    await nc.subscribe("lakegate.progress.*", cb=on_progress)
    await nc.flush()
    try:
        yield extracting
    finally:
        await nc.close()
