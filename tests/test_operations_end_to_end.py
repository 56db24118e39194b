"""Operating the stack: one trace per tool call across the services, metrics after a sync, and no run
left stuck when the loader dies on every delivery of it. The services run as separate processes."""

from __future__ import annotations

import asyncio
import json
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import nats
import pytest
from lakegate.common.delivery import MAX_DELIVER
from lakegate.devstack.pytest_plugin import directory_outside_pytest
from lakegate.devstack.stack import Stack, StackConfig, StackPorts
from lakegate.devstack.supervisor import Backoff
from mcp import Client
from nats.aio.msg import Msg

from tests.conftest import Source
from tests.mcp_calls import call
from tests.sources import create_orders_table

#: Under `pytest -n`, every test of this module runs on one worker, so its stack of its own starts once.
pytestmark = pytest.mark.xdist_group("ops-stack")

SERVICES = ("edge", "catalog", "extractor", "loader")


@pytest.fixture(scope="module")
def ops_stack() -> Iterator[Stack]:
    """A stack writing its spans to JSON-lines files, with a loader that dies while `loader-dies` exists."""
    with directory_outside_pytest("lakegate-ops-") as home:
        env = {
            "LAKEGATE_OTEL_EXPORTER": "file",
            "LAKEGATE_OTEL_FILE": str(home / "spans" / "{service}.jsonl"),
            "LAKEGATE_EDGE_SYNC_WAIT_SECONDS": "120",
            # The sources live in the harness cluster on 127.0.0.1; the stack's own ports stay refused.
            "LAKEGATE_EXTRACTOR_ALLOW_PRIVATE_SOURCES": "true",
            "LAKEGATE_LOADER_FAULT_EXIT_WHILE": str(home / "loader-dies"),
            # A held message comes back in seconds once its loader is gone.
            "LAKEGATE_LOADER_ACK_WAIT_SECONDS": "2",
        }
        # One edge process: the health port's `/metrics` is the first process's own (services/mcp-edge/README.md),
        # and the metrics test reads the edge's tool calls there.
        config = StackConfig(
            home=home, ports=StackPorts.free(), env=env, backoff=Backoff(first=0.2, limit=0.5), edge_processes=1
        )
        with Stack(config) as running:
            yield running
            # Even while services crash and restart, each did all it needed within its own NATS permissions.
            refused = running.nats_permission_violations()
            assert not refused, "\n".join(refused)


def _spans(stack: Stack) -> list[dict[str, Any]]:
    spans = []
    for path in (stack.config.home / "spans").glob("*.jsonl"):
        spans.extend(json.loads(line) for line in path.read_text().splitlines() if line.strip())
    return spans


def _orphans(trace: list[dict[str, Any]], root: dict[str, Any]) -> list[dict[str, Any]]:
    """Spans of the trace, other than its root, whose parent span is not in it (not ended, or lost).

    The root may have a parent of its own: a client that traces sends its context with the call.
    """
    ids = {s["span_id"] for s in trace}
    return [s for s in trace if s is not root and s["parent_id"] is not None and s["parent_id"] not in ids]


async def _trace_of_tool_call(stack: Stack, tool: str, timeout: float = 30.0) -> list[dict[str, Any]]:
    """The spans of the trace rooted at the edge's `tools/call <tool>` span, once all four services wrote theirs
    and every parent span has ended (a step's span can end just after the call it served returned)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        spans = _spans(stack)
        roots = [s for s in spans if s["service"] == "edge" and s["name"] == f"tools/call {tool}"]
        trace = [s for s in spans if roots and s["trace_id"] == roots[-1]["trace_id"]]
        whole = not roots or not _orphans(trace, roots[-1])
        if ({s["service"] for s in trace} >= set(SERVICES) and whole) or loop.time() > deadline:
            return trace
        await asyncio.sleep(0.25)  # spans are appended as they end; poll the files until the deadline


def _scrape(stack: Stack, service: str) -> str:
    url = f"http://127.0.0.1:{stack.config.ports.health(service)}/metrics"
    with urllib.request.urlopen(url, timeout=10) as answer:
        return str(answer.read().decode())


def _sample(text: str, name: str, **labels: str) -> float:
    """The sum of a metric's samples whose labels include `labels`."""
    total = 0.0
    for line in text.splitlines():
        if not line.startswith(name + "{"):
            continue
        head, value = line.rsplit(" ", 1)
        if all(f'{key}="{wanted}"' in head for key, wanted in labels.items()):
            total += float(value)
    return total


