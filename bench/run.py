"""Run every benchmark and report: `uv run python -m bench.run [--rows 1000000,5000000] [--repeat 5] [--quick]`.

    1. a non-durable PostgreSQL on a free port; the mixed table at each size (made once, vacuumed, read once)
    2. extraction paths, each measurement in a fresh process, interleaved, `--repeat` times (bench.probe)
    3. the whole stack in a temporary home on free ports; an MCP client registers the source, then
       full syncs of each size, incremental and merge syncs of 1% changed rows, and `--overhead-runs`
       syncs of a 1,000-row table
    4. a table on stdout and every figure in bench/results/bench-<time>.json

Measurement only: nothing here asserts a timing. See bench/README.md for what each figure means.
"""

from __future__ import annotations

import argparse
import asyncio
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path

from lakegate.extractor.config import ExtractorSettings

from bench.extraction import BASELINE, PATHS, measure_paths
from bench.machine import describe_machine, load, versions
from bench.report import Run, SizeFigures, as_text, write_json
from bench.source import (
    SourceDatabase,
    create_mixed_table,
    prepare_database,
    server_version,
    source_cluster,
    touch_rows,
)
from bench.syncs import Agent, SyncFigures, ToolFailed, agent, running_stack

REPO = Path(__file__).resolve().parent.parent
RESULTS = REPO / "bench" / "results"
#: Share of rows an incremental sync finds changed.
CHANGED_FRACTION = 0.01
OVERHEAD_ROWS = 1000
#: Sync modes measured on each table size.
MODES = ("full", "incremental", "merge")


def say(text: str) -> None:
    """Progress, as the run goes (the report comes at the end)."""
    print(text, flush=True)


def _sizes(text: str) -> list[int]:
    try:
        sizes = [int(part.replace("_", "")) for part in text.split(",") if part.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"--rows takes row counts separated by commas, e.g. 1000000,5000000; got {text!r}"
        ) from None
    if not sizes or any(size < 1 for size in sizes):
        raise argparse.ArgumentTypeError(f"--rows needs at least one positive row count; got {text!r}")
    return sizes


def _paths(text: str) -> list[str]:
    chosen = [part.strip() for part in text.split(",") if part.strip()]
    unknown = [path for path in chosen if path not in PATHS]
    if unknown:
        raise argparse.ArgumentTypeError(f"unknown path(s) {', '.join(unknown)}; choose from {', '.join(PATHS)}")
    # Every ratio divides by the baseline, so it is always measured.
    return [path for path in PATHS if path in chosen or path == BASELINE]


def _modes(text: str) -> list[str]:
    chosen = [part.strip() for part in text.split(",") if part.strip()]
    unknown = [mode for mode in chosen if mode not in MODES]
    if unknown or not chosen:
        raise argparse.ArgumentTypeError(f"--modes takes some of {', '.join(MODES)}; got {text!r}")
    return [mode for mode in MODES if mode in chosen]


def parse(argv: Sequence[str] | None) -> argparse.Namespace:
    """The command line."""
    parser = argparse.ArgumentParser(prog="python -m bench.run", description=__doc__.splitlines()[0])
    parser.add_argument(
        "--rows", type=_sizes, default=[1_000_000, 5_000_000], help="table sizes (default 1000000,5000000)"
    )
    parser.add_argument(
        "--repeat", type=int, default=5, help="measurements per figure; medians are reported (default 5)"
    )
    parser.add_argument("--quick", action="store_true", help="smoke run: 100,000 rows, 2 repeats, 5 overhead runs")
    parser.add_argument(
        "--paths", type=_paths, default=list(PATHS), help=f"extraction paths (default all: {','.join(PATHS)})"
    )
    parser.add_argument("--overhead-runs", type=int, default=20, help="1,000-row syncs for p50/p95 (default 20)")
    parser.add_argument(
        "--modes", type=_modes, default=list(MODES), help=f"sync modes to measure (default all: {','.join(MODES)})"
    )
    parser.add_argument("--no-stack", action="store_true", help="extraction paths only; no services, no syncs")
    parser.add_argument(
        "--parts",
        action="store_true",
        help="stage every run as JetStream parts (the extractor does not share the lakehouse), as in docker-compose",
    )
    parser.add_argument(
        "--no-overlap",
        action="store_true",
        help="the loader starts on `extracted` (no `streaming`): extraction and load one after the other",
    )
    parser.add_argument(
        "--results", type=Path, default=RESULTS, help="directory of the JSON file (default bench/results)"
    )
    args = parser.parse_args(argv)
    if args.quick:
        args.rows, args.repeat, args.overhead_runs = [100_000], 2, 5
    if args.repeat < 1 or args.overhead_runs < 1:
        parser.error("--repeat and --overhead-runs must be at least 1")
    return args


