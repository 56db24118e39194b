"""The edge served in process against small fakes of the catalog, the extractor and the loader.

The fakes are real implementations of the RPC protocol: FastStream subscribers on the harness's
NATS that answer with real contract models through `answers`, keep their state in dicts, and drive
a started run through its steps by publishing the same step, progress and event messages the real
services publish.
"""

from __future__ import annotations

import asyncio
import base64
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Literal

import pytest
from faststream.nats import NatsBroker
from lakegate.common.contracts.audit import AuditList, AuditRecord, ListAudit
from lakegate.common.contracts.catalog import Dataset, DatasetList, ListDatasets, ListRuns, RunList
from lakegate.common.contracts.events import SYNC_COMPLETED, SYNC_FAILED, SyncEvent, SyncOutcome
from lakegate.common.contracts.explore import (
    DescribeSourceTable,
    ForeignKey,
    QuerySource,
    SourceIndex,
    SourceTableDetail,
)
from lakegate.common.contracts.rpc import Reply
from lakegate.common.contracts.runs import (
    TERMINAL_STATUSES,
    CancelRun,
    ColumnMapping,
    Cursor,
    ErrorInfo,
    Extracted,
    Extracting,
    Failed,
    Loaded,
    Loading,
    Progress,
    RangeExtracted,
    RunRef,
    RunView,
    SchemaChange,
    StagedParts,
    StartRun,
    TableRef,
)
from lakegate.common.contracts.schedules import CreateSchedule, ListSchedules, Schedule, ScheduleList, ScheduleRef
from lakegate.common.contracts.sources import (
    CheckSource,
    ConnectionStatus,
    ListSources,
    RegisterSource,
    SourceColumn,
    SourceInfo,
    SourceList,
    SourceRef,
    SourceTable,
    SourceTables,
)
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
    ResultColumn,
    RunQuery,
    TableDescription,
    TableList,
    TableSummary,
    WarehouseColumn,
)
from lakegate.common.errors import Conflict, InvalidInput, LakegateError, NotFound, SourceError
from lakegate.common.names import bronze_table_name, parse_source_table, tenant_catalog
from lakegate.common.rpc import answers
from lakegate.common.sealing import Unsealer, new_private_key, public_key_of
from lakegate.common.settings import NatsSettings
from lakegate.common.subjects import RunStep, Topology
from lakegate.edge.app import EdgeState, http_app, serve
from lakegate.edge.config import EdgeSettings
from lakegate.edge.listener import listening
from pydantic import BaseModel

#: What a run started for a table does once the edge follows it ("stall": starts extracting, never ends).
#: "lose" fails the way a loader does that lost its staged parts, naming the staging subject in its message.
#: "ranges" extracts in three parallel ranges, each reporting its own rows, and finds a column added at the source.
Plan = Literal["succeed", "fail", "stall", "lose", "ranges"]
#: Rows of each range of the "ranges" plan, and what each range reports before it is staged.
RANGE_ROWS = (300, 300, 400)
#: The cursor an incremental or merge run of the fake ends with.
CURSOR = Cursor(column="updated_at", value="2024-05-01T12:00:00+00:00", source_type="timestamp with time zone")
ROWS = 1000
#: The extractor's sealing key in these tests: the edge seals with its public half, assertions open with it.
SEAL_KEY = new_private_key()
SEAL_PUBLIC_KEY = public_key_of(SEAL_KEY)
UNSEALER = Unsealer([SEAL_KEY])
PASSWORD_FAILED = "password authentication failed for user 'reader' at db.internal:5432/shop: check the password"
#: The source every test's catalog already knows, with the bronze → silver → gold datasets built from it.
SEED_SOURCE = "src_seed"
DENIED = "permission denied for table public.secrets: grant SELECT on it to the source's user, then sync again"


def _now() -> datetime:
    return datetime.now(UTC)


