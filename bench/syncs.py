"""Syncs through the running services: the whole stack in a temporary home on free ports, driven by a
real MCP client the way an agent drives it, with every service's peak memory measured per sync."""

from __future__ import annotations

import contextlib
import statistics
import tempfile
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import nats
from lakegate.common.settings import NatsSettings
from lakegate.common.subjects import RunStep, Topology
from lakegate.devstack.stack import EDGE_PROCESSES, SERVICES, Stack, StackConfig, StackPorts
from lakegate.devstack.toolresults import text_of
from mcp import Client
from nats.aio.client import Client as NatsClient
from nats.js.errors import NotFoundError

from bench.memory import PeakSampler
from bench.source import SourceDatabase

#: How long one tool call may take: a 5M-row sync on a shared two-core machine takes minutes.
CALL_TIMEOUT = 3600.0
#: The column an incremental sync follows: the mixed table moves it forward on every changed row.
CURSOR_COLUMN = "updated_at"
#: Words of a tool error that mean "this sync mode is not built yet" rather than "this sync broke".
UNSUPPORTED_WORDS = ("not available", "not supported", "unsupported")


class ToolFailed(RuntimeError):
    """A tool answered with an error result; the message is what the model would read."""

    def __init__(self, tool: str, message: str) -> None:
        super().__init__(f"{tool} failed: {message}")
        self.message = message

    @property
    def unsupported(self) -> bool:
        return any(word in self.message.lower() for word in UNSUPPORTED_WORDS)


@contextlib.contextmanager
def running_stack(
    *, data_files: bool = True, overlap: bool = True, edge_processes: int = EDGE_PROCESSES
) -> Iterator[Stack]:
    """NATS, the catalog's PostgreSQL and the four services (the edge with `edge_processes`), in a temporary home on
    free ports.

    `data_files` False: the extractor stages every run as JetStream parts (no shared lakehouse), as in
    docker-compose and Kubernetes. `overlap` False: the loader starts on `extracted`, as before `streaming`.
    """
    with tempfile.TemporaryDirectory(prefix="lakegate-bench-stack-") as parent:
        env = {
            "LAKEGATE_EDGE_SYNC_WAIT_SECONDS": str(int(CALL_TIMEOUT)),
            "LAKEGATE_EXTRACTOR_ALLOW_PRIVATE_SOURCES": "true",  # the bench source is on this machine
            # The bench is one tenant calling as fast as it can: measure serving, not the per-tenant rate limit.
            "LAKEGATE_EDGE_RATE_LIMIT_PER_SECOND": "0",
            "LAKEGATE_EXTRACTOR_ANNOUNCE_STREAMING": str(overlap).lower(),
        }
        config = StackConfig(
            home=Path(parent) / "home",
            ports=StackPorts.free(),
            env=env,
            extractor_data_files=data_files,
            edge_processes=edge_processes,
        )
        with Stack(config) as stack:
            yield stack


def process_ids(stack: Stack) -> dict[str, int]:
    """The pid of every service, and of NATS (reported, not held to a target)."""
    pids = {name: stack.supervisor.pid(name) for name in SERVICES}
    if stack.nats.proc is not None:
        pids["nats"] = stack.nats.proc.pid
    return pids


@dataclass
class SyncFigures:
    """Repeated syncs of one table in one mode."""

    mode: str
    table: str
    seconds: list[float] = field(default_factory=list)
    run_seconds: list[float | None] = field(default_factory=list)
    rows: list[int | None] = field(default_factory=list)
    peaks: list[dict[str, int]] = field(default_factory=list)
    phases: list[dict[str, float]] = field(default_factory=list)
    sampled_peaks: list[dict[str, int]] = field(default_factory=list)
    unavailable: str | None = None
    failed: str | None = None

    @property
    def measured(self) -> bool:
        return bool(self.seconds)

    @property
    def median_seconds(self) -> float:
        return statistics.median(self.seconds)

    @property
    def peak_by_process(self) -> dict[str, int]:
        """Each process's highest RSS over every sync."""
        names = {name for peaks in self.peaks for name in peaks}
        return {name: max(peaks.get(name, 0) for peaks in self.peaks) for name in sorted(names)}

    @property
    def median_phases(self) -> dict[str, float]:
        """The median seconds of each phase of a sync (see `Timeline`)."""
        names = [name for name in PHASES if all(name in phases for phases in self.phases)]
        if not self.phases:
            return {}
        return {name: statistics.median(phases[name] for phases in self.phases) for name in names}

    def summary(self, baseline_seconds: float | None) -> dict[str, Any]:
        """The figures, as they go into the JSON file."""
        figures: dict[str, Any] = {"mode": self.mode, "table": self.table}
        if self.unavailable is not None:
            return {**figures, "available": False, "message": self.unavailable}
        if self.failed is not None:
            figures["failed"] = self.failed
        if not self.measured:
            return figures
        return {
            **figures,
            "available": True,
            "median_seconds": self.median_seconds,
            "ratio_to_copy": self.median_seconds / baseline_seconds if baseline_seconds else None,
            "peak_rss_bytes": self.peak_by_process,
            "seconds": self.seconds,
            "median_phase_seconds": self.median_phases,
            "phases_per_sync": self.phases,
            "run_duration_seconds": self.run_seconds,
            "rows": self.rows,
            "peaks_per_sync": self.peaks,
            "sampled_peaks_per_sync": self.sampled_peaks,
        }


#: The phases of a sync, in order, as `Timeline` cuts it; then `overlap`, the seconds the load ran during extraction.
PHASES = ("dispatch", "extract_and_stage", "load", "finish", "overlap")