async def _full_syncs(driver: Agent, size: SizeFigures, repeat: int) -> None:
    size.full = SyncFigures("full", size.table)
    for attempt in range(1, repeat + 1):
        try:
            await driver.sync(size.table, "full", size.full)
        except ToolFailed as exc:
            size.full.failed = exc.message
            say(f"  full sync of {size.table} failed: {exc.message}")
            return
        say(f"  [{attempt}/{repeat}] full sync of {size.table}: {size.full.seconds[-1]:.2f}s")


async def _changed_syncs(
    driver: Agent, source: SourceDatabase, size: SizeFigures, mode: str, repeat: int
) -> SyncFigures:
    """One unmeasured `mode` sync to set the cursor, then `repeat` of 1% changed rows each."""
    figures = SyncFigures(mode, size.table)
    priming = SyncFigures(mode, size.table)
    touched = size.touched_rows.setdefault(mode, [])
    for attempt in range(0, repeat + 1):
        if attempt:
            touched.append(await touch_rows(source, size.table, CHANGED_FRACTION))
        try:
            await driver.sync(size.table, mode, figures if attempt else priming)
        except ToolFailed as exc:
            if exc.unsupported:
                figures.unavailable = exc.message
                say(f"  {mode} sync: not available yet ({exc.message})")
            else:
                figures.failed = exc.message
                say(f"  {mode} sync of {size.table} failed: {exc.message}")
            return figures
        if attempt:
            say(
                f"  [{attempt}/{repeat}] {mode} sync of {size.table}: {figures.seconds[-1]:.2f}s, "
                f"{figures.rows[-1]} rows ({touched[-1]} changed)"
            )
    return figures


async def _overhead_syncs(driver: Agent, table: str, runs: int) -> SyncFigures:
    figures = SyncFigures("full", table)
    for _ in range(runs):
        try:
            await driver.sync(table, "full", figures)
        except ToolFailed as exc:
            figures.failed = exc.message
            break
    if figures.measured:
        say(f"  {len(figures.seconds)} syncs of {table}: median {figures.median_seconds * 1000:.0f} ms")
    return figures


async def _syncs(
    run: Run, driver: Agent, source: SourceDatabase, args: argparse.Namespace, overhead_table: str
) -> None:
    say("warming the services up with one unmeasured sync")
    await driver.sync(overhead_table, "full", SyncFigures("full", overhead_table))
    for size in run.sizes:
        if "full" in args.modes:
            await _full_syncs(driver, size, args.repeat)
        if "incremental" in args.modes:
            size.incremental = await _changed_syncs(driver, source, size, "incremental", args.repeat)
        if "merge" in args.modes:
            size.merge = await _changed_syncs(driver, source, size, "merge", args.repeat)
    run.overhead = await _overhead_syncs(driver, overhead_table, args.overhead_runs)


async def bench(args: argparse.Namespace) -> Run:
    """Measure everything the options ask for."""
    settings = ExtractorSettings(allow_private_sources=True)  # the bench source is on this machine
    run = Run(
        started_at=datetime.now(UTC),
        machine=describe_machine(),
        versions=versions(),
        options={
            "rows": args.rows,
            "repeat": args.repeat,
            "quick": args.quick,
            "paths": args.paths,
            "overhead_runs": args.overhead_runs,
            "modes": args.modes,
            "stack": not args.no_stack,
        },
        extractor_settings=settings.model_dump(mode="json", exclude={"nats", "telemetry"}),
        overhead_rows=OVERHEAD_ROWS,
    )
    with source_cluster() as (cluster, _home):
        source = await prepare_database(cluster)
        assert cluster.proc is not None  # started by source_cluster
        postmaster = cluster.proc.pid
        run.versions["postgresql"] = await server_version(source)
        for rows in args.rows:
            say(f"creating the mixed table with {rows:,} rows")
            table, table_bytes = await create_mixed_table(source, rows)
            run.sizes.append(SizeFigures(rows, table, table_bytes))
        overhead_table, _ = await create_mixed_table(source, OVERHEAD_ROWS)
        for size in run.sizes:
            say(f"extraction paths on {size.table}")
            size.paths = await measure_paths(source, size.table, args.paths, args.repeat, REPO, postmaster, say=say)
        if not args.no_stack:
            say("starting the stack (NATS, catalog PostgreSQL, catalog, extractor, loader, edge)")
            with running_stack(data_files=not args.parts, overlap=not args.no_overlap) as stack:
                async with agent(stack, source) as driver:
                    await _syncs(run, driver, source, args, overhead_table)
    run.machine["load_at_end"] = load()
    run.finished_at = datetime.now(UTC)
    return run


def main(argv: Sequence[str] | None = None) -> None:
    """Run the benchmarks, print the table and write the JSON file."""
    args = parse(argv)
    run = asyncio.run(bench(args))
    path = write_json(run, args.results)
    print()
    print(as_text(run))
    print(f"\nevery figure: {path.relative_to(REPO) if path.is_relative_to(REPO) else path}")


if __name__ == "__main__":
    main()
