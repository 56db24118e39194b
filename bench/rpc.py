"""CPU per service request, caller and catalog apart: `python -m bench.rpc [--calls 3000] [--sources 0]`.

Starts a throwaway NATS server and PostgreSQL (the test harness's `NatsServer` and
`PostgresCluster`), and the catalog as a process of its own (`python -m lakegate.catalog`, on
uvloop as deployed). This process (uvloop too) then asks `sources.list` of one tenant that has
`--sources` sources, `--calls` times one after another and `--calls` times from `--concurrency`
tasks at once, in two ways:

- `bare`: `nc.request` of nats-py with the headers an edge sends (content-type, traceparent of a
  current span): what a NATS request costs with nothing of lakegate around it;
- `rpc`: `RpcClient.call(..., SourceList)`, what every service call of the edge goes through.

For each figure it prints this process's CPU per request (`time.process_time`: what the caller
pays), the catalog's and the NATS server's (from `/proc/<pid>/stat`, so the catalog's is its
whole process per answered listing). `--profile` samples the catalog with py-spy meanwhile and
prints its hottest functions (`bench.profile.summarize`). The CPU time of a fixed Python loop
(`bench.edge.reference_us`) is printed too: how fast a core of the shared machine runs now.
Measurement only; nothing asserts.
"""

from __future__ import annotations

import argparse
import asyncio
import os
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
from lakegate.common.contracts.sources import (
    ListSources,
    RegisterSource,
    SourceAddress,
    SourceInfo,
    SourceList,
    SourceLogin,
)
from lakegate.common.errors import Unavailable
from lakegate.common.rpc import RpcClient
from lakegate.common.settings import NatsSettings
from lakegate.common.subjects import Topology
from lakegate.devstack.nats_server import NatsServer
from lakegate.devstack.ports import free_port
from lakegate.devstack.postgres import PostgresCluster
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

from bench.edge import reference_us
from bench.profile import _py_spy, summarize

_TICK = os.sysconf("SC_CLK_TCK")
PREFIX = "bench"


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds a process has used so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / _TICK


@dataclass(frozen=True)
class Figure:
    way: str
    mode: str
    calls: int
    seconds: float
    caller_ms: float
    catalog_ms: float
    nats_ms: float

    def line(self) -> str:
        return (
            f"{self.way:5} {self.mode:10} {self.calls / self.seconds:7.0f} req/s   CPU ms/request: "
            f"caller {self.caller_ms:.3f}  catalog {self.catalog_ms:.3f}  nats {self.nats_ms:.3f}"
        )


async def _measure(
    way: str, mode: str, ask: Callable[[], Awaitable[object]], calls: int, concurrency: int, pids: tuple[int, int]
) -> Figure:
    catalog_pid, nats_pid = pids
    per_task = calls // concurrency

    async def asker() -> None:
        for _ in range(per_task):
            await ask()

    catalog0, nats0, wall0, cpu0 = (
        cpu_seconds(catalog_pid),
        cpu_seconds(nats_pid),
        time.perf_counter(),
        time.process_time(),
    )
    await asyncio.gather(*(asker() for _ in range(concurrency)))
    cpu, wall = time.process_time() - cpu0, time.perf_counter() - wall0
    done = per_task * concurrency
    return Figure(
        way,
        mode,
        done,
        wall,
        cpu / done * 1e3,
        (cpu_seconds(catalog_pid) - catalog0) / done * 1e3,
        (cpu_seconds(nats_pid) - nats0) / done * 1e3,
    )


async def _register(rpc: RpcClient, topology: Topology, tenant: str, sources: int) -> None:
    for index in range(sources):
        login = SourceLogin(
            address=SourceAddress(host=f"db{index}.example.internal", database="shop", user="reader"),
            password_ref=f"env:SHOP_{index}_PASSWORD",
        )
        request = RegisterSource(tenant_id=tenant, name=f"shop {index}", login=login)
        await rpc.call(topology.sources_register, request, SourceInfo)


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


