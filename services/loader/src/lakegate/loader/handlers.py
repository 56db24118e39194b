"""The loader's FastStream subscribers: the load worker's consumer and the warehouse request handlers.

`app.py` registers each one on the broker; a handler is a few lines that call the domain. The
tenant's catalog always comes from the request's `tenant_id`, never from anything a caller wrote.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass

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
from lakegate.common.rpc import answers
from lakegate.common.service import Runtime
from lakegate.common.telemetry import tracer
from lakegate.loader.config import LoaderSettings
from lakegate.loader.curation import Curator
from lakegate.loader.warehouses.base import Warehouse
from lakegate.loader.warehouses.sqlengine import interruptible
from lakegate.loader.worker import LoadWorker


@dataclass(frozen=True)
class LoaderHandlers:
    """Handlers bound to the warehouse, the curator and the load worker."""

    settings: LoaderSettings
    warehouse: Warehouse
    curator: Curator
    worker: LoadWorker
    lanes: RequestLanes  # every request waits in its tenant's lane, then for one of the query slots
    runtime: Runtime

    @property
    def extracted(self) -> Work[Extracted]:
        """`run.<id>.extracted`: load the run; acked, retried, or the run failed, by the delivery policy."""

        async def run(extracted: Extracted, _: Delivery) -> None:
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
            await self.worker.stream(streaming, delivery.msg.raw_message.metadata.sequence.stream)

        return Work(
            parse=parsed(Streaming),
            run=run,
            fail=self.worker.fail,
            doing=lambda streaming: f"loading run {streaming.run_id} into {streaming.target} while it is extracted",
        )

    @answers
    async def query(self, request: RunQuery) -> QueryResult:
        """`query`: one read-only Databricks SQL statement over the tenant's catalog."""
        asked = request.max_rows if "max_rows" in request.model_fields_set else self.settings.default_max_rows
        began = time.monotonic()
        with tracer(__name__).start_as_current_span(
            "warehouse query", attributes={"lakegate.tenant_id": request.tenant_id}
        ):
            try:
                async with self._stoppable(request.call_id, "the query", request.tenant_id):
                    return await self.warehouse.query(
                        tenant_catalog(request.tenant_id),
                        request.sql,
                        min(asked, self.settings.max_rows_limit),
                        self.settings.query_timeout_seconds,
                    )
            finally:
                self.worker.metrics.query("warehouse", time.monotonic() - began)

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
