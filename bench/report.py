"""The figures of one run, the targets they are held to (reported, never asserted), a table for a
person and a JSON file for the record."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from bench.extraction import BASELINE, EXTRACTOR, PathFigures
from bench.syncs import SyncFigures, percentile

MIB = 1 << 20
#: Extraction: at most as long as the server's own binary COPY, in less than 256 MiB.
EXTRACTION_RATIO, EXTRACTION_MEMORY = 1.0, 256 * MIB
#: Full sync through the services: at most twice COPY, every service under 512 MiB.
SYNC_RATIO, SERVICE_MEMORY = 2.0, 512 * MIB
#: The fixed cost of a sync: a 1,000-row sync's median under 250 ms.
OVERHEAD_P50 = 0.250
#: The processes held to SERVICE_MEMORY (NATS is reported beside them).
SERVICES = ("catalog", "extractor", "loader", "edge")


@dataclass
class SizeFigures:
    """Everything measured on one table size."""

    rows: int
    table: str
    table_bytes: int
    paths: dict[str, PathFigures] = field(default_factory=dict)
    full: SyncFigures | None = None
    incremental: SyncFigures | None = None
    merge: SyncFigures | None = None
    #: Rows changed before each measured sync, by mode.
    touched_rows: dict[str, list[int]] = field(default_factory=dict)

    @property
    def baseline_seconds(self) -> float:
        return self.paths[BASELINE].median_seconds


@dataclass
class Run:
    """One benchmark run: where, with what, and every figure."""

    started_at: datetime
    machine: dict[str, Any]
    versions: dict[str, str]
    options: dict[str, Any]
    extractor_settings: dict[str, Any]
    sizes: list[SizeFigures] = field(default_factory=list)
    overhead: SyncFigures | None = None
    overhead_rows: int = 1000
    finished_at: datetime | None = None
    notes: list[str] = field(default_factory=list)


def _mib(value: int | float) -> str:
    return f"{value / MIB:.0f} MiB"


def _met(ok: bool) -> str:
    return "met" if ok else "NOT MET"


def targets(run: Run) -> list[dict[str, Any]]:
    """Each target next to its figure, with met / not met."""
    found: list[dict[str, Any]] = []
    for size in run.sizes:
        extractor = size.paths.get(EXTRACTOR)
        if extractor is not None:
            ratio = extractor.median_seconds / size.baseline_seconds
            found.append(
                {
                    "target": f"extraction ≤ {EXTRACTION_RATIO:.1f}x COPY, peak < {_mib(EXTRACTION_MEMORY)}",
                    "rows": size.rows,
                    "figure": f"{ratio:.2f}x COPY, peak {_mib(extractor.peak_rss)}",
                    "ratio_met": ratio <= EXTRACTION_RATIO,
                    "memory_met": extractor.peak_rss < EXTRACTION_MEMORY,
                }
            )
        if size.full is not None and not size.full.measured:
            found.append(
                {
                    "target": f"full sync ≤ {SYNC_RATIO:.1f}x COPY, every service < {_mib(SERVICE_MEMORY)}",
                    "rows": size.rows,
                    "figure": "no figure: the sync failed (see above)",
                    "ratio_met": False,
                    "memory_met": False,
                }
            )
        if size.full is not None and size.full.measured:
            ratio = size.full.median_seconds / size.baseline_seconds
            peaks = size.full.peak_by_process
            worst = max(SERVICES, key=lambda name: peaks.get(name, 0))
            found.append(
                {
                    "target": f"full sync ≤ {SYNC_RATIO:.1f}x COPY, every service < {_mib(SERVICE_MEMORY)}",
                    "rows": size.rows,
                    "figure": f"{ratio:.2f}x COPY, largest service {worst} {_mib(peaks.get(worst, 0))}",
                    "ratio_met": ratio <= SYNC_RATIO,
                    "memory_met": all(peaks.get(name, 0) < SERVICE_MEMORY for name in SERVICES),
                }
            )
    if run.overhead is not None and run.overhead.measured:
        p50 = percentile(run.overhead.seconds, 0.5)
        found.append(
            {
                "target": f"{run.overhead_rows:,}-row sync p50 < {OVERHEAD_P50 * 1000:.0f} ms",
                "rows": run.overhead_rows,
                "figure": f"p50 {p50 * 1000:.0f} ms",
                "ratio_met": p50 < OVERHEAD_P50,
                "memory_met": True,
            }
        )
    for target in found:
        target["met"] = target["ratio_met"] and target["memory_met"]
    return found


def as_json(run: Run) -> dict[str, Any]:
    """The whole run, every figure included, for `bench/results/`."""
    sizes = []
    for size in run.sizes:
        baseline = size.baseline_seconds
        sizes.append(
            {
                "rows": size.rows,
                "table": size.table,
                "table_bytes": size.table_bytes,
                "baseline": {"path": BASELINE, "median_seconds": baseline},
                "extraction_paths": {name: figures.summary(baseline) for name, figures in size.paths.items()},
                "full_sync": size.full.summary(baseline) if size.full else None,
                "incremental_sync": size.incremental.summary(baseline) if size.incremental else None,
                "merge_sync": size.merge.summary(baseline) if size.merge else None,
                "touched_rows": size.touched_rows,
            }
        )
    overhead = None
    if run.overhead is not None and run.overhead.measured:
        overhead = {
            "rows": run.overhead_rows,
            "runs": len(run.overhead.seconds),
            "p50_seconds": percentile(run.overhead.seconds, 0.5),
            "p95_seconds": percentile(run.overhead.seconds, 0.95),
            **run.overhead.summary(None),
        }
    return {
        "started_at": run.started_at.isoformat(),
        "finished_at": run.finished_at.isoformat() if run.finished_at else None,
        "machine": run.machine,
        "versions": run.versions,
        "options": run.options,
        "extractor_settings": run.extractor_settings,
        "sizes": sizes,
        "fixed_overhead": overhead,
        "targets": targets(run),
        "notes": run.notes,
    }


def write_json(run: Run, directory: Path) -> Path:
    """Write the run's JSON under `directory`, named after its start time; returns the path."""
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"bench-{run.started_at:%Y%m%dT%H%M%SZ}.json"
    path.write_text(json.dumps(as_json(run), indent=2, ensure_ascii=False) + "\n")
    return path


