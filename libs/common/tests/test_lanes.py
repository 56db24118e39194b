"""Lanes: a busy tenant waits in its own lane, and a full lane refuses at once, naming its setting."""

from __future__ import annotations

import asyncio

import pytest
from lakegate.common.errors import Unavailable
from lakegate.common.lanes import Lanes, RequestLanes


async def test_another_tenant_runs_while_one_tenants_lane_is_full() -> None:
    lanes = RequestLanes(
        tenants=Lanes("tenant", 1, 1, "LANE_PER_TENANT"), sources=Lanes("source", 1, 1, "LANE_PER_SOURCE")
    )
    release = asyncio.Event()
    holding = asyncio.Event()

    async def slow() -> None:
        async with lanes.enter("noisy", "db1"):
            holding.set()
            await release.wait()

    blocker = asyncio.create_task(slow())
    await holding.wait()
    waiter = asyncio.create_task(slow())  # waits in the noisy tenant's lane
    await asyncio.sleep(0)

    async with lanes.enter("quiet", "db2"):
        ran_beside = not blocker.done()

    with pytest.raises(Unavailable) as raised:
        async with lanes.enter("noisy"):
            pass
    release.set()
    await asyncio.gather(blocker, waiter)

    assert ran_beside
    assert "tenant noisy already has 1 requests running and 1 waiting" in raised.value.message
    assert "LANE_PER_TENANT" in raised.value.message
    assert lanes.tenants.busy("noisy") == 0


async def test_a_slow_source_holds_only_its_own_lane_within_a_tenant() -> None:
    lanes = RequestLanes(tenants=Lanes("tenant", 4, 4, "T"), sources=Lanes("source", 1, 0, "LANE_PER_SOURCE"))
    release = asyncio.Event()
    holding = asyncio.Event()

    async def hung() -> None:
        async with lanes.enter("t", "hung-host"):
            holding.set()
            await release.wait()

    task = asyncio.create_task(hung())
    await holding.wait()
    async with lanes.enter("t", "healthy-host"):
        other_source_ran = True
    with pytest.raises(Unavailable) as raised:
        async with lanes.enter("t", "hung-host"):
            pass
    release.set()
    await task

    assert other_source_ran
    assert "source hung-host already has 1 requests running and 0 waiting" in raised.value.message


async def test_shared_slots_bound_the_whole_process_in_arrival_order() -> None:
    lanes = RequestLanes(
        tenants=Lanes("tenant", 2, 8, "T"), sources=Lanes("source", 2, 8, "S"), shared=asyncio.Semaphore(1)
    )
    order: list[str] = []
    gate = asyncio.Event()

    async def work(name: str) -> None:
        async with lanes.enter(name):
            order.append(name)
            await gate.wait()

    first = asyncio.create_task(work("a"))
    await asyncio.sleep(0)
    second = asyncio.create_task(work("b"))
    await asyncio.sleep(0)
    assert order == ["a"]
    gate.set()
    await asyncio.gather(first, second)

    assert order == ["a", "b"]
