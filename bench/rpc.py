"""CPU per service request, caller and catalog apart: `python -m bench.rpc [--calls 3000] [--sources 0]`.

Starts a throwaway NATS server and PostgreSQL (the test harness's `NatsServer` and
`PostgresCluster`), and the catalog as a process of its own (`python -m lakegate.catalog`, on
uvloop as deployed). This process (uvloop too) then asks `sources.list` of one tenant that has
`--sources` sources, `--calls` times one after another and `--calls` times from `--concurrency`
tasks at once, in two ways:

- `bare`: `nc.request` of nats-py with the headers an edge sends (content-type, traceparent of a
  current span): what a NATS request costs with nothing of lakegate around it;
- `legacy`: what `RpcClient.call` did before issue 14's fourth round: `bare`, then the reply parsed
  once into the answer model;
- `rpc`: `RpcClient.call(..., SourceList)`, what every service call of the edge goes through.

`--baseline DIR` starts a second catalog from another checkout's sources (e.g. `git archive` of
`main` unpacked in DIR) on a subject prefix of its own, and every round measures both in turn, so
the two see the same machine load.

`--listing runs` (or `datasets`) asks `runs.list` (`datasets.list`) of one page instead, after
`--runs N` finished runs, each with a dataset, were written straight into each catalog's database.

For each figure it prints this process's CPU per request (`time.process_time`: what the caller
pays), the catalog's and the NATS server's (from `/proc/<pid>/stat`, so the catalog's is its
whole process per answered listing). `--profile` runs the catalog under cProfile (`bench.profiled`, on during the
concurrent `rpc` figure of round 1) and prints its Python function calls per request and the
functions with the most own time (py-spy misleads here: see `bench.profiled`). The CPU time of a fixed Python loop
(`bench.edge.reference_us`) is printed too: how fast a core of the shared machine runs now.
Measurement only; nothing asserts.
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import os
import pstats
import secrets
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path

import asyncpg
import uvloop
from cryptography.fernet import Fernet
from faststream.nats import NatsBroker
from lakegate.common.broker import create_broker
from lakegate.common.contracts.catalog import DatasetList, ListDatasets, ListRuns, RunList
from lakegate.common.contracts.sources import (
    ListSources,
    RegisterSource,
    SourceAddress,
    SourceInfo,
    SourceList,
    SourceLogin,
)
from lakegate.common.errors import Unavailable
from lakegate.common.rpc import RpcClient, answer_from
from lakegate.common.settings import NatsSettings
from lakegate.common.subjects import Topology
from lakegate.devstack.nats_server import NatsServer
from lakegate.devstack.ports import free_port
from lakegate.devstack.postgres import PostgresCluster
from nats.aio.msg import Msg
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator
from pydantic import BaseModel

from bench.edge import cpu_seconds, cpu_split, reference_us
from bench.machine import load

PREFIX = "bench"


@dataclass(frozen=True)
class Listing:
    """One of the catalog's listings to ask: its request, subject and answer model."""

    request: BaseModel
    subject: Callable[[Topology], str]
    answer: type[BaseModel]


def _listing(name: str, tenant: str) -> Listing:
    if name == "runs":
        return Listing(ListRuns(tenant_id=tenant, limit=500), lambda t: t.runs_list, RunList)
    if name == "datasets":
        return Listing(ListDatasets(tenant_id=tenant, limit=1000), lambda t: t.datasets_list, DatasetList)
    return Listing(ListSources(tenant_id=tenant), lambda t: t.sources_list, SourceList)