async def test_a_sync_through_the_edge_is_one_trace_holding_edge_catalog_extractor_and_loader_spans(
    ops_stack: Stack, source: Source, unique: str
) -> None:
    await create_orders_table(source.admin_dsn, 2_000)
    async with Client(ops_stack.urls.mcp) as client:
        connection = await call(client, "connect_postgres", source.connect_arguments(f"t{unique}"))
        run = await call(
            client, "sync_table_to_bronze", {"connection_id": connection["connection_id"], "table_name": "orders"}
        )
    assert run["status"] == "succeeded", run

    trace = await _trace_of_tool_call(ops_stack, "sync_table_to_bronze")

    assert {s["service"] for s in trace} >= set(SERVICES), sorted({(s["service"], s["name"]) for s in trace})
    names = {(s["service"], s["name"]) for s in trace}
    assert ("extractor", "source read") in names
    assert ("extractor", "staging flush") in names
    assert ("loader", "warehouse commit") in names
    [root] = [s for s in trace if s["service"] == "edge" and s["name"] == "tools/call sync_table_to_bronze"]
    orphans = _orphans(trace, root)
    assert [s["name"] for s in orphans] == [], "every span but the root hangs off another span of the trace"


async def test_each_service_reports_the_rows_and_bytes_of_a_sync_on_its_metrics_endpoint(
    ops_stack: Stack, source: Source, unique: str
) -> None:
    before = {service: _scrape(ops_stack, service) for service in SERVICES}
    await create_orders_table(source.admin_dsn, 3_000)
    async with Client(ops_stack.urls.mcp) as client:
        connection = await call(client, "connect_postgres", source.connect_arguments(f"m{unique}"))
        run = await call(
            client, "sync_table_to_bronze", {"connection_id": connection["connection_id"], "table_name": "orders"}
        )
    assert run["status"] == "succeeded", run
    after = {service: _scrape(ops_stack, service) for service in SERVICES}

    for service, step in (("extractor", "extracted"), ("loader", "loaded"), ("catalog", "synced")):
        rows = _sample(after[service], "lakegate_rows_total", step=step) - _sample(
            before[service], "lakegate_rows_total", step=step
        )
        size = _sample(after[service], "lakegate_bytes_total", step=step) - _sample(
            before[service], "lakegate_bytes_total", step=step
        )
        assert rows == 3_000, (service, rows)
        assert size > 0, (service, size)
    assert _sample(after["catalog"], "lakegate_runs_total", status="succeeded", mode="full") >= 1
    assert _sample(after["loader"], "lakegate_phase_seconds_count", phase="load") >= 1
    assert _sample(after["loader"], "lakegate_deliveries_total", outcome="done") >= 1
    assert 'lakegate_consumer_pending_messages{consumer="loader extracted runs"' in after["loader"]
    assert _sample(after["edge"], "lakegate_tool_call_seconds_count", tool="sync_table_to_bronze", outcome="ok") >= 1


# Every delivery costs a loader start and an ack wait: 8 of them take minutes on a busy machine.
@pytest.mark.timeout(1200)
async def test_a_run_whose_loader_dies_on_every_delivery_ends_failed_and_frees_its_table(
    ops_stack: Stack, source: Source, unique: str
) -> None:
    await create_orders_table(source.admin_dsn, 500)
    dies: Path = ops_stack.config.home / "loader-dies"
    restarts = ops_stack.restarts("loader")
    await asyncio.to_thread(dies.touch)
    nc = await nats.connect(ops_stack.urls.nats, **ops_stack.nats_credentials())
    outcomes: asyncio.Queue[dict[str, Any]] = asyncio.Queue()

    async def on_event(msg: Msg) -> None:
        await outcomes.put(json.loads(msg.data))

    try:
        await nc.subscribe("lakegate.events.>", cb=on_event)
        await nc.flush()
        async with Client(ops_stack.urls.mcp) as client:
            connection = await call(client, "connect_postgres", source.connect_arguments(f"c{unique}"))
            arguments = {"connection_id": connection["connection_id"], "table_name": "orders"}
            # The call returns a handle while the loader keeps dying, or the failure itself when the
            # deliveries run out within its wait: either way the run is the source's only one.
            await client.call_tool("sync_table_to_bronze", arguments)
            listed = await call(client, "list_sync_runs", {"connection_id": connection["connection_id"]})
            [run_id] = [run["run_id"] for run in listed["runs"]]
            while (event := await asyncio.wait_for(outcomes.get(), 900))["subject"] != run_id:
                pass
            run = await call(client, "get_sync_run", {"run_id": run_id})
    finally:
        await nc.close()
        await asyncio.to_thread(dies.unlink, missing_ok=True)

    assert event["type"] == "io.lakegate.sync.failed.v1"
    assert run["status"] == "failed", run
    assert ops_stack.restarts("loader") - restarts >= MAX_DELIVER
    message = run["error"]
    assert f"the loader stopped {MAX_DELIVER} times while loading run {run['run_id']}" in message
    assert "memory limit" in message
    assert "start the sync again" in message
    await asyncio.to_thread(ops_stack.wait_ready, "loader")
    async with Client(ops_stack.urls.mcp) as client:
        again = await call(client, "sync_table_to_bronze", arguments)
    assert again["status"] == "succeeded", again
    assert again["row_count"] == 500
