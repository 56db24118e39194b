"""The edge served in process against small fakes of the catalog, the extractor and the loader.

The fakes are real implementations of the RPC protocol: FastStream subscribers on the harness's
NATS that answer with real contract models through `answers`, keep their state in dicts, and drive
a started run through its steps by publishing the same step, progress and event messages the real
services publish.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Literal

import pytest
from faststream.nats import NatsBroker
from lakegate.common.contracts.events import SYNC_COMPLETED, SYNC_FAILED, SyncEvent, SyncOutcome
from lakegate.common.contracts.rpc import Reply
from lakegate.common.contracts.runs import (
    ErrorInfo,
    Extracted,
    Extracting,
    Failed,
    Loaded,
    Loading,
    Progress,
    RunRef,
    RunView,
    StagedParts,
    StartRun,
)
from lakegate.common.contracts.sources import (
    CheckSource,
    ConnectionStatus,
    RegisterSource,
    SourceColumn,
    SourceInfo,
    SourceRef,
    SourceTable,
    SourceTables,
)
from lakegate.common.contracts.warehouse import (
    DescribeTable,
    ListTables,
    QueryResult,
    ResultColumn,
    RunQuery,
    TableDescription,
    TableList,
    TableSummary,
    WarehouseColumn,
)
from lakegate.common.errors import InvalidInput, LakegateError, NotFound
from lakegate.common.names import bronze_table_name, parse_source_table, tenant_catalog
from lakegate.common.rpc import answers
from lakegate.common.settings import NatsSettings
from lakegate.common.subjects import RunStep, Topology
from lakegate.edge.app import EdgeState, http_app, serve
from lakegate.edge.config import EdgeSettings
from lakegate.edge.listener import listening
from pydantic import BaseModel

#: What a run started for a table does once the edge follows it ("stall": starts extracting, never ends).
Plan = Literal["succeed", "fail", "stall"]
ROWS = 1000
DENIED = "permission denied for table public.secrets: grant SELECT on it to the source's user, then sync again"


def _now() -> datetime:
    return datetime.now(UTC)


@dataclass
class FakeExtractor:
    """Answers `sources.check` and `tables.list`; a check fails with `check_failure` when set."""

    check_failure: LakegateError | None = None
    checked: list[CheckSource] = field(default_factory=list)
    tables: SourceTables = field(
        default_factory=lambda: SourceTables(
            tables=[
                SourceTable(
                    schema_name="public",
                    name="orders",
                    kind="table",
                    row_estimate=ROWS,
                    columns=[
                        SourceColumn(name="id", type="bigint", nullable=False, arrow_type="int64", mapped=True),
                        SourceColumn(
                            name="total",
                            type="numeric(12,2)",
                            nullable=True,
                            arrow_type="decimal128(12, 2)",
                            mapped=True,
                        ),
                    ],
                )
            ]
        )
    )

    @answers
    async def check(self, request: CheckSource) -> ConnectionStatus:
        self.checked.append(request)
        if self.check_failure is not None:
            raise self.check_failure
        address = request.login.address
        return ConnectionStatus(
            ok=True, server_version="16.4", database=address.database, user=address.user, read_only=True, latency_ms=2.5
        )

    @answers
    async def list_tables(self, request: SourceRef) -> SourceTables:
        return self.tables


@dataclass
class FakeCatalog:
    """Sources and runs in dicts; a run starts its plan when the edge first re-reads it."""

    broker: NatsBroker
    topology: Topology
    sources: dict[str, SourceInfo] = field(default_factory=dict)
    registered: list[RegisterSource] = field(default_factory=list)
    runs: dict[str, RunView] = field(default_factory=dict)
    plans: dict[str, Plan] = field(default_factory=dict)
    started: list[StartRun] = field(default_factory=list)
    drivers: dict[str, asyncio.Task[None]] = field(default_factory=dict)

    @answers
    async def register(self, request: RegisterSource) -> SourceInfo:
        self.registered.append(request)
        source = SourceInfo(
            connection_id=f"src_{uuid.uuid4().hex[:12]}",
            tenant_id=request.tenant_id,
            name=request.name,
            address=request.login.address,
            created_at=_now(),
        )
        self.sources[source.connection_id] = source
        return source

    @answers
    async def get_source(self, request: SourceRef) -> SourceInfo:
        return self._source(request.tenant_id, request.connection_id)

    @answers
    async def start(self, request: StartRun) -> RunView:
        self.started.append(request)
        source = self._source(request.tenant_id, request.connection_id)
        table = parse_source_table(request.table_name)
        run = RunView(
            run_id=f"run_{uuid.uuid4().hex[:12]}",
            tenant_id=request.tenant_id,
            connection_id=source.connection_id,
            source_table=str(table),
            target={
                "catalog": tenant_catalog(request.tenant_id),
                "schema_name": "bronze",
                "name": bronze_table_name(source.name, table),
            },
            sync_mode=request.sync_mode,
            status="queued",
            created_at=_now(),
        )
        self.runs[run.run_id] = run
        return run

    @answers
    async def get_run(self, request: RunRef) -> RunView:
        run = self.runs.get(request.run_id)
        if run is None or run.tenant_id != request.tenant_id:
            raise NotFound(f"run {request.run_id} does not exist for this tenant: check the run id")
        if run.run_id not in self.drivers:
            plan = self.plans.get(run.source_table.split(".")[-1], "succeed")
            self.drivers[run.run_id] = asyncio.create_task(self._drive(run.run_id, plan))
        return run

    def _source(self, tenant_id: str, connection_id: str) -> SourceInfo:
        source = self.sources.get(connection_id)
        if source is None or source.tenant_id != tenant_id:
            raise NotFound(f"source {connection_id} does not exist for this tenant: call connect_postgres first")
        return source

    def _update(self, run_id: str, **changes: object) -> RunView:
        self.runs[run_id] = self.runs[run_id].model_copy(update=changes)
        return self.runs[run_id]

    async def _publish(self, message: BaseModel, subject: str) -> None:
        await self.broker.publish(message, subject)

    async def _drive(self, run_id: str, plan: Plan) -> None:
        """Take the run through the steps the extractor, the loader and the catalog would publish."""
        t, run = self.topology, self._update(run_id, status="extracting", started_at=_now())
        tenant = run.tenant_id
        await self._publish(
            Extracting(tenant_id=tenant, run_id=run_id, attempt="a1"), t.run_step(run_id, RunStep.EXTRACTING)
        )
        if plan == "stall":
            return
        if plan == "fail":
            error = ErrorInfo(code="permission_denied", message=DENIED)
            await self._publish(
                Failed(tenant_id=tenant, run_id=run_id, step="extract", error=error), t.run_step(run_id, RunStep.FAILED)
            )
            await self._finish(self._update(run_id, status="failed", error=error, finished_at=_now()))
            return
        for rows in (ROWS // 2, ROWS):
            await self._publish(Progress(run_id=run_id, step="extracting", rows=rows), t.progress(run_id))
        staged = StagedParts(location=t.stage(run_id, "a1"), parts=1, bytes=4096)
        extracted = Extracted(
            tenant_id=tenant,
            run_id=run_id,
            target=run.target,
            sync_mode=run.sync_mode,
            arrow_schema="",
            columns=[],
            row_count=ROWS,
            staged=staged,
        )
        await self._publish(extracted, t.run_step(run_id, RunStep.EXTRACTED))
        self._update(run_id, status="loading", row_count=ROWS)
        await self._publish(Loading(tenant_id=tenant, run_id=run_id), t.run_step(run_id, RunStep.LOADING))
        await self._publish(Progress(run_id=run_id, step="loading", rows=ROWS), t.progress(run_id))
        loaded = Loaded(tenant_id=tenant, run_id=run_id, target=run.target, row_count=ROWS, bytes=8192, table_version=0)
        await self._publish(loaded, t.run_step(run_id, RunStep.LOADED))
        await self._finish(self._update(run_id, status="succeeded", bytes=8192, finished_at=_now()))

    async def _finish(self, run: RunView) -> None:
        outcome: Literal["completed", "failed"] = "completed" if run.status == "succeeded" else "failed"
        event = SyncEvent(
            id=f"{run.run_id}.{outcome}",
            source="/lakegate/catalog",
            type=SYNC_COMPLETED if outcome == "completed" else SYNC_FAILED,
            subject=run.run_id,
            time=_now(),
            data=SyncOutcome(
                run_id=run.run_id,
                tenant_id=run.tenant_id,
                connection_id=run.connection_id,
                source_table=run.source_table,
                target=run.target,
                sync_mode=run.sync_mode,
                status="succeeded" if outcome == "completed" else "failed",
                row_count=run.row_count,
                error=run.error,
            ),
        )
        await self._publish(event, self.topology.sync_event(run.tenant_id, outcome))


@dataclass
class FakeLoader:
    """Answers queries, listings and descriptions from one table; refuses statements that write."""

    queries: list[RunQuery] = field(default_factory=list)

    @answers
    async def query(self, request: RunQuery) -> QueryResult:
        self.queries.append(request)
        if not request.sql.lstrip().lower().startswith("select"):
            raise InvalidInput("only one read-only SELECT statement is allowed: rewrite the query as a SELECT")
        rows = [[1, "12.50"], [2, "7.25"]][: request.max_rows]
        return QueryResult(
            columns=[ResultColumn(name="id", type="int64"), ResultColumn(name="total", type="decimal128(12, 2)")],
            rows=rows,
            row_count=len(rows),
            truncated=request.max_rows < 2,
        )

    @answers
    async def list_tables(self, request: ListTables) -> TableList:
        ref = {"catalog": tenant_catalog(request.tenant_id), "schema_name": request.layer, "name": "shop_orders"}
        return TableList(
            tables=[TableSummary(ref=ref, layer=request.layer, row_count=ROWS, size_bytes=8192, table_version=3)]
        )

    @answers
    async def describe(self, request: DescribeTable) -> TableDescription:
        if request.table_name.split(".")[-1] != "shop_orders":
            raise NotFound(f"table {request.table_name} does not exist: list_tables shows the tables there are")
        return TableDescription(
            ref={"catalog": tenant_catalog(request.tenant_id), "schema_name": "bronze", "name": "shop_orders"},
            columns=[WarehouseColumn(name="id", type="bigint", nullable=False)],
            row_count=ROWS,
            size_bytes=8192,
            table_version=3,
        )


@dataclass(frozen=True)
class Fakes:
    catalog: FakeCatalog
    extractor: FakeExtractor
    loader: FakeLoader


@pytest.fixture
async def fakes(nats_settings: NatsSettings) -> AsyncIterator[Fakes]:
    topology = nats_settings.topology
    broker = NatsBroker(nats_settings.servers)
    catalog, extractor, loader = FakeCatalog(broker, topology), FakeExtractor(), FakeLoader()
    answering: dict[str, Callable[..., Awaitable[Reply]]] = {
        topology.sources_register: catalog.register,
        topology.sources_get: catalog.get_source,
        topology.runs_start: catalog.start,
        topology.runs_get: catalog.get_run,
        topology.sources_check: extractor.check,
        topology.source_tables_list: extractor.list_tables,
        topology.warehouse_query: loader.query,
        topology.warehouse_tables_list: loader.list_tables,
        topology.warehouse_tables_describe: loader.describe,
    }
    for subject, handler in answering.items():
        broker.subscriber(subject)(handler)
    async with broker:
        await broker.start()
        yield Fakes(catalog, extractor, loader)
        for driver in catalog.drivers.values():
            driver.cancel()
        await asyncio.gather(*catalog.drivers.values(), return_exceptions=True)


@pytest.fixture
def edge_settings(nats_settings: NatsSettings, tenant_id: str) -> EdgeSettings:
    return EdgeSettings(nats=nats_settings, default_tenant=tenant_id, sync_wait_seconds=30)


@pytest.fixture
async def edge(edge_settings: EdgeSettings, fakes: Fakes) -> AsyncIterator[EdgeState]:
    async with serve(edge_settings) as state:
        yield state


@pytest.fixture
async def edge_url(edge: EdgeState) -> AsyncIterator[str]:
    """The edge's streamable-HTTP endpoint, served by uvicorn on a free loopback port."""
    async with listening(http_app(edge), "127.0.0.1", 0, grace_seconds=5) as listener:
        yield f"{listener.url}{edge.settings.path}"
