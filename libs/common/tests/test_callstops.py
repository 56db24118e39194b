"""What a service remembers of cancelled calls, and how a call's stop meets its commit point."""

from __future__ import annotations

import asyncio

import pytest
from lakegate.common.callstops import CallStops, Stop
from lakegate.common.errors import Cancelled
from lakegate.common.subjects import Topology


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def stops(clock: Clock, *, seconds: float = 10.0, most: int = 3) -> CallStops:
    return CallStops(Topology(prefix="test"), remember_seconds=seconds, remember_most=most, clock=clock)


def test_a_cancel_is_remembered_for_its_window_and_then_forgotten() -> None:
    clock = Clock()
    record = stops(clock)
    record.cancel("call_a")

    clock.now = 9.9
    remembered_within = record.was_cancelled("call_a")
    clock.now = 10.0
    remembered_after = record.was_cancelled("call_a")

    assert (remembered_within, remembered_after) == (True, False)
    assert record.remembered == 0


def test_past_the_most_remembered_the_oldest_cancels_are_forgotten_first() -> None:
    record = stops(Clock(), most=3)
    for name in ("a", "b", "c", "d", "e"):
        record.cancel(f"call_{name}")

    assert [record.was_cancelled(f"call_{name}") for name in ("a", "b", "c", "d", "e")] == [
        False,
        False,
        True,
        True,
        True,
    ]
    assert record.remembered == 3


async def test_a_call_whose_cancel_came_first_stops_before_its_work() -> None:
    record = stops(Clock())
    record.cancel("call_early")
    worked = False

    with pytest.raises(Cancelled) as cancelled:
        async with record.stoppable("call_early", "the job"):
            worked = True

    assert not worked
    assert str(cancelled.value) == "the job was stopped: its caller had cancelled it before it began"


async def test_a_running_call_is_stopped_by_its_cancel_and_its_hooks_run() -> None:
    record = stops(Clock())
    hooked: list[str] = []

    async def job() -> None:
        async with record.stoppable("call_run", "the job") as stop:
            stop.when_stopped(lambda: hooked.append("interrupted"))
            await asyncio.Event().wait()  # only the cancel ends this

    task = asyncio.create_task(job())
    await asyncio.wait_for(record.running("call_run"), 10)
    record.cancel("call_run")

    with pytest.raises(Cancelled) as cancelled:
        await task
    assert str(cancelled.value) == "the job was stopped: its caller cancelled the request"
    assert hooked == ["interrupted"]
    assert not record.is_running("call_run")


def test_a_stop_after_the_commit_point_is_refused_and_one_before_it_fails_the_commit() -> None:
    committed, stopped = Stop("the transform"), Stop("the upload")

    committed.final()
    refused = committed.request()
    taken = stopped.request()

    assert (refused, taken) == (False, True)
    with pytest.raises(Cancelled):
        stopped.final()