async def _run(args: argparse.Namespace, nats_url: str, pids: tuple[int, int], spy: list[str] | None) -> None:
    settings = NatsSettings(url=nats_url, prefix=PREFIX, request_timeout=30.0)
    topology = settings.topology
    broker: NatsBroker = create_broker(settings, "bench")
    await broker.connect()
    rpc = RpcClient(broker, timeout=30.0)
    tenant = f"tenant{secrets.token_hex(4)}"
    await _ready(rpc, topology, tenant)
    await _register(rpc, topology, tenant, args.sources)
    request = ListSources(tenant_id=tenant)
    payload = request.model_dump_json().encode()
    nc = broker.connection
    propagator = TraceContextTextMapPropagator()
    # A current span, as in the edge while it serves a tool call: every request carries a traceparent.
    tracer = TracerProvider().get_tracer("bench")

    async def bare() -> object:
        headers = {"content-type": "application/json"}
        propagator.inject(headers)
        return await nc.request(topology.sources_list, payload, timeout=30.0, headers=headers)

    async def call() -> object:
        return await rpc.call(topology.sources_list, request, SourceList)

    listed = await rpc.call(topology.sources_list, request, SourceList)
    print(f"tenant {tenant}: {len(listed.sources)} sources, reply {len((await bare()).data)} bytes")  # type: ignore[attr-defined]
    ways = {"bare": bare, "rpc": call}
    with tracer.start_as_current_span("tools/call list_sources"):
        for way in args.ways:
            for _ in range(200):  # warm both sides up
                await ways[way]()
        print(f"reference_us {reference_us():.1f}")
        for round_ in range(args.rounds):
            for way in args.ways:
                for mode, concurrency in (("sequential", 1), (f"c={args.concurrency}", args.concurrency)):
                    sampler = None
                    if spy is not None and round_ == 0 and way == "rpc" and concurrency > 1:
                        sampler = subprocess.Popen(  # noqa: ASYNC220 (a sampler started between figures)
                            [
                                *spy,
                                "record",
                                "--nonblocking",
                                "-r",
                                "250",
                                "-f",
                                "raw",
                                "-o",
                                str(args.out),
                                "-p",
                                str(pids[0]),
                            ],
                            stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL,
                        )
                        await asyncio.sleep(1.0)
                    figure = await _measure(way, mode, ways[way], args.calls, concurrency, pids)
                    if sampler is not None:
                        sampler.send_signal(signal.SIGINT)  # py-spy writes its samples on SIGINT
                        sampler.wait(timeout=30)
                    print(figure.line(), flush=True)
    print(f"reference_us {reference_us():.1f}, load {os.getloadavg()[0]:.1f}")
    await broker.stop()


def _start_catalog(home: Path, nats_url: str, dsn: str) -> subprocess.Popen[bytes]:
    env = {
        **os.environ,
        "LAKEGATE_NATS_URL": nats_url,
        "LAKEGATE_NATS_PREFIX": PREFIX,
        "LAKEGATE_CATALOG_DATABASE_URL": dsn,
        "LAKEGATE_CATALOG_SECRET_KEY": Fernet.generate_key().decode(),
        "LAKEGATE_CATALOG_SCHEDULER_ENABLED": "false",
        "LAKEGATE_LOG_LEVEL": "WARNING",
    }
    log = (home / "catalog.log").open("wb")
    return subprocess.Popen([sys.executable, "-m", "lakegate.catalog"], env=env, stdout=log, stderr=subprocess.STDOUT)


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
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--ways", nargs="+", default=["bare", "rpc"], choices=["bare", "rpc"])
    parser.add_argument(
        "--profile", action="store_true", help="sample the catalog with py-spy in round 1 (rpc, concurrent)"
    )
    parser.add_argument("--out", type=Path, default=Path("bench/results/catalog-rpc.txt"), help="py-spy raw output")
    args = parser.parse_args()
    spy = _py_spy() if args.profile else None
    if spy is not None:
        args.out = args.out.resolve()
        args.out.parent.mkdir(parents=True, exist_ok=True)
    trace.set_tracer_provider(TracerProvider())  # a span context to propagate, exported nowhere
    with tempfile.TemporaryDirectory(prefix="lakegate-bench-rpc-") as tmp:
        home = Path(tmp)
        nats = NatsServer(home / "nats", free_port())
        cluster = PostgresCluster(home / "pg", free_port(), durable=False)
        nats.start()
        cluster.start()
        catalog = None
        try:
            uvloop.run(_create_database(cluster.dsn(), "catalog"))
            catalog = _start_catalog(home, nats.url, cluster.dsn("catalog"))
            assert nats.proc is not None
            uvloop.run(_run(args, nats.url, (catalog.pid, nats.proc.pid), spy))
        finally:
            if catalog is not None:
                catalog.terminate()
                catalog.wait(timeout=30)
            cluster.stop()
            nats.stop()
    if spy is not None:
        print(f"==== catalog ({args.out}) ====")
        print(summarize(args.out, 20) if args.out.exists() else "  no samples (py-spy could not attach?)")


if __name__ == "__main__":
    main()