async def _seed_runs(dsn: str, tenant: str, connection_id: str, count: int) -> None:
    """`count` finished runs of the tenant, written straight into the catalog's database, with a dataset each."""
    conn = await asyncpg.connect(dsn)
    try:
        columns = '[{"version":1,"name":"id","source_type":"bigint","arrow_type":"int64","mapped":true},' + (
            '{"version":1,"name":"note","source_type":"text","arrow_type":"string","mapped":true}]'
        )
        for index in range(count):
            status = ("succeeded", "failed", "succeeded", "cancelled")[index % 4]
            run_id = f"run_bench{index:06d}"
            await conn.execute(
                """
                INSERT INTO runs (run_id, tenant_id, connection_id, source_table, target_catalog, target_schema,
                                  target_name, sync_mode, status, columns, staged_rows, row_count, bytes,
                                  error_code, error_message, started_at, finished_at, schema_changes)
                VALUES ($1, $2, $3, 'public.orders', $4, 'bronze', $5, 'full', $6, $7::text::jsonb, 1000, $8, 10000,
                        $9, $10, now() - interval '5 seconds', now(), '[]')
                """,
                run_id,
                tenant,
                connection_id,
                f"tenant_{tenant}",
                f"shop_orders_{index}",
                status,
                columns,
                1000 if status == "succeeded" else None,
                "source_error" if status == "failed" else None,
                "failed on purpose" if status == "failed" else None,
            )
            await conn.execute(
                """
                INSERT INTO datasets (tenant_id, target_catalog, target_schema, target_name, connection_id,
                                      source_table, row_count, columns, last_run_id, keys, last_synced_at)
                VALUES ($1, $2, 'bronze', $3, $4, 'public.orders', 1000, $5::text::jsonb, $6, '["id"]', now())
                """,
                tenant,
                f"tenant_{tenant}",
                f"shop_orders_{index}",
                connection_id,
                columns,
                run_id,
            )
    finally:
        await conn.close()


@dataclass(frozen=True)
class Figure:
    way: str
    mode: str
    calls: int
    seconds: float
    caller_ms: float
    catalog_ms: float
    catalog_system: float
    nats_ms: float

    def line(self) -> str:
        return (
            f"{self.way:5} {self.mode:10} {self.calls / self.seconds:7.0f} req/s   CPU ms/request: "
            f"caller {self.caller_ms:.3f}  catalog {self.catalog_ms:.3f} ({100 * self.catalog_system:.0f}% system)  "
            f"nats {self.nats_ms:.3f}"
        )


async def _measure(
    way: str, mode: str, ask: Callable[[], Awaitable[object]], calls: int, concurrency: int, pids: tuple[int, int]
) -> Figure:
    catalog_pid, nats_pid = pids
    per_task = calls // concurrency

    async def asker() -> None:
        for _ in range(per_task):
            await ask()

    (user0, system0), nats0, wall0, cpu0 = (
        cpu_split(catalog_pid),
        cpu_seconds(nats_pid),
        time.perf_counter(),
        time.process_time(),
    )
    await asyncio.gather(*(asker() for _ in range(concurrency)))
    cpu, wall = time.process_time() - cpu0, time.perf_counter() - wall0
    user1, system1 = cpu_split(catalog_pid)
    done = per_task * concurrency
    catalog = user1 - user0 + system1 - system0
    return Figure(
        way,
        mode,
        done,
        wall,
        cpu / done * 1e3,
        catalog / done * 1e3,
        (system1 - system0) / catalog if catalog else 0.0,
        (cpu_seconds(nats_pid) - nats0) / done * 1e3,
    )


async def _register(rpc: RpcClient, topology: Topology, tenant: str, sources: int) -> list[SourceInfo]:
    """`sources` sources of the tenant, as the catalog registered them."""
    registered = []
    for index in range(sources):
        login = SourceLogin(
            address=SourceAddress(host=f"db{index}.example.internal", database="shop", user="reader"),
            password_ref=f"env:SHOP_{index}_PASSWORD",
        )
        request = RegisterSource(tenant_id=tenant, name=f"shop {index}", login=login)
        registered.append(await rpc.call(topology.sources_register, request, SourceInfo))
    return registered


