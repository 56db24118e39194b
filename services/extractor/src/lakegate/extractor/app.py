"""Wires the extractor together: broker, handlers, staging, run steps. The only place that does."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass, replace
from typing import Protocol, TypeVar

from lakegate.common.delivery import Delivery, Subscription, Work, subscribe
from lakegate.common.service import Runtime, runtime, started
from lakegate.common.staging import DATA_FILES_DIR, DataFileStaging, JetStreamStaging, StagingStore, StaleSweep
from lakegate.common.subjects import Topology
from lakegate.extractor.config import ExtractorSettings
from lakegate.extractor.connections import SourceConnections
from lakegate.extractor.coordination import RANGES_DURABLE
from lakegate.extractor.extraction import Extractor
from lakegate.extractor.handlers import register_handlers
from lakegate.extractor.logins import logins_from_settings
from lakegate.extractor.range_worker import RangeWorker
from lakegate.extractor.steps import RunSteps

SERVICE = "extractor"

log = logging.getLogger(__name__)


class _OnSource(Protocol):
    @property
    def tenant_id(self) -> str: ...
    @property
    def connection_id(self) -> str: ...


C = TypeVar("C", bound=_OnSource)


@dataclass(frozen=True)
class ExtractorState:
    """What a running extractor holds."""

    runtime: Runtime
    settings: ExtractorSettings
    extractor: Extractor
    ranges: RangeWorker
    health_port: int | None


def _on_source(work: Work[C], sources: SourceConnections) -> Work[C]:
    """`work` that first waits for its reads' connections to the command's source (`SourceConnections`)."""
    inner = work.run

    async def run(command: C, delivery: Delivery) -> None:
        # Waiting here keeps the delivery in progress (the heartbeat runs), so a queued table is not redelivered.
        async with sources.hold(f"{command.tenant_id}/{command.connection_id}"):
            await inner(command, delivery)

    return replace(work, run=run)


def _subscriptions(
    topology: Topology,
    extractor: Extractor,
    ranges: RangeWorker,
    sources: SourceConnections,
    settings: ExtractorSettings,
) -> list[Subscription]:
    """The extractor's JetStream consumers; replicas share each durable one, so adding replicas adds throughput.

    One replica extracts `settings.concurrent_runs` tables at once, and reads one range of a large
    table beside them: a range never waits behind tables, and so neither do their coordinators.
    """
    commands = topology.cmd_stream.name
    return [
        Subscription(
            topology.cmd_extract,
            commands,
            topology.durable("extractor"),
            "extractor tables",
            "Streams one table to staging, or coordinates it in ranges; reports extracting, extracted or failed.",
            _on_source(extractor.work, sources),
            workers=settings.concurrent_runs,
        ),
        Subscription(
            topology.cmd_extract_range,
            commands,
            topology.durable(RANGES_DURABLE),
            "extractor ranges",
            "Streams one range of a large table in its coordinator's snapshot; every replica takes its share.",
            _on_source(ranges.work, sources),
        ),
    ]


@contextlib.asynccontextmanager
async def serve(settings: ExtractorSettings) -> AsyncIterator[ExtractorState]:
    """Run the extractor's handlers until the block exits, then drain."""
    logins = logins_from_settings(settings)  # before anything starts: no key, no extractor
    rt = runtime(SERVICE, settings, answers_cancels=True)
    sweep = StaleSweep()  # abandoned staged runs: looked for at the first attempt, then hourly, not per attempt

    def staging() -> StagingStore:
        # The JetStream context exists only once the broker is connected, so it is made per run.
        parts = JetStreamStaging(rt.broker.connection.jetstream(), rt.topology, settings.max_part_bytes)
        if settings.lakehouse_dir is None:
            return parts
        return DataFileStaging(parts, settings.lakehouse_dir / DATA_FILES_DIR, sweep)

    steps = RunSteps(rt)
    extractor = Extractor(rt, settings, staging, steps, logins)
    ranges = RangeWorker(rt, settings, staging, steps, logins)
    sources = SourceConnections(settings.source_connections)
    register_handlers(rt, settings, logins)
    subscriptions = _subscriptions(rt.topology, extractor, ranges, sources, settings)
    subscribe(rt, subscriptions, ack_wait=settings.ack_wait_seconds)
    log.info(
        "extracting up to %d tables at once (max_concurrent_runs %d, memory budget %d MiB at %d MiB a run), "
        "at most %d connections to one source",
        settings.concurrent_runs,
        settings.max_concurrent_runs,
        settings.memory_budget_bytes // 2**20,
        settings.run_memory_bytes // 2**20,
        settings.source_connections,
    )
    async with started(rt, settings) as health_port:
        yield ExtractorState(rt, settings, extractor, ranges, health_port)