@dataclass
class FakeExtractor:
    """Answers `sources.check` and `tables.list`; a check fails with `check_failure` when set."""

    check_failure: LakegateError | None = None
    checked: list[CheckSource] = field(default_factory=list)
    broken: set[str] = field(default_factory=set)
    queries: list[QuerySource] = field(default_factory=list)
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

    @answers
    async def check_registered(self, request: SourceRef) -> ConnectionStatus:
        if request.connection_id in self.broken:
            raise SourceError(PASSWORD_FAILED)
        return ConnectionStatus(
            ok=True, server_version="16.4", database="shop", user="reader", read_only=False, latency_ms=3.25
        )

    @answers
    async def describe_table(self, request: DescribeSourceTable) -> SourceTableDetail:
        [table] = self.tables.tables
        if parse_source_table(request.table_name).table != table.name:
            raise NotFound(f"table {request.table_name} does not exist in the source: list_source_tables shows them")
        return SourceTableDetail(
            table=table,
            primary_key=["id"],
            foreign_keys=[
                ForeignKey(
                    name="orders_customer_fk",
                    columns=["customer_id"],
                    references_table="public.customers",
                    references_columns=["id"],
                )
            ],
            indexes=[
                SourceIndex(
                    name="orders_pkey",
                    columns=["id"],
                    unique=True,
                    primary=True,
                    definition="CREATE UNIQUE INDEX orders_pkey ON public.orders USING btree (id)",
                )
            ],
            samples={"id": [1, 2, 3][: request.sample_size], "total": ["12.50", "7.25"][: request.sample_size]},
        )

    @answers
    async def query(self, request: QuerySource) -> QueryResult:
        self.queries.append(request)
        rows = [["paid", 3], ["open", 1]]
        return QueryResult(
            columns=[ResultColumn(name="status", type="string"), ResultColumn(name="count", type="int64")],
            rows=rows[: request.max_rows],
            row_count=min(len(rows), request.max_rows),
            truncated=request.max_rows < len(rows),
        )


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
    schedules: dict[str, Schedule] = field(default_factory=dict)
    audit: list[AuditRecord] = field(default_factory=list)

    @answers
    async def list_audit(self, request: ListAudit) -> AuditList:
        own = [record for record in self.audit if record.tenant_id == request.tenant_id]
        return AuditList(records=own[request.offset : request.offset + request.limit])

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
            schedule_id=request.schedule_id,
        )
        self.runs[run.run_id] = run
        return run

    @answers
    async def cancel(self, request: CancelRun) -> RunView:
        """Like the catalog: an unfinished run becomes `cancelled`, workers are told, the event says so."""
        run = self.runs.get(request.run_id)
        if run is None or run.tenant_id != request.tenant_id:
            raise NotFound(f"run {request.run_id} does not exist for this tenant: check the run id")
        if run.status in TERMINAL_STATUSES:
            # The real catalog may answer a finished run with a Conflict; the edge must not call that temporary.
            raise Conflict(f"run {run.run_id} is {run.status}")
        driver = self.drivers.get(run.run_id)
        if driver is not None:
            driver.cancel()
        error = ErrorInfo(code="cancelled", message=f"run {run.run_id} was cancelled by cancel_sync")
        run = self._update(run.run_id, status="cancelled", error=error, finished_at=_now())
        await self._publish(request, self.topology.cancel(run.run_id))
        await self._finish(run)
        return run

    @answers
    async def create_schedule(self, request: CreateSchedule) -> Schedule:
        self._source(request.tenant_id, request.connection_id)
        if request.cron is not None and len(request.cron.split()) != 5:
            raise InvalidInput(f"cron {request.cron!r} is not a five-field cron expression, e.g. '0 2 * * *'")
        now = _now()
        schedule = Schedule(
            schedule_id=f"sch_{uuid.uuid4().hex[:12]}",
            tenant_id=request.tenant_id,
            connection_id=request.connection_id,
            table_name=str(parse_source_table(request.table_name)),
            sync_mode=request.sync_mode,
            cursor_column=request.cursor_column,
            detect_deletes=request.detect_deletes,
            every_seconds=request.every_seconds,
            cron=request.cron,
            next_run_at=now + timedelta(seconds=request.every_seconds or 3600),
            created_at=now,
        )
        self.schedules[schedule.schedule_id] = schedule
        return schedule

    @answers
    async def list_schedules(self, request: ListSchedules) -> ScheduleList:
        own = [s for s in self.schedules.values() if s.tenant_id == request.tenant_id]
        chosen = own[request.offset : request.offset + request.limit]
        more = request.offset + request.limit < len(own)
        return ScheduleList(schedules=chosen, next_offset=request.offset + request.limit if more else None)

    @answers
    async def delete_schedule(self, request: ScheduleRef) -> Schedule:
        schedule = self.schedules.get(request.schedule_id)
        if schedule is None or schedule.tenant_id != request.tenant_id:
            raise NotFound(f"schedule {request.schedule_id} does not exist for this tenant: list_schedules shows them")
        return self.schedules.pop(request.schedule_id)

    @answers
    async def get_run(self, request: RunRef) -> RunView:
        run = self.runs.get(request.run_id)
        if run is None or run.tenant_id != request.tenant_id:
            raise NotFound(f"run {request.run_id} does not exist for this tenant: check the run id")
        if run.run_id not in self.drivers:
            plan = self.plans.get(run.source_table.split(".")[-1], "succeed")
            self.drivers[run.run_id] = asyncio.create_task(self._drive(run.run_id, plan))
        return run

    @answers
    async def list_sources(self, request: ListSources) -> SourceList:
        return SourceList(sources=[s for s in self.sources.values() if s.tenant_id == request.tenant_id])

    @answers
    async def list_datasets(self, request: ListDatasets) -> DatasetList:
        datasets = seeded_datasets(request.tenant_id)
        chosen = datasets[request.offset : request.offset + request.limit]
        more = request.offset + request.limit < len(datasets)
        return DatasetList(datasets=chosen, next_offset=request.offset + request.limit if more else None)

    @answers
    async def list_runs(self, request: ListRuns) -> RunList:
        runs = [
            run
            for run in sorted(self.runs.values(), key=lambda r: r.created_at, reverse=True)
            if run.tenant_id == request.tenant_id and request.connection_id in (None, run.connection_id)
        ]
        chosen = runs[request.offset : request.offset + request.limit]
        more = request.offset + request.limit < len(runs)
        return RunList(runs=chosen, next_offset=request.offset + request.limit if more else None)

    def seed(self, tenant_id: str) -> None:
        """The source the seeded datasets came from."""
        self.sources[SEED_SOURCE] = SourceInfo(
            connection_id=SEED_SOURCE,
            tenant_id=tenant_id,
            name="shop",
            address={"host": "db.internal", "port": 5432, "database": "shop", "user": "reader"},
            created_at=_now(),
        )

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
        if plan == "ranges":
            await self._drive_ranges(run_id)
            return
        if plan in ("fail", "lose"):
            error = (
                ErrorInfo(code="permission_denied", message=DENIED)
                if plan == "fail"
                else ErrorInfo(code="error", message=f"staging holds 0 parts at {t.stage(run_id, 'a1')}, expected 1")
            )
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

    async def _drive_ranges(self, run_id: str) -> None:
        """A large table: three ranges extracted in parallel, each counting its own rows, then one load."""
        t, run = self.topology, self.runs[run_id]
        tenant, total = run.tenant_id, sum(RANGE_ROWS)
        for share in (2, 1):  # each range halfway, then done: the edge adds them up per range
            for index, rows in enumerate(RANGE_ROWS):
                progress = Progress(run_id=run_id, step="extracting", rows=rows // share, range_index=index)
                await self._publish(progress, t.progress(run_id))
        staged = [StagedParts(location=t.stage(run_id, f"r{i}a1"), parts=1, bytes=1024) for i in range(3)]
        for index, rows in enumerate(RANGE_ROWS):
            done = RangeExtracted(tenant_id=tenant, run_id=run_id, index=index, row_count=rows, staged=staged[index])
            await self._publish(done, t.run_step(run_id, RunStep.RANGE))
        cursor = CURSOR if run.sync_mode != "full" else None
        extracted = Extracted(
            tenant_id=tenant,
            run_id=run_id,
            target=run.target,
            sync_mode=run.sync_mode,
            arrow_schema="",
            columns=ORDER_COLUMNS,
            row_count=total,
            staged=staged[0],
            ranges=staged[1:],
            cursor=cursor,
            primary_key=["id"],
        )
        await self._publish(extracted, t.run_step(run_id, RunStep.EXTRACTED))
        self._update(run_id, status="loading", rows_extracted=total)
        await self._publish(Loading(tenant_id=tenant, run_id=run_id), t.run_step(run_id, RunStep.LOADING))
        await self._publish(Progress(run_id=run_id, step="loading", rows=total // 2), t.progress(run_id))
        changes = [SchemaChange(column="note", change="added", after="string")]
        loaded = Loaded(
            tenant_id=tenant, run_id=run_id, target=run.target, row_count=total, bytes=8192, schema_changes=changes
        )
        await self._publish(loaded, t.run_step(run_id, RunStep.LOADED))
        started = self.runs[run_id].started_at or _now()
        await self._finish(
            self._update(
                run_id,
                status="succeeded",
                row_count=total,
                bytes=8192,
                cursor=cursor,
                schema_changes=changes,
                columns=ORDER_COLUMNS,
                finished_at=started + timedelta(seconds=2),
            )
        )

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
                status=run.status if run.status in ("succeeded", "cancelled") else "failed",
                row_count=run.row_count,
                error=run.error,
            ),
        )
        await self._publish(event, self.topology.sync_event(run.tenant_id, outcome))


def _ref(tenant_id: str, layer: str, name: str) -> TableRef:
    return TableRef(catalog=tenant_catalog(tenant_id), schema_name=layer, name=name)


ORDER_COLUMNS = [
    ColumnMapping(name="id", source_type="bigint", arrow_type="int64", mapped=True),
    ColumnMapping(name="total", source_type="numeric(12,2)", arrow_type="decimal128(12, 2)", mapped=True),
]


def seeded_datasets(tenant_id: str) -> list[Dataset]:
    """bronze.shop_orders (synced from shop:public.orders) → silver.orders → gold.revenue."""
    bronze, silver, gold = (_ref(tenant_id, *where) for where in LINEAGE)
    return [
        Dataset(
            target=bronze,
            connection_id=SEED_SOURCE,
            source_table="public.orders",
            row_count=ROWS,
            columns=ORDER_COLUMNS,
            last_run_id="run_seed",
            updated_at=_now(),
            keys=["id"],
            last_synced_at=_now(),
        ),
        Dataset(
            target=silver,
            connection_id=None,
            source_table=None,
            row_count=990,
            columns=ORDER_COLUMNS,
            last_run_id=None,
            updated_at=_now(),
            kind="silver",
            upstream=[bronze],
            keys=["id"],
            definition=f"SELECT DISTINCT * FROM {bronze}",
        ),
        Dataset(
            target=gold,
            connection_id=None,
            source_table=None,
            row_count=12,
            columns=[
                ColumnMapping(name="revenue", source_type="decimal(38,2)", arrow_type="decimal128(38, 2)", mapped=True)
            ],
            last_run_id=None,
            updated_at=_now(),
            kind="gold",
            upstream=[silver],
            definition=f"SELECT sum(total) AS revenue FROM {silver}",
        ),
    ]


#: The lakehouse every fake loader holds: the seeded lineage, plus a bronze table the catalog does not know.
LINEAGE = (("bronze", "shop_orders"), ("silver", "orders"), ("gold", "revenue"))
TABLES = {"bronze": ["scratch", "shop_orders"], "silver": ["orders"], "gold": ["revenue"]}


@dataclass
class FakeLoader:
    """Answers queries, listings, descriptions, previews, transforms, views and uploads over `TABLES`."""

    queries: list[RunQuery] = field(default_factory=list)
    transforms: list[TransformToSilver] = field(default_factory=list)
    views: list[CreateGoldView] = field(default_factory=list)
    uploads: list[UploadFile] = field(default_factory=list)
    described: list[DescribeTable] = field(default_factory=list)
    query_failure: LakegateError | None = None
    #: A query whose SQL says `slow` sets `running`, then waits for `release` (a test cancels it meanwhile).
    running: asyncio.Event = field(default_factory=asyncio.Event)
    release: asyncio.Event = field(default_factory=asyncio.Event)

    @answers
    async def query(self, request: RunQuery) -> QueryResult:
        self.queries.append(request)
        if "slow" in request.sql:
            self.running.set()
            await self.release.wait()
        if self.query_failure is not None:
            raise self.query_failure
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
        names = TABLES.get(request.layer, [])
        chosen = names[request.offset : request.offset + request.limit]
        more = request.offset + request.limit < len(names)
        return TableList(
            tables=[
                TableSummary(
                    ref=_ref(request.tenant_id, request.layer, name),
                    layer=request.layer,
                    row_count=ROWS,
                    size_bytes=8192,
                    table_version=3,
                )
                for name in chosen
            ],
            next_offset=request.offset + request.limit if more else None,
        )

    @answers
    async def describe(self, request: DescribeTable) -> TableDescription:
        self.described.append(request)
        ref = self._find(request.tenant_id, request.table_name)
        stats = request.with_stats
        return TableDescription(
            ref=ref,
            columns=[
                WarehouseColumn(
                    name="id",
                    type="bigint",
                    nullable=False,
                    null_count=0 if stats else None,
                    distinct_estimate=ROWS if stats else None,
                    min=1 if stats else None,
                    max=ROWS if stats else None,
                ),
                WarehouseColumn(
                    name="total",
                    type="decimal(12,2)",
                    nullable=True,
                    null_count=7 if stats else None,
                    min="0.50" if stats else None,
                    max="99.00" if stats else None,
                ),
            ],
            row_count=ROWS,
            size_bytes=8192,
            table_version=3,
        )

    @answers
    async def preview(self, request: PreviewTable) -> QueryResult:
        self._find(request.tenant_id, request.table_name)
        rows = [[n, f"{n}.50"] for n in range(1, request.limit + 1)][:5]
        return QueryResult(
            columns=[ResultColumn(name="id", type="int64"), ResultColumn(name="total", type="decimal128(12, 2)")],
            rows=rows,
            row_count=len(rows),
            truncated=request.limit < ROWS,
        )

    @answers
    async def transform(self, request: TransformToSilver) -> TransformResult:
        self.transforms.append(request)
        source = self._find(request.tenant_id, request.bronze_table)
        name = (request.spec.target_name if request.spec else None) or source.name
        return TransformResult(
            source=source,
            target=_ref(request.tenant_id, "silver", name),
            rows_in=ROWS,
            rows_out=990,
            columns=ORDER_COLUMNS,
            sql=f"CREATE OR REPLACE TABLE silver.{name} AS SELECT DISTINCT * FROM {source}",
            table_version=0,
        )

    @answers
    async def gold_view(self, request: CreateGoldView) -> GoldView:
        self.views.append(request)
        return GoldView(
            ref=_ref(request.tenant_id, "gold", request.name),
            sql=request.sql,
            columns=ORDER_COLUMNS[1:],
            upstream=[_ref(request.tenant_id, "silver", "orders")],
        )

    @answers
    async def upload(self, request: UploadFile) -> UploadResult:
        self.uploads.append(request)
        lines = base64.b64decode(request.content_base64).decode().splitlines()
        return UploadResult(
            ref=_ref(request.tenant_id, "bronze", request.dataset_name),
            format="csv",
            row_count=len(lines) - 1,
            columns=[
                ColumnMapping(name=name, source_type="string", arrow_type="string", mapped=True)
                for name in lines[0].split(",")
            ],
            table_version=0,
        )

    def _find(self, tenant_id: str, table_name: str) -> TableRef:
        parts = table_name.lower().split(".")
        layer, name = ("bronze", parts[-1]) if len(parts) == 1 else (parts[-2], parts[-1])
        if name not in TABLES.get(layer, []):
            raise NotFound(f"table {table_name} does not exist: list_tables shows the tables there are")
        return _ref(tenant_id, layer, name)


@dataclass(frozen=True)
class Fakes:
    catalog: FakeCatalog
    extractor: FakeExtractor
    loader: FakeLoader


@pytest.fixture
async def fakes(nats_settings: NatsSettings, tenant_id: str) -> AsyncIterator[Fakes]:
    topology = nats_settings.topology
    broker = NatsBroker(nats_settings.servers)
    catalog, extractor, loader = FakeCatalog(broker, topology), FakeExtractor(), FakeLoader()
    catalog.seed(tenant_id)
    answering: dict[str, Callable[..., Awaitable[Reply]]] = {
        topology.sources_register: catalog.register,
        topology.sources_get: catalog.get_source,
        topology.runs_start: catalog.start,
        topology.runs_get: catalog.get_run,
        topology.runs_list: catalog.list_runs,
        topology.runs_cancel: catalog.cancel,
        topology.schedules_create: catalog.create_schedule,
        topology.schedules_list: catalog.list_schedules,
        topology.schedules_delete: catalog.delete_schedule,
        topology.sources_list: catalog.list_sources,
        topology.datasets_list: catalog.list_datasets,
        topology.audit_list: catalog.list_audit,
        topology.sources_check: extractor.check,
        topology.sources_check_registered: extractor.check_registered,
        topology.source_tables_list: extractor.list_tables,
        topology.source_table_describe: extractor.describe_table,
        topology.source_query: extractor.query,
        topology.warehouse_query: loader.query,
        topology.warehouse_tables_list: loader.list_tables,
        topology.warehouse_tables_describe: loader.describe,
        topology.warehouse_tables_preview: loader.preview,
        topology.warehouse_transform: loader.transform,
        topology.warehouse_gold_view: loader.gold_view,
        topology.warehouse_upload: loader.upload,
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
def seal_public_key() -> str:
    """The extractor's sealing public key, as the edge is configured with it."""
    return SEAL_PUBLIC_KEY


@pytest.fixture
def unsealer() -> Unsealer:
    """What the extractor opens sealed passwords with."""
    return UNSEALER


@pytest.fixture
def edge_settings(nats_settings: NatsSettings, tenant_id: str) -> EdgeSettings:
    return EdgeSettings(
        nats=nats_settings, default_tenant=tenant_id, sync_wait_seconds=30, seal_public_key=SEAL_PUBLIC_KEY
    )


@pytest.fixture
async def edge(edge_settings: EdgeSettings, fakes: Fakes) -> AsyncIterator[EdgeState]:
    async with serve(edge_settings) as state:
        await state.link.ready()  # NATS is connected in the background; the probes say ready once it is
        yield state


@pytest.fixture
async def edge_url(edge: EdgeState) -> AsyncIterator[str]:
    """The edge's streamable-HTTP endpoint, served by uvicorn on a free loopback port."""
    async with listening(http_app(edge), "127.0.0.1", 0, grace_seconds=5) as listener:
        yield f"{listener.url}{edge.settings.path}"