async def _ready(rpc: RpcClient, topology: Topology, tenant: str, timeout: float = 120.0) -> None:
    """Wait until the catalog answers (it migrates its database first)."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            await rpc.call(topology.sources_list, ListSources(tenant_id=tenant), SourceList)
            return
        except Unavailable:
            if time.monotonic() > deadline:
                raise
            await asyncio.sleep(0.5)


@dataclass(frozen=True)
class Catalog:
    """One catalog process under measurement: its name in the figures, subject prefix and pid."""

    name: str
    prefix: str
    pid: int
    dsn: str


async def _run(args: argparse.Namespace, nats_url: str, catalogs: list[Catalog], nats_pid: int) -> None:
    broker: NatsBroker = create_broker(NatsSettings(url=nats_url, prefix=PREFIX, request_timeout=30.0), "bench")
    await broker.connect()
    rpc = RpcClient(broker, timeout=30.0)
    nc = broker.connection
    propagator = TraceContextTextMapPropagator()
    tenant = f"tenant{secrets.token_hex(4)}"
    listing = _listing(args.listing, tenant)
    request = listing.request
    payload = request.model_dump_json().encode()
    asks: dict[tuple[str, str], Callable[[], Awaitable[object]]] = {}
    for catalog in catalogs:
        topology = Topology(catalog.prefix)
        await _ready(rpc, topology, tenant)
        registered = await _register(rpc, topology, tenant, max(args.sources, 1 if args.runs else 0))
        if args.runs:
            await _seed_runs(catalog.dsn, tenant, registered[0].connection_id, args.runs)
        subject = listing.subject(topology)

        async def bare(subject: str = subject) -> Msg:
            headers = {"content-type": "application/json"}
            propagator.inject(headers)
            return await nc.request(subject, payload, timeout=30.0, headers=headers)

        async def legacy(subject: str = subject) -> object:
            # RpcClient's request before issue 14's fourth round: nc.request, then the reply parsed once.
            return answer_from((await bare(subject)).data, listing.answer)

        async def call(subject: str = subject) -> object:
            return await rpc.call(subject, request, listing.answer)

        asks.update({(catalog.name, "bare"): bare, (catalog.name, "legacy"): legacy, (catalog.name, "rpc"): call})
        await rpc.call(subject, request, listing.answer)
        print(f"{catalog.name}: {args.listing} of tenant {tenant}, reply {len((await bare()).data)} bytes")
    # A current span, as in the edge while it serves a tool call: every request carries a traceparent.
    tracer = TracerProvider().get_tracer("bench")
    with tracer.start_as_current_span("tools/call list_sources"):
        for ask in asks.values():
            for _ in range(200):  # warm both sides up
                await ask()
        print(f"reference_us {reference_us():.1f}")
        for round_ in range(args.rounds):
            for catalog in catalogs:
                for way in args.ways:
                    for mode, concurrency in (("sequential", 1), (f"c={args.concurrency}", args.concurrency)):
                        first = round_ == 0 and catalog is catalogs[0]
                        profiled = args.profile and round_ == 0 and way == "rpc" and concurrency > 1
                        if profiled:
                            os.kill(catalog.pid, signal.SIGUSR1)
                        caller = cProfile.Profile(time.process_time) if args.profile_caller and first else None
                        if caller is not None:
                            caller.enable()
                        ask = asks[catalog.name, way]
                        figure = await _measure(way, mode, ask, args.calls, concurrency, (catalog.pid, nats_pid))
                        if caller is not None:
                            caller.disable()
                            out = args.out.with_suffix(".caller.pstats")
                            caller.dump_stats(str(out))
                            print(_summary(out, figure.calls, f"caller ({way} {mode})"))
                        if profiled:
                            os.kill(catalog.pid, signal.SIGUSR2)
                            await _written(_profile_of(args.out, catalog.name))
                            print(_summary(_profile_of(args.out, catalog.name), figure.calls, catalog.name))
                        print(f"{catalog.name:8} {figure.line()}", flush=True)
    print(f"reference_us {reference_us():.1f}, load {load()[0]:.1f}")
    await broker.stop()


def _profile_of(out: Path, catalog: str) -> Path:
    """Where the profiled `catalog` writes its statistics: `out` for this checkout's, beside it for the baseline."""
    return out if catalog == "catalog" else out.with_name(f"{out.stem}-{catalog}{out.suffix}")


def _size(path: Path) -> int:
    return path.stat().st_size if path.exists() else 0


