"""Wires the extractor together: broker, handlers, staging, run steps. The only place that does."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass

from lakegate.common.service import Runtime, runtime, started
from lakegate.common.staging import JetStreamStaging, StagingStore
from lakegate.extractor.config import ExtractorSettings
from lakegate.extractor.extraction import Extractor
from lakegate.extractor.handlers import register_handlers
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


@contextlib.asynccontextmanager
async def serve(settings: ExtractorSettings) -> AsyncIterator[ExtractorState]:
    """Run the extractor's handlers until the block exits, then drain."""
    rt = runtime(SERVICE, settings)

    def staging() -> StagingStore:
        # The JetStream context exists only once the broker is connected, so it is made per run.
        return JetStreamStaging(rt.broker.connection.jetstream(), rt.topology, settings.max_part_bytes)

    steps = RunSteps(rt)
    extractor = Extractor(rt, settings, staging, steps)
    ranges = RangeWorker(rt, settings, staging, steps)
    register_handlers(rt, settings, extractor, ranges)
    async with started(rt, settings) as health_port:
        yield ExtractorState(rt, settings, extractor, ranges, health_port)