class Timeline:
    """Cuts a sync into phases by the time JetStream stored each step the run reported.

    dispatch            tool call sent → extractor publishes `extracting` (edge, catalog, cmd.extract, credentials)
    extract_and_stage   `extracting` → `extracted` (read the source, encode parts, publish them to staging)
    load                `extracted` → `loaded` (read parts, write Parquet, one Delta commit; with `streaming`
                        only what is left after the last part: the tail of the writing and the commit)
    finish              `loaded` → tool result back (catalog marks the run, the edge sees it, MCP answers)
    overlap             `loading` → `extracted` when the loader started first (`streaming`), else 0
    """

    def __init__(self, connection: NatsClient, topology: Topology) -> None:
        self._js, self._topology = connection.jetstream(), topology

    async def _stored_at(self, run_id: str, step: RunStep) -> float | None:
        try:
            message = await self._js.get_last_msg(self._topology.run_stream.name, self._topology.run_step(run_id, step))
        except NotFoundError:
            return None
        return message.time.timestamp() if message.time else None

    async def phases(self, run_id: str, sent: float, answered: float) -> dict[str, float]:
        """Seconds of each phase of run `run_id`; phases whose steps are missing are left out."""
        marks = [sent]
        for step in (RunStep.EXTRACTING, RunStep.EXTRACTED, RunStep.LOADED):
            marks.append(await self._stored_at(run_id, step) or float("nan"))
        marks.append(answered)
        found = {name: end - start for name, start, end in zip(PHASES, marks, marks[1:], strict=False)}
        loading = await self._stored_at(run_id, RunStep.LOADING) or float("nan")
        found["overlap"] = max(0.0, marks[2] - loading)
        return {name: seconds for name, seconds in found.items() if seconds == seconds}  # NaN: a step not seen


class Agent:
    """An MCP client on the stack's edge that syncs tables of one registered source."""

    def __init__(self, client: Client, stack: Stack, timeline: Timeline) -> None:
        self._client, self._stack, self._timeline = client, stack, timeline
        self.connection_id = ""
        self._sync_parameters: set[str] = set()

    async def call(self, tool: str, arguments: dict[str, Any]) -> dict[str, Any]:
        """The tool's structured result; raises ToolFailed with the text the model would read."""
        result = await self._client.call_tool(tool, arguments, read_timeout_seconds=CALL_TIMEOUT)
        if result.is_error:
            raise ToolFailed(tool, text_of(result))
        if result.structured_content is None:
            raise ToolFailed(tool, "the tool returned no structured content")
        return dict(result.structured_content)

    async def phases(self, run_id: str, sent: float, answered: float) -> dict[str, float]:
        """Seconds of each phase of run `run_id` (`Timeline`), for a call sent and answered at these times."""
        return await self._timeline.phases(run_id, sent, answered)

    async def connect(self, source: SourceDatabase, name: str) -> None:
        """Register the source, as an agent would, with its password login."""
        answer = await self.call(
            "connect_postgres",
            {
                "name": name,
                "host": source.host,
                "port": source.port,
                "database": source.database,
                "user": source.user,
                "password": source.password,
            },
        )
        self.connection_id = str(answer["connection_id"])
        tools = await self._client.list_tools()
        for tool in tools.tools:
            if tool.name == "sync_table_to_bronze":
                self._sync_parameters = set(tool.input_schema.get("properties", {}))

    def sync_arguments(self, table: str, mode: str) -> dict[str, Any]:
        """The tool's arguments; an incremental or merge sync names `updated_at` as its cursor column."""
        arguments: dict[str, Any] = {"connection_id": self.connection_id, "table_name": table, "sync_mode": mode}
        if mode != "full":
            for name in self._sync_parameters:
                if "cursor" in name:
                    arguments[name] = CURSOR_COLUMN
        return arguments

    async def sync(self, table: str, mode: str, figures: SyncFigures) -> None:
        """One sync of `table`, timed end to end at the client, with every process's peak memory."""
        arguments = self.sync_arguments(table, mode)
        with PeakSampler(process_ids(self._stack)) as sampler:
            sent, started = time.time(), time.perf_counter()
            run = await self.call("sync_table_to_bronze", arguments)
            seconds, answered = time.perf_counter() - started, time.time()
        if run.get("status") != "succeeded":
            raise ToolFailed("sync_table_to_bronze", f"run {run.get('run_id')} ended {run.get('status')}: {run}")
        figures.seconds.append(seconds)
        figures.run_seconds.append(run.get("duration_seconds"))
        figures.rows.append(run.get("row_count"))
        figures.peaks.append(sampler.peaks)
        figures.phases.append(await self.phases(str(run.get("run_id")), sent, answered))
        figures.sampled_peaks.append(sampler.sampled)


@contextlib.asynccontextmanager
async def agent(stack: Stack, source: SourceDatabase, name: str = "bench") -> AsyncIterator[Agent]:
    """An MCP client over streamable HTTP with the source registered."""
    connection = await nats.connect(stack.urls.nats, **stack.nats_credentials())
    try:
        async with Client(stack.urls.mcp) as client:
            driver = Agent(client, stack, Timeline(connection, NatsSettings(url=stack.urls.nats).topology))
            await driver.connect(source, name)
            yield driver
    finally:
        await connection.close()


def percentile(values: list[float], fraction: float) -> float:
    """The `fraction` quantile by linear interpolation between the closest ranks."""
    ordered = sorted(values)
    position = (len(ordered) - 1) * fraction
    low = int(position)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)
