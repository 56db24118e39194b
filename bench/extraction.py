"""Runs the extraction paths of `bench.probe`, each measurement in a fresh interpreter, and keeps the figures."""

from __future__ import annotations

import asyncio
import json
import statistics
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psutil

from bench.source import SourceDatabase

#: The path whose median every ratio divides by: PostgreSQL's own binary COPY, read by the cheapest
#: client there is (psql, C, writing to /dev/null), so a ratio of 1.0 means "as fast as the server sends".
BASELINE = "copy-psql"
#: The extractor's own path: the one the targets are about.
EXTRACTOR = "extractor"
#: Every path, in the order they are run and shown.
PATHS = (
    "copy-psql",
    "copy-asyncpg",
    "copy-planned",
    "adbc-raw",
    "adbc-planned",
    "extractor",
    "extractor-staged",
    "extractor-files",
    "extractor-files-2",
    "asyncpg-fetch",
    "ranges-2",
    "ranges-4",
)


class ProbeFailed(RuntimeError):
    """A probe process exited with an error; the message carries the end of its stderr."""


@dataclass
class PathFigures:
    """Every measurement of one path on one table."""

    path: str
    runs: list[dict[str, Any]] = field(default_factory=list)

    @property
    def median_seconds(self) -> float:
        return float(statistics.median(run["seconds"] for run in self.runs))

    @property
    def spread(self) -> tuple[float, float]:
        """The fastest and the slowest run, in seconds: how noisy the median is."""
        seconds = [run["seconds"] for run in self.runs]
        return float(min(seconds)), float(max(seconds))

    @property
    def median_cpu_seconds(self) -> float:
        return float(statistics.median(run["cpu_seconds"] for run in self.runs))

    @property
    def median_server_cpu_seconds(self) -> float:
        return float(statistics.median(run["server_cpu_seconds"] for run in self.runs))

    @property
    def peak_rss(self) -> int:
        """The highest RSS of the process that did the work, over every repetition."""
        return int(max(run["child_peak_rss"] or run["peak_rss"] for run in self.runs))

    @property
    def start_rss(self) -> int:
        """RSS when the work began (imports done), the floor under `peak_rss`."""
        return int(min(run["start_rss"] for run in self.runs))

    def summary(self, baseline_seconds: float) -> dict[str, Any]:
        """The figures of this path, as they go into the JSON file."""
        return {
            "median_seconds": self.median_seconds,
            "ratio_to_copy": self.median_seconds / baseline_seconds,
            "median_cpu_seconds": self.median_cpu_seconds,
            "median_server_cpu_seconds": self.median_server_cpu_seconds,
            "peak_rss_bytes": self.peak_rss,
            "start_rss_bytes": self.start_rss,
            "rows": self.runs[-1]["rows"],
            "arrow_bytes": self.runs[-1]["arrow_bytes"],
            "staged_bytes": self.runs[-1]["staged_bytes"],
            "runs": self.runs,
        }


def server_cpu_seconds(postmaster: int) -> float:
    """CPU the PostgreSQL server has used: the postmaster and every backend it has reaped.

    A backend ends when its connection closes, and its CPU time then counts among the postmaster's
    children's, so the difference around one probe is what the server spent serving it.
    """
    times = psutil.Process(postmaster).cpu_times()
    return float(times.user + times.system + times.children_user + times.children_system)


async def probe(path: str, source: SourceDatabase, table: str, repo: Path, postmaster: int) -> dict[str, Any]:
    """Measure `path` once, in a new interpreter; its JSON line as a dict, plus the server's CPU."""
    server_before = server_cpu_seconds(postmaster)
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "bench.probe",
        path,
        "--host",
        source.host,
        "--port",
        str(source.port),
        "--database",
        source.database,
        "--user",
        source.user,
        "--table",
        table,
        cwd=repo,
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await proc.communicate((source.password + "\n").encode())
    if proc.returncode != 0:
        tail = err.decode(errors="replace").strip().splitlines()[-15:]
        raise ProbeFailed(f"probe {path} on {table} exited with code {proc.returncode}:\n" + "\n".join(tail))
    result: dict[str, Any] = json.loads(out.decode().strip().splitlines()[-1])
    result["server_cpu_seconds"] = server_cpu_seconds(postmaster) - server_before
    return result


async def measure_paths(
    source: SourceDatabase,
    table: str,
    paths: Sequence[str],
    repeat: int,
    repo: Path,
    postmaster: int,
    *,
    say: Any = print,
) -> dict[str, PathFigures]:
    """Every path `repeat` times, interleaved (a, b, c, a, b, c, ...) so a noisy moment hits them all alike."""
    figures = {path: PathFigures(path) for path in paths}
    for round_number in range(1, repeat + 1):
        for path in paths:
            run = await probe(path, source, table, repo, postmaster)
            figures[path].runs.append(run)
            say(
                f"  [{round_number}/{repeat}] {path:<17} {run['seconds']:7.2f}s, client CPU {run['cpu_seconds']:.2f}s, "
                f"server CPU {run['server_cpu_seconds']:.2f}s"
            )
    return figures
