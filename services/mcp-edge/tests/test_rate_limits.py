"""Per-tenant rate limits at the edge: a token bucket per tenant, and a refusal that says when to retry."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest
from lakegate.common.settings import NatsSettings
from lakegate.edge.app import EdgeState
from lakegate.edge.config import EdgeSettings
from lakegate.edge.ratelimits import TokenBuckets
from mcp import Client

if TYPE_CHECKING:
    from conftest import Fakes


@pytest.fixture
def edge_settings(nats_settings: NatsSettings, tenant_id: str) -> EdgeSettings:
    # A bucket of three calls that takes over an hour to give one back.
    return EdgeSettings(nats=nats_settings, default_tenant=tenant_id, rate_limit_per_second=0.0002, rate_limit_burst=3)


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


async def test_a_tenant_past_its_burst_is_refused_with_retry_after_and_the_tool_does_not_run(
    edge: EdgeState, fakes: Fakes, tenant_id: str
) -> None:
    async with Client(edge.server) as client:
        answered = [await client.call_tool("list_sources", {}) for _ in range(3)]
        refused = await client.call_tool("list_sources", {})
        connect = await client.call_tool(
            "connect_postgres",
            {"name": "late", "host": "db.internal", "database": "shop", "user": "reader", "password": "pw"},
        )

    assert not any(result.is_error for result in answered)
    assert refused.is_error
    assert refused.structured_content is not None
    assert refused.structured_content["error"] == "rate_limited"
    assert refused.structured_content["retry_after"] > 3600
    text = refused.content[0].text  # type: ignore[union-attr]
    assert f"tenant {tenant_id}" in text
    assert "retry_after" in text
    assert "LAKEGATE_EDGE_RATE_LIMIT_PER_SECOND" in text
    assert connect.is_error
    assert [request.name for request in fakes.catalog.registered] == []


def test_each_tenant_has_its_own_bucket_which_refills_at_the_rate() -> None:
    clock = Clock()
    buckets = TokenBuckets(rate=2.0, burst=2, clock=clock)

    first = [buckets.take("a") for _ in range(3)]
    other = buckets.take("b")
    clock.now += 0.25
    still_waiting = buckets.take("a")
    clock.now += 0.5
    refilled = buckets.take("a")

    assert first[:2] == [0.0, 0.0]
    assert first[2] == pytest.approx(0.5)
    assert other == 0.0
    assert still_waiting == pytest.approx(0.25)
    assert refilled == 0.0


def test_a_bucket_never_holds_more_than_its_burst() -> None:
    clock = Clock()
    buckets = TokenBuckets(rate=1.0, burst=2, clock=clock)
    buckets.take("a")
    clock.now += 3600

    taken = [buckets.take("a") for _ in range(3)]

    assert taken[:2] == [0.0, 0.0]
    assert taken[2] > 0


def test_tokens_spent_elsewhere_take_a_bucket_below_zero_and_the_wait_counts_the_whole_debt() -> None:
    clock = Clock()
    buckets = TokenBuckets(rate=2.0, burst=2, clock=clock)
    buckets.take("a")

    buckets.spend({"a": 3, "b": 1})
    wait = buckets.take("a")
    of_b = [buckets.take("b"), buckets.take("b")]
    clock.now += wait
    after_the_wait = buckets.take("a")

    assert wait == pytest.approx(1.5), "from -2 tokens to 1 at 2 per second"
    assert after_the_wait == 0.0
    assert of_b == [0.0, pytest.approx(0.5)], "b's bucket had one token left"


def test_the_admitted_calls_are_counted_per_key_until_taken_and_a_report_names_so_many_keys_at_most() -> None:
    buckets = TokenBuckets(rate=1.0, burst=2, clock=Clock())
    for key in ("a", "a", "a", "b", "c"):
        buckets.take(key)

    first = buckets.admitted(most=2)
    rest = buckets.admitted(most=2)

    assert first == {"a": 2, "b": 1}, "a's third call was refused"
    assert rest == {"c": 1}
    assert buckets.admitted() == {}
