"""Crashes mid-sync: kill -9 a service or restart NATS while a run is in flight; the run still ends
exactly once, and the target holds exactly the source's rows, for every sync mode."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass
from typing import Any

import asyncpg
import nats
import pytest
from lakegate.devstack.pytest_plugin import directory_outside_pytest
from lakegate.devstack.stack import Stack, StackConfig, StackPorts
from mcp import Client
from nats.aio.client import Client as Nats
from nats.js.api import ConsumerConfig, DeliverPolicy

from tests.conftest import Source
from tests.mcp_calls import call
from tests.sources import create_orders_table

#: Under `pytest -n`, every test of this module runs on one worker, so its stack of its own starts once.
pytestmark = pytest.mark.xdist_group("fault-stack")

ROWS = 300_000
#: Short acknowledgement deadlines, so a message held by a killed worker is redelivered in seconds.
FAST_REDELIVERY = {f"LAKEGATE_{service}_ACK_WAIT_SECONDS": "4" for service in ("CATALOG", "EXTRACTOR", "LOADER")} | {
    "LAKEGATE_EDGE_SYNC_WAIT_SECONDS": "0",
    "LAKEGATE_EXTRACTOR_BATCH_ROWS": "20000",
    "LAKEGATE_EXTRACTOR_ALLOW_PRIVATE_SOURCES": "true",  # the sources live in the harness cluster on 127.0.0.1
}


@pytest.fixture(scope="module")
def fault_stack() -> Iterator[Stack]:
    """A stack of its own: these tests kill its processes."""
    with directory_outside_pytest("lakegate-faults-") as home:
        config = StackConfig(home=home, ports=StackPorts.free(), env=FAST_REDELIVERY)
        with Stack(config) as running:
            yield running
            # Even while services crash and restart, each did all it needed within its own NATS permissions.
            refused = running.nats_permission_violations()
            assert not refused, "\n".join(refused)


@dataclass
class Watch:
    """Every run step, progress message and public event of the stack, as they happen."""

    nc: Nats
    seen: list[tuple[str, dict[str, Any]]]
    changed: asyncio.Condition

    async def until(self, predicate: Callable[[str, dict[str, Any]], bool], timeout: float = 120) -> dict[str, Any]:
        async with self.changed:
            await asyncio.wait_for(self.changed.wait_for(lambda: any(predicate(s, b) for s, b in self.seen)), timeout)
        return next(b for s, b in self.seen if predicate(s, b))


@pytest.fixture
async def watch(fault_stack: Stack) -> AsyncIterator[Watch]:
    nc = await nats.connect(
        fault_stack.urls.nats, **fault_stack.nats_credentials(), max_reconnect_attempts=-1, reconnect_time_wait=0.2
    )
    changed = asyncio.Condition()
    seen: list[tuple[str, dict[str, Any]]] = []

    async def record(msg: Any) -> None:
        async with changed:
            seen.append((msg.subject, json.loads(msg.data)))
            changed.notify_all()

    for subject in ("lakegate.run.>", "lakegate.progress.>", "lakegate.events.>"):
        await nc.subscribe(subject, cb=record)
    await nc.flush()
    yield Watch(nc, seen, changed)
    await nc.close()


async def _events_of(stack: Stack, run_id: str) -> list[dict[str, Any]]:
    """Every public event of a run, replayed from the stream."""
    nc = await nats.connect(stack.urls.nats, **stack.nats_credentials())
    try:
        js = nc.jetstream()
        sub = await js.pull_subscribe(
            "lakegate.events.default.sync.*",
            stream="LAKEGATE_EVENTS",
            config=ConsumerConfig(deliver_policy=DeliverPolicy.ALL, inactive_threshold=30),
        )
        info = await js.stream_info("LAKEGATE_EVENTS")
        events: list[dict[str, Any]] = []
        remaining = info.state.messages
        while remaining > 0:
            batch = await sub.fetch(min(remaining, 256), timeout=10)
            remaining -= len(batch)
            events.extend(json.loads(m.data) for m in batch)
        return [e for e in events if e["subject"] == run_id]
    finally:
        await nc.close()


async def _source_state(source: Source) -> tuple[int, int, str]:
    conn = await asyncpg.connect(source.admin_dsn)
    try:
        row = await conn.fetchrow("SELECT count(*), count(DISTINCT id), sum(amount)::text FROM orders")
        assert row is not None
        return int(row[0]), int(row[1]), str(row[2])
    finally:
        await conn.close()


async def _target_state(client: Client, table: str) -> tuple[int, int, str]:
    result = await call(client, "query_sql", {"sql": f"SELECT count(*), count(DISTINCT id), sum(amount) FROM {table}"})
    count, distinct, total = result["rows"][0]
    return int(count), int(distinct), str(total)


def _kill(service: str) -> Callable[[Stack], Awaitable[None]]:
    async def crash(stack: Stack) -> None:
        stack.kill_service(service)

    return crash


async def _restart_nats(stack: Stack) -> None:
    await asyncio.to_thread(stack.nats.kill)
    await asyncio.to_thread(stack.nats.start)


FAULTS: dict[str, tuple[str, Callable[[Stack], Awaitable[None]]]] = {
    # fault: (the moment it strikes, what it does)
    "extractor killed while extracting": ("progress-extracting", _kill("extractor")),
    "loader killed while loading": ("loading", _kill("loader")),
    "catalog killed while the run is in flight": ("extracting", _kill("catalog")),
    "NATS restarted while extracting": ("progress-extracting", _restart_nats),
}


def _moment(run_id: str, moment: str) -> Callable[[str, dict[str, Any]], bool]:
    if moment == "progress-extracting":
        return lambda s, b: s == f"lakegate.progress.{run_id}" and b.get("step") == "extracting" and b["rows"] > 0
    return lambda s, b: s == f"lakegate.run.{run_id}.{moment}"


async def _change_source(source: Source, *, updates: bool) -> None:
    """Changes between runs for incremental (inserts) and merge (inserts and updates) to pick up."""
    conn = await asyncpg.connect(source.admin_dsn)
    try:
        await conn.execute(
            "ALTER TABLE orders ADD COLUMN IF NOT EXISTS updated_at timestamptz NOT NULL DEFAULT '2020-01-01+00'"
        )
        if updates:
            await conn.execute(
                "UPDATE orders SET amount = amount + 1, updated_at = clock_timestamp() WHERE id % 97 = 0"
            )
        await conn.execute(
            """
            INSERT INTO orders SELECT id + (SELECT max(id) FROM orders), customer_id, quantity, note, amount, weight,
                   paid, created_at, local_time, ref, attrs, comment, clock_timestamp()
            FROM orders WHERE id <= 5000
            """
        )
    finally:
        await conn.close()


@pytest.mark.parametrize("mode", ["full", "incremental", "merge"])
@pytest.mark.parametrize("fault", list(FAULTS))
async def test_a_sync_survives_a_crash_and_ends_exactly_once(
    fault_stack: Stack, watch: Watch, source: Source, unique: str, fault: str, mode: str
) -> None:
    await create_orders_table(source.admin_dsn, ROWS)
    name = f"f{unique}"
    table = f"bronze.{name}_orders"
    moment, strike = FAULTS[fault]
    async with Client(fault_stack.urls.mcp) as client:
        connection = await call(client, "connect_postgres", source.connect_arguments(name))
        arguments = {"connection_id": connection["connection_id"], "table_name": "orders", "sync_mode": mode}
        if mode != "full":  # a first run to have a cursor, then changes for the faulted run to pick up
            await _change_source(source, updates=False)
            arguments["cursor_column"] = "updated_at"
            first = await call(client, "sync_table_to_bronze", arguments)
            await watch.until(lambda s, b: b.get("subject") == first["run_id"])
            await _change_source(source, updates=mode == "merge")

        started = await call(client, "sync_table_to_bronze", arguments)
        run_id = started["run_id"]
        await watch.until(_moment(run_id, moment))
        await strike(fault_stack)
        event = await watch.until(lambda s, b: s.startswith("lakegate.events.") and b.get("subject") == run_id)

    assert event["type"] == "io.lakegate.sync.completed.v1", event["data"].get("error")
    async with Client(fault_stack.urls.mcp) as client:
        run = await call(client, "get_sync_run", {"run_id": run_id})
        assert run["status"] == "succeeded"
        source_count, source_distinct, source_sum = await _source_state(source)
        count, distinct, total = await _target_state(client, table)
    assert (count, distinct, total) == (source_count, source_distinct, source_sum)
    assert len(await _events_of(fault_stack, run_id)) == 1
