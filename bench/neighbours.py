"""Noisy neighbours: `python -m bench.neighbours`. 100 tool calls at once from 10 tenants, a quarter slow.

One stack of its own (API tokens for tenants `t0` … `t9`, each with a source of its own on one
PostgreSQL cluster and a small bronze table), driven through the MCP edge over HTTP by the official
client. Three rounds, measured in the same run:

- **quiet**: the 75 fast calls alone (list_sources, query_sql over the tenant's bronze table,
  query_source `SELECT 1`), as a baseline;
- **noisy**: the same 75 fast calls at the same moment as 25 slow ones from tenants `t0` … `t4`
  (query_source `pg_sleep`, connect_postgres to a host that accepts and never answers, a heavy
  query_sql aggregate); p50 / p95 of the fast calls, split by tenant kind, and their ratio to quiet;
- **hostile**: query_sql past the memory caps (`range` bombs), a 5000-branch UNION, a query_source
  returning far more than an answer may carry; peak RSS of each service (its query workers
  included, as PSS) while they run, and whether every service still answers afterwards.

Measurement only: nothing asserts. Results go to `bench/results/neighbours-<UTC time>.json`.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import statistics
import time
from collections.abc import AsyncIterator, Awaitable
from pathlib import Path
from typing import Any

import asyncpg
import psutil
from lakegate.common.api_tokens import mint
from lakegate.devstack.bearerclient import bearer_client
from lakegate.devstack.layout import StackHome
from lakegate.devstack.stack import SERVICES, Stack, StackConfig, StackPorts
from mcp import Client

from bench.machine import describe_machine, load
from bench.memory import PeakSampler
from bench.source import SourceDatabase, prepare_database, source_cluster

TENANTS = [f"t{i}" for i in range(10)]
NOISY = TENANTS[:5]
#: Seconds a slow source query sleeps; long enough that every fast call could finish many times over.
SLEEP_SECONDS = 8
Call = tuple[str, dict[str, Any]]


@contextlib.asynccontextmanager
async def hung_host() -> AsyncIterator[int]:
    """A TCP port that accepts connections and never answers (a source host that hangs)."""
    held: list[asyncio.StreamWriter] = []

    async def hold(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        held.append(writer)

    server = await asyncio.start_server(hold, "127.0.0.1", 0)
    try:
        yield int(server.sockets[0].getsockname()[1])
    finally:
        for writer in held:
            writer.close()
        server.close()


def fast_calls(tenant: str, count: int, connection_id: str, table: str) -> list[Call]:
    kinds: list[Call] = [
        ("list_sources", {}),
        ("query_sql", {"sql": f"SELECT count(*), sum(amount) FROM {table}"}),
        ("query_source", {"connection_id": connection_id, "sql": "SELECT 1"}),
    ]
    return [kinds[i % len(kinds)] for i in range(count)]


def slow_calls(source: SourceDatabase, connection_id: str, hung_port: int, table: str, count: int) -> list[Call]:
    kinds: list[Call] = [
        ("query_source", {"connection_id": connection_id, "sql": f"SELECT pg_sleep({SLEEP_SECONDS})"}),
        (
            "connect_postgres",
            {
                "name": f"hung{time.monotonic_ns()}",
                "host": "127.0.0.1",
                "port": hung_port,
                "database": source.database,
                "user": source.user,
                "password": source.password,
            },
        ),
        ("query_sql", {"sql": f"SELECT count(*) FROM {table} a, {table} b WHERE a.id % 7 = b.id % 7"}),
    ]
    return [kinds[i % len(kinds)] for i in range(count)]


async def timed(session: Client, call: Call) -> tuple[float, bool]:
    """Seconds the call took, and whether it answered without a tool error."""
    took, ok, _ = await answered(session, call)
    return took, ok


async def answered(session: Client, call: Call) -> tuple[float, bool, str]:
    """Seconds the call took, whether it answered without a tool error, and the start of its text."""
    began = time.monotonic()
    result = await session.call_tool(call[0], call[1])
    text = next((block.text for block in result.content if hasattr(block, "text")), "")
    return time.monotonic() - began, not result.is_error, text[:240]


def percentiles(seconds: list[float]) -> dict[str, float]:
    ordered = sorted(seconds)
    return {
        "p50_ms": round(1000 * statistics.median(ordered), 1),
        "p95_ms": round(1000 * ordered[max(0, round(0.95 * len(ordered)) - 1)], 1),
        "count": len(ordered),
    }


def service_pids(stack: Stack) -> dict[str, int]:
    return {name: stack.supervisor.pid(name) for name in SERVICES}


def tree_pss(pid: int) -> int:
    """Proportional set size of a process and its children (the loader's query workers): shared pages
    (a forked worker shares most of its parent's) are counted once across them, not once per process."""
    total = 0
    try:
        process = psutil.Process(pid)
        family = [process, *process.children(recursive=True)]
    except psutil.Error:
        return 0
    for member in family:
        with contextlib.suppress(psutil.Error):
            total += int(member.memory_full_info().pss)
    return total


async def peak_tree(pids: dict[str, int], work: Awaitable[Any]) -> tuple[Any, dict[str, int]]:
    """Run `work` while sampling each service's PSS with its children; the peaks in bytes."""
    peaks = dict.fromkeys(pids, 0)
    done = asyncio.Event()

    async def sample() -> None:
        while not done.is_set():
            for name, pid in pids.items():
                peaks[name] = max(peaks[name], await asyncio.to_thread(tree_pss, pid))
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(done.wait(), 0.05)

    sampler = asyncio.create_task(sample())
    try:
        result = await work
    finally:
        done.set()
        await sampler
    return result, peaks


async def run(args: argparse.Namespace) -> dict[str, Any]:
    with source_cluster() as (cluster, home), contextlib.ExitStack() as stacks:
        source = await prepare_database(cluster)
        admin = await asyncpg.connect(source.admin_dsn)
        try:
            await admin.execute(
                "CREATE TABLE orders AS SELECT g AS id, g / 100.0 AS amount FROM generate_series(1, 20000) g"
            )
        finally:
            await admin.close()
        stack_home = home / "stack"
        tokens_file = StackHome(stack_home).api_tokens
        tokens_file.parent.mkdir(parents=True, exist_ok=True)
        tokens = {tenant: mint(tokens_file, tenant, ["admin"], f"{tenant} bench") for tenant in TENANTS}
        env = {"LAKEGATE_EXTRACTOR_ALLOW_PRIVATE_SOURCES": "true", "LAKEGATE_EDGE_SYNC_WAIT_SECONDS": "300"}
        stack = stacks.enter_context(Stack(StackConfig(home=stack_home, ports=StackPorts.free(), env=env)))
        url, pids = stack.urls.mcp, service_pids(stack)

        async with contextlib.AsyncExitStack() as sessions, hung_host() as hung_port:
            clients = {
                t: await sessions.enter_async_context(bearer_client(url, tokens[t], timeout=300)) for t in TENANTS
            }
            connections: dict[str, str] = {}
            tables: dict[str, str] = {}
            for tenant, session in clients.items():
                arguments = {
                    "name": "shop",
                    "host": source.host,
                    "port": source.port,
                    "database": source.database,
                    "user": source.user,
                    "password": source.password,
                }
                registered = await session.call_tool("connect_postgres", arguments)
                connections[tenant] = str((registered.structured_content or {})["connection_id"])
                synced = await session.call_tool(
                    "sync_table_to_bronze", {"connection_id": connections[tenant], "table_name": "orders"}
                )
                tables[tenant] = str((synced.structured_content or {})["bronze_table"])

            def fast_round() -> list[tuple[str, Call]]:
                per_tenant = {t: 5 if t in NOISY else 10 for t in TENANTS}  # 25 + 50 = 75 fast calls
                return [(t, call) for t in TENANTS for call in fast_calls(t, per_tenant[t], connections[t], tables[t])]

            def slow_round() -> list[tuple[str, Call]]:  # 25 slow calls, 5 from each noisy tenant
                return [
                    (t, call) for t in NOISY for call in slow_calls(source, connections[t], hung_port, tables[t], 5)
                ]

            async def at_once(calls: list[tuple[str, Call]]) -> list[tuple[str, float, bool]]:
                async def one(tenant: str, call: Call) -> tuple[str, float, bool]:
                    took, ok = await timed(clients[tenant], call)
                    return tenant, took, ok

                return list(await asyncio.gather(*(one(t, c) for t, c in calls)))

            load_before = load()
            quiet = await at_once(fast_round())
            fast, slow = fast_round(), slow_round()
            began = time.monotonic()
            noisy = await at_once(fast + slow)
            noisy_wall = time.monotonic() - began
            fast_noisy, slow_noisy = noisy[: len(fast)], noisy[len(fast) :]

            table = tables["t0"]
            hostile: list[Call] = [
                ("query_sql", {"sql": "SELECT len(range(0, 2000000000))"}),
                ("query_sql", {"sql": f"SELECT len(list(a.id)) FROM {table} a, {table} b"}),
                ("query_sql", {"sql": f"SELECT len(string_agg(repeat('x', 100000), '')) FROM {table}"}),
                ("query_sql", {"sql": "SELECT 1 " + "UNION ALL SELECT 1 " * 5000}),
                (
                    "query_source",
                    {
                        "connection_id": connections["t0"],
                        "sql": "SELECT g, repeat('x', 2000) FROM generate_series(1, 200000) g",
                        "max_rows": 10000,
                    },
                ),
            ]
            hostile_answers, peaks = await peak_tree(
                pids, asyncio.gather(*(answered(clients["t0"], call) for call in hostile))
            )
            alive = {name: psutil.pid_exists(pid) for name, pid in pids.items()}
            after = await timed(clients["t9"], ("query_sql", {"sql": "SELECT 1"}))

        with PeakSampler(pids) as resting:
            await asyncio.sleep(0.2)

    def of(rows: list[tuple[str, float, bool]], noisy_tenants: bool | None = None) -> dict[str, float]:
        chosen = [took for t, took, _ in rows if noisy_tenants is None or (t in NOISY) == noisy_tenants]
        return percentiles(chosen)

    quiet_fast, noisy_fast = of(quiet), of(fast_noisy)
    return {
        "machine": describe_machine(),
        "load_at_start": load_before,
        "tenants": len(TENANTS),
        "calls": len(fast) + len(slow),
        "slow_calls": len(slow),
        "fast_alone": quiet_fast,
        "fast_beside_slow": noisy_fast,
        "fast_beside_slow_quiet_tenants": of(fast_noisy, noisy_tenants=False),
        "fast_beside_slow_noisy_tenants": of(fast_noisy, noisy_tenants=True),
        "fast_ok": sum(ok for _, _, ok in fast_noisy),
        "slow": of(slow_noisy),
        "slow_refused": sum(not ok for _, _, ok in slow_noisy),
        "slow_kinds": [call[0] for _, call in slow],
        "noisy_round_seconds": round(noisy_wall, 1),
        "p95_ratio": round(noisy_fast["p95_ms"] / max(quiet_fast["p95_ms"], 0.1), 2),
        "hostile": [
            {
                "call": call[0],
                "sql": str(call[1].get("sql", ""))[:80],
                "seconds": round(took, 2),
                "answered_ok": ok,
                "answer": text,
            }
            for call, (took, ok, text) in zip(hostile, hostile_answers, strict=True)
        ],
        "peak_pss_mib_under_hostile": {name: round(rss / 2**20) for name, rss in peaks.items()},
        "resting_rss_mib": {name: round(rss / 2**20) for name, rss in resting.peaks.items()},
        "services_alive_after": alive,
        "select_1_after_hostile_ok": after[1],
    }


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.neighbours", description=__doc__.split("\n")[0])
    parser.add_argument("--results", type=Path, default=Path("bench/results"))
    args = parser.parse_args()
    report = asyncio.run(run(args))
    q, n, nq, nn = (
        report["fast_alone"],
        report["fast_beside_slow"],
        report["fast_beside_slow_quiet_tenants"],
        report["fast_beside_slow_noisy_tenants"],
    )
    print(f"{report['calls']} calls at once from {report['tenants']} tenants, {report['slow_calls']} slow")
    print(f"fast calls alone:            p50 {q['p50_ms']:7.1f} ms  p95 {q['p95_ms']:7.1f} ms  ({q['count']})")
    print(f"fast calls beside slow ones: p50 {n['p50_ms']:7.1f} ms  p95 {n['p95_ms']:7.1f} ms  ({n['count']})")
    print(f"  of quiet tenants:          p50 {nq['p50_ms']:7.1f} ms  p95 {nq['p95_ms']:7.1f} ms")
    print(f"  of noisy tenants:          p50 {nn['p50_ms']:7.1f} ms  p95 {nn['p95_ms']:7.1f} ms")
    print(f"slow calls:                  p50 {report['slow']['p50_ms']:7.1f} ms  ({report['slow_refused']} refused)")
    print(f"p95 beside slow / alone: {report['p95_ratio']}x; load at start {report['load_at_start']}")
    for row in report["hostile"]:
        print(f"hostile {row['call']:12} {row['seconds']:6.2f} s  {row['sql'][:50]}\n    -> {row['answer'][:160]}")
    print(f"peak PSS under the hostile calls (MiB, with children): {report['peak_pss_mib_under_hostile']}")
    print(
        f"services alive after: {report['services_alive_after']}; SELECT 1 after: {report['select_1_after_hostile_ok']}"
    )
    args.results.mkdir(parents=True, exist_ok=True)
    path = args.results / f"neighbours-{time.strftime('%Y%m%dT%H%M%SZ', time.gmtime())}.json"
    path.write_text(json.dumps(report, indent=2))
    print(f"results: {path}")


if __name__ == "__main__":
    main()