def _sync_line(label: str, figures: SyncFigures | None, baseline: float) -> list[str]:
    if figures is None:
        return []
    if figures.unavailable is not None:
        return [f"  {label:<26} not available yet: {figures.unavailable}"]
    if not figures.measured:
        return [f"  {label:<26} failed: {figures.failed}"]
    peaks = figures.peak_by_process
    memory = ", ".join(f"{name} {_mib(peaks[name])}" for name in (*SERVICES, "nats") if name in peaks)
    rows = figures.rows[-1]
    spread = f"{min(figures.seconds):.2f}-{max(figures.seconds):.2f}"
    lines = [
        f"  {label:<26} {figures.median_seconds:8.2f} {figures.median_seconds / baseline:7.2f}x {spread:>11} "
        f"  rows {rows if rows is not None else '?'}, peak RSS: {memory}"
    ]
    phases = figures.median_phases
    if phases:
        lines.append(
            f"  {'':<26} median phases: " + ", ".join(f"{name} {seconds:.2f}s" for name, seconds in phases.items())
        )
    if figures.failed is not None:
        lines.append(f"  {'':<26} a later run failed: {figures.failed}")
    return lines


def as_text(run: Run) -> str:
    """The figures as a table a person reads."""
    machine, lines = run.machine, []
    lines.append(
        f"lakegate bench, {run.started_at:%Y-%m-%d %H:%M} UTC: {machine['logical_cores']} cores, "
        f"{machine['memory_bytes'] / (1 << 30):.1f} GiB, {machine['cpu']}, {machine['system']}"
    )
    lines.append(
        f"load average at start {machine['load_at_start']}, at end {machine.get('load_at_end')}; "
        f"medians of {run.options['repeat']} runs; ratios are x the median of {BASELINE} on the same table"
    )
    versions = run.versions
    lines.append(
        "python {python}, pyarrow {pyarrow}, adbc-driver-postgresql {adbc-driver-postgresql}, "
        "asyncpg {asyncpg}, deltalake {deltalake}, duckdb {duckdb}, PostgreSQL {postgresql}, "
        "nats-server {nats-server}".format(**versions)
    )
    for size in run.sizes:
        baseline = size.baseline_seconds
        lines.append("")
        lines.append(f"{size.table}: {size.rows:,} rows, {_mib(size.table_bytes)} on disk")
        lines.append(
            f"  {'path':<26} {'median s':>8} {'x COPY':>8} {'min-max s':>11} {'client CPU s':>12} {'server CPU s':>12} "
            f"{'peak RSS':>10} {'at start':>10}"
        )
        for name, figures in size.paths.items():
            # psql reads in a process of its own: the peak is psql's, and the probe's RSS at start means nothing.
            at_start = "-" if name == BASELINE else _mib(figures.start_rss)
            fastest, slowest = figures.spread
            lines.append(
                f"  {name:<26} {figures.median_seconds:8.2f} {figures.median_seconds / baseline:7.2f}x "
                f"{f'{fastest:.2f}-{slowest:.2f}':>11} "
                f"{figures.median_cpu_seconds:12.2f} {figures.median_server_cpu_seconds:12.2f} "
                f"{_mib(figures.peak_rss):>10} {at_start:>10}"
            )
        lines.extend(_sync_line("full sync (MCP → bronze)", size.full, baseline))
        lines.extend(_sync_line("incremental sync (1%)", size.incremental, baseline))
        lines.extend(_sync_line("merge sync (1%)", size.merge, baseline))
    if run.overhead is not None:
        lines.append("")
        if run.overhead.measured:
            seconds = run.overhead.seconds
            lines.append(
                f"fixed overhead: {run.overhead_rows:,}-row full sync end to end, {len(seconds)} runs: "
                f"p50 {percentile(seconds, 0.5) * 1000:.0f} ms, p95 {percentile(seconds, 0.95) * 1000:.0f} ms, "
                f"min {min(seconds) * 1000:.0f} ms, max {max(seconds) * 1000:.0f} ms"
            )
            phases = run.overhead.median_phases
            lines.append(
                "  median phases: " + ", ".join(f"{name} {seconds * 1000:.0f} ms" for name, seconds in phases.items())
            )
        else:
            lines.append(f"fixed overhead: failed: {run.overhead.failed}")
    found = targets(run)
    if found:
        lines.append("")
        lines.append("targets (reported, not asserted)")
        for target in found:
            lines.append(
                f"  {target['target']:<52} {target['rows']:>10,} rows: {target['figure']:<44} {_met(target['met'])}"
            )
    for note in run.notes:
        lines.append(f"note: {note}")
    return "\n".join(lines)
