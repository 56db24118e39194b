"""Wires the extractor together: broker, handlers, staging, run steps. The only place that does."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass

from lakegate.common.delivery import Subscription, subscribe
from lakegate.common.service import Runtime, runtime, started
from lakegate.common.staging import DATA_FILES_DIR, DataFileStaging, JetStreamStaging, StagingStore, StaleSweep
from lakegate.common.subjects import Topology
from lakegate.extractor.config import ExtractorSettings
from lakegate.extractor.extraction import Extractor
from lakegate.extractor.handlers import register_handlers
from lakegate.extractor.logins import logins_from_settings
from lakegate.extractor.range_worker import RangeWorker
from lakegate.extractor.steps import RunSteps

SERVICE = "extractor"


@dataclass(frozen=True)
class ExtractorState:
    """What a running extractor holds."""

    runtime: Runtime
    settings: ExtractorSettings
    extractor: Extractor
    ranges: RangeWorker
    health_port: int | None


def _subscriptions(topology: Topology, extractor: Extractor, ranges: RangeWorker) -> list[Subscription]:
    """The extractor's JetStream consumers; replicas share each durable one, so adding replicas adds throughput."""
    commands = topology.cmd_stream.name
    return [
        Subscription(
            topology.cmd_extract,
            commands,
            topology.durable("extractor"),
            "extractor tables",
            "Streams one table to staging, or coordinates it in ranges; reports extracting, extracted or failed.",
            extractor.work,
        ),
        Subscription(
            topology.cmd_extract_range,
            commands,
            topology.durable("extractor_ranges"),
            "extractor ranges",
            "Streams one range of a large table in its coordinator's snapshot; every replica takes its share.",
            ranges.work,
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
    register_handlers(rt, settings, logins)
    subscribe(rt, _subscriptions(rt.topology, extractor, ranges), ack_wait=settings.ack_wait_seconds)
    async with started(rt, settings) as health_port:
        yield ExtractorState(rt, settings, extractor, ranges, health_port)
