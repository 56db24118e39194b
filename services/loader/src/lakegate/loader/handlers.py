"""The loader's FastStream subscribers: the load worker's consumer and the warehouse request handlers.

`app.py` registers each one on the broker; a handler is a few lines that call the domain. The
tenant's catalog always comes from the request's `tenant_id`, never from anything a caller wrote.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

from lakegate.common.contracts.runs import Extracted, Streaming
from lakegate.common.contracts.transforms import (
    CreateGoldView,
    GoldView,
    PreviewTable,
    TransformResult,
    TransformToSilver,
    UploadFile,
    UploadResult,
)
from lakegate.common.contracts.warehouse import (
    DescribeTable,
    ListTables,
    QueryResult,
    RunQuery,
    TableDescription,
    TableList,
)
from lakegate.common.delivery import Delivery, Work, parsed
from lakegate.common.lanes import RequestLanes
from lakegate.common.names import tenant_catalog
from lakegate.common.rpc import Encoded, answers
from lakegate.common.service import Runtime
from lakegate.common.telemetry import tracer
from lakegate.loader.config import LoaderSettings
from lakegate.loader.curation import Curator
from lakegate.loader.warehouses.base import CachedAnswers, Warehouse
from lakegate.loader.warehouses.sqlengine import interruptible
from lakegate.loader.worker import LoadWorker
from opentelemetry import trace

#: Taken once: `trace.get_tracer` makes a tracer (and its instrumentation scope) on every call.
_TRACER = tracer(__name__)


@dataclass
class LoadSlots:
    """Which loads of one replica run at once: one per target table, and `writes` of those that write rows.

    A full run whose parts are data files the extractor wrote is only a commit (cheap, little
    memory), so it never waits behind another table's load; a load that writes the rows itself
    waits for one of the `writes` slots, which bound the memory of loads (batches, a merge's
    deduplication).
    """

    writes: asyncio.Semaphore
    _targets: dict[str, asyncio.Lock] = field(default_factory=dict)
    _users: dict[str, int] = field(default_factory=dict)

    @classmethod
    def of(cls, writes: int) -> LoadSlots:
        return cls(asyncio.Semaphore(writes))

    @contextlib.asynccontextmanager
    async def enter(self, target: str, *, writes: bool) -> AsyncIterator[None]:
        """Hold the run's target table (and a write slot if the load `writes` rows) for the block."""
        lock = self._targets.setdefault(target, asyncio.Lock())
        self._users[target] = self._users.get(target, 0) + 1
        try:
            async with lock, self.writes if writes else contextlib.nullcontext():
                yield
        finally:
            self._users[target] -= 1
            if not self._users[target]:
                del self._users[target], self._targets[target]


def writes_rows(extracted: Extracted) -> bool:
    """Whether loading the run writes its rows (rather than committing the extractor's data files)."""
    only_files = all(parts.store == "datafiles" for parts in (extracted.staged, *extracted.ranges))
    return extracted.sync_mode != "full" or not only_files


