"""Latency of `query_sql` inside the loader: `python -m bench.query_latency [--calls N] [--cache on|off|both]`.

Runs `LocalLakehouse.query` (guard, translation, the capped statement process, JSON rows) with the
process cap on, for `SELECT 1` and for an aggregate over one 10,000-row Delta table: the first call,
then p50 / min of `--calls` calls one at a time with the loader's own CPU per call and the statement
processes' CPU per call, then calls/s with 4 at once (the loader's default `QUERY_SLOTS`). With the
answer cache on, a repeated call is answered by `cached_answer` (as the handler does, before the
lane) and the rest by `query`. No NATS and no edge: what the loader adds to each call.
Measurement only.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import statistics
import tempfile
import time
from pathlib import Path

import psutil
import pyarrow as pa
from deltalake import write_deltalake
from lakegate.loader.warehouses.delta import QUERY_CACHE_BYTES, LocalLakehouse
from lakegate.loader.warehouses.sqlengine import EngineLimits

CATALOG = "tenant_bench"
#: Calls at once: the loader's default `QUERY_SLOTS`, which also bounds its statements.
AT_ONCE = 4
QUERIES = ("SELECT 1", "SELECT count(*), max(v) FROM bronze.t")


def _children_cpu() -> float:
    """CPU seconds of this process's live children and grandchildren (the fork server's statement workers)."""
    total = 0.0
    for child in psutil.Process().children(recursive=True):
        with contextlib.suppress(psutil.Error):  # a worker may end between the listing and the reading
            times = child.cpu_times()
            total += times.user + times.system
    return total


async def ask(lake: LocalLakehouse, sql: str) -> None:
    """One call as the handler makes it: the kept answer if there is one, else the statement."""
    if lake.cached_answer(CATALOG, sql, 10) is None:
        await lake.query(CATALOG, sql, 10, 30)


async def measure(calls: int, warm: bool, cache_bytes: int) -> None:
    root = Path(tempfile.mkdtemp(prefix="lakegate-query-latency-"))
    path = root / CATALOG / "bronze" / "t"
    path.parent.mkdir(parents=True)
    rows = range(10_000)
    write_deltalake(str(path), pa.table({"id": pa.array(rows), "v": pa.array([str(i) for i in rows])}))
    lake = LocalLakehouse(root, limits=EngineLimits(process_memory=1 << 30), query_cache_bytes=cache_bytes)
    print(f"answer cache: {'off' if cache_bytes == 0 else f'{cache_bytes} bytes'}")
    try:
        if warm:
            started = time.perf_counter()
            await asyncio.to_thread(lake.warm)
            print(f"warm-up (as at loader start): {1000 * (time.perf_counter() - started):.0f} ms")
        started = time.perf_counter()
        await lake.query(CATALOG, "SELECT 1", 10, 30)
        print(f"first SELECT 1: {1000 * (time.perf_counter() - started):.0f} ms")
        for sql in QUERIES:
            times = []
            cpu, workers = time.process_time(), _children_cpu()
            for _ in range(calls):
                started = time.perf_counter()
                await ask(lake, sql)
                times.append(1000 * (time.perf_counter() - started))
            per_call = 1000 * (time.process_time() - cpu) / calls
            per_worker = 1000 * (_children_cpu() - workers) / calls
            print(
                f"{sql}: p50 {statistics.median(times):.2f} ms, min {min(times):.2f} ms, "
                f"loader CPU {per_call:.2f} ms/call, statement processes {per_worker:.2f} ms/call"
            )
            slots = asyncio.Semaphore(AT_ONCE)

            async def one(sql: str = sql, slots: asyncio.Semaphore = slots) -> None:
                async with slots:
                    await ask(lake, sql)

            started = time.perf_counter()
            await asyncio.gather(*(one() for _ in range(calls)))
            print(f"  {AT_ONCE} at once: {calls / (time.perf_counter() - started):.0f} calls/s")
    finally:
        lake.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=50, help="calls one at a time per query")
    parser.add_argument("--no-warm", action="store_true", help="skip the warm-up the loader does at start")
    parser.add_argument("--cache", choices=("on", "off", "both"), default="both", help="the answer cache")
    args = parser.parse_args()
    for cache in ("off", "on") if args.cache == "both" else (args.cache,):
        asyncio.run(measure(args.calls, warm=not args.no_warm, cache_bytes=QUERY_CACHE_BYTES if cache == "on" else 0))


if __name__ == "__main__":  # the statement workers' fork server imports this module: run nothing then
    main()