async def _written(path: Path, timeout: float = 30.0) -> None:
    """Wait for the profiled catalog to write its statistics."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if _size(path) > 0:
            await asyncio.sleep(0.5)  # let it finish writing
            return
        await asyncio.sleep(0.1)
    raise SystemExit(f"the profiled catalog wrote no statistics to {path}")


def _summary(path: Path, requests: int, who: str = "catalog", top: int = 25) -> str:
    """Function calls per request and the functions with the most own time, from a pstats file."""
    stats = pstats.Stats(str(path))
    rows = stats.stats  # type: ignore[attr-defined]
    calls = sum(row[1] for row in rows.values())
    own = sorted(rows.items(), key=lambda item: item[1][2], reverse=True)[:top]
    total = sum(row[2] for row in rows.values()) or 1.0
    lines = [f"{who} under cProfile: {calls / requests:.0f} Python function calls per request"]
    for (file, line, name), row in own:
        lines.append(f"  {100 * row[2] / total:5.1f}%  {row[1] / requests:6.2f}/req  {Path(file).name}:{line}:{name}")
    return "\n".join(lines)


def _start_catalog(
    home: Path, nats_url: str, dsn: str, prefix: str, profile: Path | None, source: Path | None = None
) -> subprocess.Popen[bytes]:
    """`python -m lakegate.catalog` on `prefix`; from another checkout's sources when `source` is given."""
    env = {
        **os.environ,
        "LAKEGATE_NATS_URL": nats_url,
        "LAKEGATE_NATS_PREFIX": prefix,
        "LAKEGATE_CATALOG_DATABASE_URL": dsn,
        "LAKEGATE_CATALOG_SECRET_KEY": Fernet.generate_key().decode(),
        "LAKEGATE_CATALOG_SCHEDULER_ENABLED": "false",
        "LAKEGATE_LOG_LEVEL": "WARNING",
    }
    if source is not None:
        # First on the path: the namespace package `lakegate` then takes its catalog and common from there.
        env["PYTHONPATH"] = os.pathsep.join(str(source / part) for part in ("services/catalog/src", "libs/common/src"))
    log = (home / f"catalog-{prefix}.log").open("wb")
    command = (
        ["-m", "lakegate.catalog"] if profile is None else ["-m", "bench.profiled", str(profile), "lakegate.catalog"]
    )
    return subprocess.Popen([sys.executable, *command], env=env, stdout=log, stderr=subprocess.STDOUT)


async def _create_database(dsn: str, name: str) -> None:
    admin = await asyncpg.connect(dsn)
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
    finally:
        await admin.close()


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.rpc", description=__doc__.split("\n")[0])
    parser.add_argument("--calls", type=int, default=3000, help="requests per figure")
    parser.add_argument("--concurrency", type=int, default=64, help="tasks asking at once in the concurrent figure")
    parser.add_argument("--sources", type=int, default=0, help="sources of the listed tenant (bench.edge lists 0)")
    parser.add_argument(
        "--listing", default="sources", choices=["sources", "runs", "datasets"], help="which listing to ask"
    )
    parser.add_argument("--runs", type=int, default=0, help="finished runs (and a dataset each) of the tenant")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--ways", nargs="+", default=["bare", "legacy", "rpc"], choices=["bare", "legacy", "rpc"])
    parser.add_argument(
        "--baseline",
        type=Path,
        help="a checkout (e.g. `git archive` of main) whose catalog is measured too, in turns with this one's",
    )
    parser.add_argument(
        "--profile", action="store_true", help="run the catalog under cProfile in round 1 (rpc, concurrent)"
    )
    parser.add_argument(
        "--profile-caller", action="store_true", help="run this process under cProfile in round 1's figures"
    )
    parser.add_argument("--out", type=Path, default=Path("bench/results/catalog-rpc.pstats"), help="cProfile output")
    args = parser.parse_args()
    if args.profile or args.profile_caller:
        args.out = args.out.resolve()
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.unlink(missing_ok=True)
        _profile_of(args.out, "baseline").unlink(missing_ok=True)
    trace.set_tracer_provider(TracerProvider())  # a span context to propagate, exported nowhere
    with tempfile.TemporaryDirectory(prefix="lakegate-bench-rpc-") as tmp:
        home = Path(tmp)
        nats = NatsServer(home / "nats", free_port())
        cluster = PostgresCluster(home / "pg", free_port(), durable=False)
        nats.start()
        cluster.start()
        started: list[subprocess.Popen[bytes]] = []
        try:
            wanted = [("catalog", PREFIX, None)]
            if args.baseline is not None:
                wanted.append(("baseline", "benchbase", args.baseline.resolve()))
            catalogs = []
            for name, prefix, source in wanted:
                uvloop.run(_create_database(cluster.dsn(), prefix))
                profile = _profile_of(args.out, name) if args.profile else None
                process = _start_catalog(home, nats.url, cluster.dsn(prefix), prefix, profile, source)
                started.append(process)
                catalogs.append(Catalog(name, prefix, process.pid, cluster.dsn(prefix)))
            assert nats.proc is not None
            uvloop.run(_run(args, nats.url, catalogs, nats.proc.pid))
        finally:
            for process in started:
                process.terminate()
                process.wait(timeout=30)
            cluster.stop()
            nats.stop()


if __name__ == "__main__":
    main()