@dataclass(frozen=True)
class LoaderHandlers:
    """Handlers bound to the warehouse, the curator and the load worker."""

    settings: LoaderSettings
    warehouse: Warehouse
    curator: Curator
    worker: LoadWorker
    lanes: RequestLanes  # every request waits in its tenant's lane, then for one of the query slots
    runtime: Runtime
    loads: LoadSlots

    @property
    def extracted(self) -> Work[Extracted]:
        """`run.<id>.extracted`: load the run; acked, retried, or the run failed, by the delivery policy."""

        async def run(extracted: Extracted, _: Delivery) -> None:
            # Waiting here keeps the delivery in progress (the heartbeat runs), so it is not redelivered.
            async with self.loads.enter(str(extracted.target), writes=writes_rows(extracted)):
                await self.worker.load(extracted)

        return Work(
            parse=parsed(Extracted),
            run=run,
            fail=self.worker.fail,
            doing=lambda extracted: f"loading run {extracted.run_id} into {extracted.target}",
        )

    @property
    def streaming(self) -> Work[Streaming]:
        """`run.<id>.streaming`: load the attempt's parts while they are staged; commit once `extracted` ends it."""

        async def run(streaming: Streaming, delivery: Delivery) -> None:
            # Its table takes one load at a time, as on `extracted`. Not a write slot: streamed loads have a
            # consumer of their own (one at a time), and one waiting for the slot while the loads on `extracted`
            # wait for its run to end would hold both up.
            async with self.loads.enter(str(streaming.target), writes=False):
                await self.worker.stream(streaming, delivery.msg.raw_message.metadata.sequence.stream)

        return Work(
            parse=parsed(Streaming),
            run=run,
            fail=self.worker.fail,
            doing=lambda streaming: f"loading run {streaming.run_id} into {streaming.target} while it is extracted",
        )

    @answers
    async def query(self, request: RunQuery) -> QueryResult | Encoded[QueryResult]:
        """`query`: one read-only Databricks SQL statement over the tenant's catalog.

        An answer the warehouse kept (`CachedAnswers`) is returned before the tenant's lane, as the JSON
        written when it was kept: it takes no slot and is not serialized again.
        """
        asked = request.max_rows if "max_rows" in request.model_fields_set else self.settings.default_max_rows
        max_rows = min(asked, self.settings.max_rows_limit)
        catalog = tenant_catalog(request.tenant_id)
        began = time.monotonic()
        with self._span(request.tenant_id) as span:
            if self._kept is not None:
                kept = self._kept.cached_answer(catalog, request.sql, max_rows)
                if kept is not None:
                    span.set_attribute("lakegate.query.cached", True)
                    self.worker.metrics.query("cached", time.monotonic() - began)
                    return kept
            try:
                async with self._stoppable(request.call_id, "the query", request.tenant_id):
                    timeout = self.settings.query_timeout_seconds
                    return await self.warehouse.query(catalog, request.sql, max_rows, timeout)
            finally:
                self.worker.metrics.query("warehouse", time.monotonic() - began)

    @functools.cached_property
    def _kept(self) -> CachedAnswers | None:
        """The warehouse, when it keeps answers; checked once (a runtime protocol check costs ~20 µs a call)."""
        return self.warehouse if isinstance(self.warehouse, CachedAnswers) else None

    def _span(self, tenant_id: str) -> contextlib.AbstractContextManager[trace.Span]:
        """A `warehouse query` span, made only when spans are exported (as the responder's own, `Responder.traced`).

        Unexported, a span per query (taking the tracer, sampling, ids, making it current) was a third of the
        loader's CPU on a kept `SELECT 1`; the caller's context is current all the same, so nothing that travels
        on is lost.
        """
        if not self.runtime.requests.traced:
            return contextlib.nullcontext(trace.INVALID_SPAN)
        return _TRACER.start_as_current_span("warehouse query", attributes={"lakegate.tenant_id": tenant_id})

    @contextlib.asynccontextmanager
    async def _stoppable(self, call_id: str | None, what: str, tenant_id: str) -> AsyncIterator[None]:
        """Work its caller can stop: in the tenant's lane, interrupted in the engine when cancelled, and
        stopped before it commits (`callstops.commit_point`), so a cancelled call writes nothing."""
        async with self.runtime.call_stops.stoppable(call_id, what), self.lanes.enter(tenant_id):
            with interruptible():
                yield

    @answers
    async def list_tables(self, request: ListTables) -> TableList:
        """`tables.list`: one page of the tenant's tables in one layer."""
        catalog = tenant_catalog(request.tenant_id)
        async with self.lanes.enter(request.tenant_id):
            return await self.warehouse.list_tables(catalog, request.layer, offset=request.offset, limit=request.limit)

    @answers
    async def describe_table(self, request: DescribeTable) -> TableDescription:
        """`tables.describe`: columns (with statistics if asked), size, version and properties of one table."""
        catalog = tenant_catalog(request.tenant_id)
        async with self._stoppable(request.call_id, "describing the table", request.tenant_id):
            return await self.warehouse.describe(catalog, request.table_name, with_stats=request.with_stats)

    @answers
    async def preview_table(self, request: PreviewTable) -> QueryResult:
        """`tables.preview`: the first rows of one table or view."""
        async with self._stoppable(request.call_id, "the preview", request.tenant_id):
            return await self.warehouse.preview(tenant_catalog(request.tenant_id), request.table_name, request.limit)

    @answers
    async def transform(self, request: TransformToSilver) -> TransformResult:
        """`transform`: build a silver table from a bronze one."""
        async with self._stoppable(request.call_id, "the transform", request.tenant_id):
            return await self.curator.transform_to_silver(request)

    @answers
    async def gold_view(self, request: CreateGoldView) -> GoldView:
        """`gold_view`: define a gold view over silver and gold tables."""
        async with self._stoppable(request.call_id, "defining the gold view", request.tenant_id):
            return await self.curator.create_gold_view(request)

    @answers
    async def upload(self, request: UploadFile) -> UploadResult:
        """`upload`: replace a bronze table with an uploaded file."""
        async with self._stoppable(request.call_id, "the upload", request.tenant_id):
            return await self.curator.upload(request)
