"""A tenant's rate limit holds for the whole edge: its processes keep each other's buckets in step.

Two or three edges of this test process, each with its own NATS connection and instance id, on one NATS
server under one prefix, as `LAKEGATE_EDGE_PROCESSES` or replicas are. The buckets refill so slowly
(one token in over an hour) that the tests reason in tokens: what a tenant may call is its burst.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

import nats
import pytest
from lakegate.edge.app import EdgeState, serve
from lakegate.edge.config import EdgeSettings
from lakegate.edge.ratelimits import ADMITTED, AdmissionReports, Admitted
from mcp import Client
from mcp_types import CallToolResult
from nats.aio.msg import Msg

from .conftest import Fakes

BURST = 5
RATE = 0.0002
#: Longest a test waits for a report to be heard.
HEARD_WITHIN = 10.0


@pytest.fixture
def edge_settings(edge_settings: EdgeSettings) -> EdgeSettings:
    return edge_settings.model_copy(update={"rate_limit_per_second": RATE, "rate_limit_burst": BURST})


@contextlib.asynccontextmanager
async def edge(settings: EdgeSettings) -> AsyncIterator[EdgeState]:
    async with serve(settings) as state:
        await state.link.ready()
        yield state


def reports(state: EdgeState) -> AdmissionReports:
    assert state.rate_limits is not None
    return state.rate_limits


async def calls(state: EdgeState, count: int) -> list[CallToolResult]:
    """`count` tool calls on one edge, one after the other."""
    async with Client(state.server) as client:
        return [await client.call_tool("list_sources", {}) for _ in range(count)]


async def calls_at_once(state: EdgeState, count: int) -> list[CallToolResult]:
    """`count` tool calls on one edge, all at once."""
    async with Client(state.server) as client:
        return list(await asyncio.gather(*(client.call_tool("list_sources", {}) for _ in range(count))))


def refused(results: list[CallToolResult]) -> list[float]:
    """The `retry_after` of each refused call."""
    return [
        result.structured_content["retry_after"]
        for result in results
        if result.is_error and result.structured_content and result.structured_content.get("error") == "rate_limited"
    ]


def admitted(results: list[CallToolResult]) -> int:
    assert not [r for r in results if r.is_error and not refused([r])], "a call failed for another reason"
    return len(results) - len(refused(results))


async def test_a_tenants_calls_on_two_edges_share_one_limit_and_another_tenant_keeps_its_own(
    edge_settings: EdgeSettings, fakes: Fakes, tenant_id: str
) -> None:
    other = edge_settings.model_copy(update={"default_tenant": f"{tenant_id}x"})
    async with edge(edge_settings) as a, edge(edge_settings) as b, edge(other) as c:
        on_a = await calls(a, 3)
        await asyncio.wait_for(reports(b).heard(3), HEARD_WITHIN)
        on_b = await calls(b, 3)
        await asyncio.wait_for(reports(a).heard(2), HEARD_WITHIN)
        again_on_a = await calls(a, 1)
        other_tenant = await calls(c, BURST)

    assert admitted(on_a) == 3
    assert admitted(on_b) == 2, "B had only what A left of the tenant's burst"
    assert admitted(again_on_a) == 0, "A heard that B took the rest"
    assert refused(again_on_a)[0] == pytest.approx(1 / RATE, rel=0.01)
    assert admitted(other_tenant) == BURST, "another tenant's bucket is its own"


async def test_calls_at_once_on_two_edges_pass_the_limit_by_one_interval_at_most_then_wait_it_off(
    edge_settings: EdgeSettings, fakes: Fakes
) -> None:
    async with edge(edge_settings) as a, edge(edge_settings) as b:
        on_a, on_b = await asyncio.gather(calls_at_once(a, BURST), calls_at_once(b, BURST))
        from_a, from_b = admitted(on_a), admitted(on_b)
        await asyncio.wait_for(reports(a).heard(from_b), HEARD_WITHIN)
        await asyncio.wait_for(reports(b).heard(from_a), HEARD_WITHIN)
        later = [*await calls(a, 1), *await calls(b, 1)]

    total = from_a + from_b
    # Each may admit its whole bucket before it hears of the other's calls: the documented overshoot.
    assert BURST <= total <= 2 * BURST
    assert admitted(later) == 0, "each edge heard what the other admitted"
    debt = total - BURST  # what the edge admitted past the burst, each bucket below zero by as much
    assert refused(later) == [pytest.approx((1 + debt) / RATE, rel=0.01)] * 2


async def test_a_single_edge_limits_as_before_and_ignores_its_own_reports(
    edge_settings: EdgeSettings, fakes: Fakes, tenant_id: str
) -> None:
    subject = edge_settings.nats.topology.edge_peer("all", ADMITTED)
    heard: asyncio.Queue[Admitted] = asyncio.Queue()

    async def overhear(msg: Msg) -> None:
        heard.put_nowait(Admitted.model_validate_json(msg.data))

    watcher = await nats.connect(edge_settings.nats.servers)
    try:
        await watcher.subscribe(subject, cb=overhear)
        await watcher.flush()
        async with edge(edge_settings) as a:
            first = await calls(a, 3)
            own = [await asyncio.wait_for(heard.get(), HEARD_WITHIN)]
            while sum(report.calls.get(tenant_id, 0) for report in own) < 3:  # the calls may span two reports
                own.append(await asyncio.wait_for(heard.get(), HEARD_WITHIN))
            # A report of another process, after A's own: once A heard it, it heard its own too.
            peer = Admitted(instance="0" * 16, calls={f"{tenant_id}x": 1})
            await watcher.publish(subject, peer.model_dump_json().encode())
            await asyncio.wait_for(reports(a).heard(1), HEARD_WITHIN)
            rest = await calls(a, 3)
    finally:
        await watcher.drain()

    assert {report.instance for report in own} == {a.link.instance}
    assert [set(report.calls) for report in own] == [{tenant_id}] * len(own)
    assert admitted(first) == 3
    assert admitted(rest) == 2, "its own report took nothing from its bucket"
    assert refused(rest) == [pytest.approx(1 / RATE, rel=0.01)]
