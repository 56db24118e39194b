"""Several tables in one call against the sum of their COPY times: `python -m bench.tables`.

Creates the mixed table (`bench.source`) at each of `--sizes` rows in a fresh source cluster,
times PostgreSQL's binary COPY of each (psql into /dev/null, as `bench.run`'s baseline), then
syncs them all with one `sync_table_to_bronze` call through a whole stack and reports the call's
wall time over the sum of the COPY times, with every service's peak RSS and the CPU it used during
the call. With one size it is the plain "full sync vs binary COPY" figure.

`--pin` puts PostgreSQL (the postmaster and every process it has or will fork) on CPU 0 and the
services and NATS on CPU 1 with `taskset`, the shape of a deployment where the source has CPUs of
its own. Measurement only; nothing asserts.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import time
from pathlib import Path
from typing import Any

import psutil
from lakegate.devstack.postgres import server_binaries
from lakegate.devstack.stack import Stack

from bench.machine import describe_machine
from bench.memory import PeakSampler
from bench.source import SourceDatabase, create_mixed_table, prepare_database, source_cluster
from bench.syncs import agent, process_ids, running_stack

SIZES = (1_000_000, 500_000, 250_000, 100_000, 50_000, 10_000, 1_000, 100)
MIB = 1024 * 1024


def pin(pid: int, cpu: int) -> None:
    """Pin `pid`, its threads and every process below it to `cpu` (children fork with the parent's mask)."""
    try:
        tree = [psutil.Process(pid), *psutil.Process(pid).children(recursive=True)]
    except psutil.Error:
        return
    for process in tree:
        subprocess.run(["taskset", "-a", "-c", "-p", str(cpu), str(process.pid)], capture_output=True, check=False)


def cpu_seconds(pids: dict[str, int]) -> dict[str, float]:
    """User + system CPU each process has used so far (threads included)."""
    used = {}
    for name, pid in pids.items():
        try:
            times = psutil.Process(pid).cpu_times()
        except psutil.Error:
            continue
        used[name] = times.user + times.system
    return used


def copy_seconds(source: SourceDatabase, table: str) -> float:
    """Wall time of `COPY (SELECT * FROM table) TO STDOUT (FORMAT binary)` read by psql into /dev/null."""
    command = [str(server_binaries() / "psql"), "-X", "-q", "-v", "ON_ERROR_STOP=1", "-h", source.host]
    command += ["-p", str(source.port), "-U", source.user, "-d", source.database]
    command += ["-c", f"COPY (SELECT * FROM {table}) TO STDOUT (FORMAT binary)"]
    env = {"PGPASSWORD": source.password, "PATH": "/usr/bin:/bin"}
    began = time.perf_counter()
    subprocess.run(command, stdout=subprocess.DEVNULL, env=env, check=True)
    return time.perf_counter() - began


async def measure(sizes: list[int], repeat: int, variants: list[bool]) -> list[dict[str, Any]]:
    """One figure per variant (unpinned, pinned), on the same tables and the same stack."""
    figures = []
    with source_cluster() as (cluster, _):
        source = await prepare_database(cluster)
        tables = [(await create_mixed_table(source, rows))[0] for rows in sizes]
        with running_stack() as stack:
            pids = process_ids(stack)
            for pinned in variants:
                if pinned:
                    assert cluster.proc is not None
                    pin(cluster.proc.pid, 0)
                    for pid in pids.values():
                        pin(pid, 1)
                figures.append(await _figure(stack, source, tables, pids, repeat, sizes, pinned))
    return figures


async def _figure(
    stack: Stack, source: SourceDatabase, tables: list[str], pids: dict[str, int], repeat: int, sizes: list[int],
    pinned: bool,
) -> dict[str, Any]:  # fmt: skip
    copies = {table: min(copy_seconds(source, table) for _ in range(repeat)) for table in tables}
    calls: list[dict[str, Any]] = []
    async with agent(stack, source, name=f"bench{'pinned' if pinned else ''}") as driver:
        for _ in range(repeat):
            with PeakSampler(pids) as sampler:
                cpu_before, began, sent = cpu_seconds(pids), time.perf_counter(), time.time()
                answer = await driver.call(
                    "sync_table_to_bronze", {"connection_id": driver.connection_id, "table_name": tables}
                )
                seconds, cpu_after, answered = time.perf_counter() - began, cpu_seconds(pids), time.time()
            calls.append(
                {
                    "seconds": seconds,
                    "outcomes": {t["source_table"]: t["outcome"] for t in answer["tables"]},
                    "peak_rss_mib": {name: round(b / MIB, 1) for name, b in sampler.peaks.items()},
                    "cpu_seconds": {name: round(cpu_after[name] - cpu_before[name], 2) for name in cpu_after},
                    "phases": {
                        t["source_table"]: {
                            name: round(value, 2)
                            for name, value in (await driver.phases(str(t["run"]["run_id"]), sent, answered)).items()
                        }
                        for t in answer["tables"]
                        if t.get("run")
                    },
                }
            )
    copy_sum = sum(copies.values())
    best = min(calls, key=lambda c: c["seconds"])
    return {
        "sizes": sizes,
        "pinned": pinned,
        "copy_seconds": copies,
        "copy_sum_seconds": copy_sum,
        "calls": calls,
        "best_call_seconds": best["seconds"],
        "ratio": best["seconds"] / copy_sum,
    }


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.tables", description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", default=",".join(map(str, SIZES)), help="rows of each table, comma-separated")
    parser.add_argument("--repeat", type=int, default=1, help="COPYs and calls per figure (the fastest counts)")
    parser.add_argument(
        "--pin",
        choices=("no", "yes", "both"),
        default="no",
        help="yes: PostgreSQL on CPU 0, the services and NATS on CPU 1; both: unpinned, then pinned",
    )
    parser.add_argument("--results", type=Path, default=Path("bench/results"))
    args = parser.parse_args()
    if args.pin != "no" and (os.cpu_count() or 1) < 2:
        raise SystemExit("--pin needs two CPUs")
    sizes = [int(s) for s in args.sizes.split(",")]
    variants = {"no": [False], "yes": [True], "both": [False, True]}[args.pin]
    figures = asyncio.run(measure(sizes, args.repeat, variants))
    for figure in figures:
        for table, seconds in figure["copy_seconds"].items():
            print(f"COPY {table:>18}: {seconds:7.2f} s{' (pinned)' if figure['pinned'] else ''}")
        best = min(figure["calls"], key=lambda c: c["seconds"])
        print(
            f"one call, {len(sizes)} tables{' (pinned)' if figure['pinned'] else ''}: "
            f"{figure['best_call_seconds']:.2f} s vs COPY sum {figure['copy_sum_seconds']:.2f} s = "
            f"{figure['ratio']:.2f}x; outcomes {sorted(set(best['outcomes'].values()))}; "
            f"peak RSS MiB {best['peak_rss_mib']}; CPU s {best['cpu_seconds']}"
        )
        for table, phases in best["phases"].items():
            print(f"  phases s {table}: {phases}")
    args.results.mkdir(parents=True, exist_ok=True)
    path = args.results / f"tables-{time.strftime('%Y%m%dT%H%M%SZ', time.gmtime())}.json"
    path.write_text(json.dumps({"machine": describe_machine(), "figures": figures}, indent=2))
    print(f"results: {path}")


if __name__ == "__main__":
    main()
