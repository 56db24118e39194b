"""A catalog served in process on the real NATS and PostgreSQL of the harness, and a client that
talks to it only the way other services do: requests, step messages, JetStream streams."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import asyncpg
import nats
import pytest
from cryptography.fernet import Fernet
from faststream.nats import NatsBroker
from lakegate.catalog.app import CatalogState, serve
from lakegate.catalog.config import CatalogSettings
from lakegate.common.contracts.events import SyncEvent
from lakegate.common.contracts.explore import DescribeSourceTable, SourceTableDetail
from lakegate.common.contracts.rpc import Reply
from lakegate.common.contracts.runs import (
    CancelRun,
    ColumnMapping,
    Cursor,
    ErrorInfo,
    Extracted,
    Extracting,
    ExtractTable,
    Failed,
    Loaded,
    Loading,
    RunRef,
    RunView,
    SchemaChange,
    StagedParts,
    StartRun,
    SyncMode,
    TableRef,
)
from lakegate.common.contracts.sources import RegisterSource, SourceAddress, SourceInfo, SourceLogin, SourceTable
from lakegate.common.names import parse_source_table
from lakegate.common.rpc import RpcClient
from lakegate.common.sealing import Sealer, new_private_key, public_key_of
from lakegate.common.settings import NatsSettings
from lakegate.common.subjects import RunStep, Topology
from lakegate.devstack.pytest_plugin import CreateDatabase
from nats.aio.client import Client as Nats
from nats.aio.msg import Msg
from nats.js import JetStreamContext
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy
from pydantic import BaseModel, SecretStr

#: What the edge sends for a password: a seal only the extractor could open; to the catalog an opaque text.
PASSWORD = Sealer(public_key_of(new_private_key())).seal(
    SecretStr("s3cret-Hunter2-ü"),
    tenant_id="any",
    address=SourceAddress(host="db.example.internal", port=5433, database="shop", user="reader"),
)
COLUMNS = (
    ColumnMapping(name="id", source_type="bigint", arrow_type="int64", mapped=True),
    ColumnMapping(name="total", source_type="numeric(12,2)", arrow_type="decimal128(12, 2)", mapped=True),
)


@pytest.fixture
async def catalog_dsn(create_database: CreateDatabase) -> str:
    dsn: str = await create_database("catalog")
    return dsn


@pytest.fixture
def secret_key() -> str:
    return Fernet.generate_key().decode()


@pytest.fixture
def catalog_settings(nats_settings: NatsSettings, catalog_dsn: str, secret_key: str) -> CatalogSettings:
    return CatalogSettings(
        nats=nats_settings, database_url=SecretStr(catalog_dsn), secret_key=SecretStr(secret_key), pool_max_size=4
    )


@pytest.fixture
async def catalog(catalog_settings: CatalogSettings) -> AsyncIterator[CatalogState]:
    async with serve(catalog_settings) as state:
        yield state


@dataclass
class ManualClock:
    """A clock that stands still until the test moves it."""

    at: datetime = field(default_factory=lambda: datetime.now(UTC).replace(microsecond=0))

    def now(self) -> datetime:
        return self.at

    def advance(self, seconds: float) -> datetime:
        self.at += timedelta(seconds=seconds)
        return self.at


@pytest.fixture
async def source_tables(peer: Peer) -> AsyncIterator[None]:
    """A stand-in for the extractor's `tables.describe` answer: every table exists but those named `missing*`."""

    async def answer(msg: Msg) -> None:
        request = DescribeSourceTable.model_validate_json(msg.data)
        name = parse_source_table(request.table_name)
        if name.table.startswith("missing"):
            error = ErrorInfo(code="not_found", message=f"table {name} not found in source {request.connection_id}")
            reply = Reply(error=error)
        else:
            table = SourceTable(schema_name=name.schema, name=name.table, kind="table", row_estimate=-1, columns=[])
            detail = SourceTableDetail(table=table, primary_key=[], foreign_keys=[], indexes=[], samples={})
            reply = Reply(result=detail.model_dump(mode="json"))
        await msg.respond(reply.model_dump_json().encode())

    subscription = await peer.nc.subscribe(peer.topology.source_table_describe, cb=answer)
    await peer.nc.flush()
    yield
    await subscription.unsubscribe()


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock()


@pytest.fixture
async def scheduling_catalog(
    catalog_settings: CatalogSettings, clock: ManualClock, source_tables: None
) -> AsyncIterator[CatalogState]:
    """A catalog on the test's clock whose scheduler only ticks when the test calls `scheduler.tick()`."""
    settings = catalog_settings.model_copy(update={"scheduler_enabled": False})
    async with serve(settings, clock=clock) as state:
        yield state


@pytest.fixture
async def db(catalog_dsn: str) -> AsyncIterator[asyncpg.Connection]:
    """A connection of the test's own to the catalog database, to look at rows."""
    conn = await asyncpg.connect(catalog_dsn)
    yield conn
    await conn.close()


@dataclass
class Settlements:
    """How one durable consumer of the catalog finally settled each message, by stream sequence:
    `+ACK` or `+TERM`. The catalog settles a message only once its work is committed, so a
    settlement is the event that says the message was handled."""

    seen: dict[int, str] = field(default_factory=dict)
    changed: asyncio.Condition = field(default_factory=asyncio.Condition)

    async def on_ack(self, msg: Msg) -> None:
        body = msg.data or b"+ACK"  # an empty body is an ack
        if body.startswith((b"+WPI", b"-NAK")):  # in progress, or retried later: not final
            return
        # $JS.ACK.<stream>.<consumer>.<delivered>.<stream seq>.<consumer seq>.<time>.<pending>
        self.seen[int(msg.subject.split(".")[5])] = body.split(b" ", 1)[0].decode()
        async with self.changed:
            self.changed.notify_all()

    async def of(self, seq: int, timeout: float = 15.0) -> str:
        """Wait until the message at `seq` is settled; `+ACK` or `+TERM`."""
        async with self.changed:
            await asyncio.wait_for(self.changed.wait_for(lambda: seq in self.seen), timeout)
        return self.seen[seq]


@dataclass
class Peer:
    """Another service, as far as the catalog can tell: it calls, publishes steps and reads streams."""

    rpc: RpcClient
    nc: Nats
    js: JetStreamContext
    topology: Topology
    tenant_id: str
    password: str = PASSWORD
    columns: tuple[ColumnMapping, ...] = COLUMNS
    barriers: int = 0

    def target(self, name: str = "shop_orders") -> TableRef:
        """A bronze table of this tenant."""
        return TableRef(catalog=f"tenant_{self.tenant_id}", schema_name="bronze", name=name)

    async def register(self, name: str = "shop", *, tenant_id: str | None = None) -> SourceInfo:
        request = RegisterSource(
            tenant_id=tenant_id or self.tenant_id,
            name=name,
            login=SourceLogin(
                address=SourceAddress(host="db.example.internal", port=5433, database="shop", user="reader"),
                sealed_password=PASSWORD,
            ),
        )
        return await self.rpc.call(self.topology.sources_register, request, SourceInfo)

    async def start(
        self,
        connection_id: str,
        table_name: str = "orders",
        *,
        tenant_id: str | None = None,
        sync_mode: SyncMode = "full",
        cursor_column: str | None = None,
    ) -> RunView:
        request = StartRun(
            tenant_id=tenant_id or self.tenant_id,
            connection_id=connection_id,
            table_name=table_name,
            sync_mode=sync_mode,
            cursor_column=cursor_column,
        )
        return await self.rpc.call(self.topology.runs_start, request, RunView)

    async def cancel(self, run_id: str) -> RunView:
        request = CancelRun(tenant_id=self.tenant_id, run_id=run_id)
        return await self.rpc.call(self.topology.runs_cancel, request, RunView)

    async def run(self, run_id: str) -> RunView:
        return await self.rpc.call(self.topology.runs_get, RunRef(tenant_id=self.tenant_id, run_id=run_id), RunView)

    async def extract_commands(self) -> JetStreamContext.PullSubscription:
        """A reader of the extract commands, as an extractor would take them."""
        return await self.js.pull_subscribe(
            self.topology.cmd_extract,
            durable="test_extractor",
            stream=self.topology.cmd_stream.name,
            config=ConsumerConfig(ack_policy=AckPolicy.EXPLICIT),
        )

    async def next_command(self, reader: JetStreamContext.PullSubscription) -> ExtractTable:
        """The next extract command, acknowledged."""
        (message,) = await reader.fetch(1, timeout=15)
        await message.ack()
        return ExtractTable.model_validate_json(message.data)

    async def step(self, run_id: str, step: RunStep, message: BaseModel) -> int:
        """Publish a step as the extractor or loader would; returns its stream sequence."""
        ack = await self.js.publish(
            self.topology.run_step(run_id, step),
            message.model_dump_json().encode(),
            stream=self.topology.run_stream.name,
        )
        return ack.seq

    async def succeed(
        self,
        run: RunView,
        reader: JetStreamContext.PullSubscription,
        *,
        rows: int = 1234,
        primary_key: list[str] | None = None,
        cursor: Cursor | None = None,
        schema_changes: list[SchemaChange] | None = None,
    ) -> SyncEvent:
        """Carry a run through every step as the extractor and loader would; returns its completed event."""
        tenant, run_id = self.tenant_id, run.run_id
        staged = StagedParts(store="memory", location=f"{run_id}/a1", parts=1, bytes=100)
        extracted = Extracted(
            tenant_id=tenant,
            run_id=run_id,
            target=run.target,
            sync_mode=run.sync_mode,
            arrow_schema="",
            columns=list(self.columns),
            row_count=rows,
            staged=staged,
            primary_key=primary_key or [],
            cursor=cursor,
        )
        await self.step(run_id, RunStep.EXTRACTING, Extracting(tenant_id=tenant, run_id=run_id, attempt="a1"))
        await self.step(run_id, RunStep.EXTRACTED, extracted)
        await self.step(run_id, RunStep.LOADING, Loading(tenant_id=tenant, run_id=run_id))
        loaded = Loaded(
            tenant_id=tenant,
            run_id=run_id,
            target=run.target,
            row_count=rows,
            bytes=rows * 10,
            schema_changes=schema_changes or [],
        )
        await self.step(run_id, RunStep.LOADED, loaded)
        return await self.event_of(run_id, reader)

    async def fail(self, run: RunView, reader: JetStreamContext.PullSubscription) -> SyncEvent:
        """Fail a run as an extractor would; returns its failed event."""
        error = ErrorInfo(code="source_error", message=f"run {run.run_id} failed on purpose")
        failed = Failed(tenant_id=self.tenant_id, run_id=run.run_id, step="extract", error=error)
        await self.step(run.run_id, RunStep.FAILED, failed)
        return await self.event_of(run.run_id, reader)

    async def event_of(self, run_id: str, reader: JetStreamContext.PullSubscription) -> SyncEvent:
        """The next event of the reader, which must be this run's."""
        _, event = await self.next_event(reader)
        assert event.subject == run_id
        return event

    async def barrier(self, connection_id: str, reader: JetStreamContext.PullSubscription) -> list[SyncEvent]:
        """Fail a fresh run and wait for its event. The catalog takes steps one at a time in stream
        order, so once this event is out, every step published before it has been handled.
        Returns the events that came out before the barrier's own."""
        # A table of its own, so the barrier never waits for (or is refused by) a run of the test's tables.
        self.barriers += 1
        run = await self.start(connection_id, f"barrier_{self.barriers}")
        error = ErrorInfo(code="cancelled", message="barrier")
        await self.step(
            run.run_id, RunStep.FAILED, Failed(tenant_id=self.tenant_id, run_id=run.run_id, step="test", error=error)
        )
        earlier: list[SyncEvent] = []
        while True:
            _, event = await self.next_event(reader)
            if event.subject == run.run_id:
                return earlier
            earlier.append(event)

    async def command(self, subject: str, message: BaseModel | bytes, msg_id: str) -> int:
        """Publish a command as the loader or the edge would; returns its stream sequence."""
        body = message if isinstance(message, bytes) else message.model_dump_json().encode()
        ack = await self.js.publish(
            subject, body, stream=self.topology.cmd_stream.name, headers={"Nats-Msg-Id": msg_id}
        )
        return ack.seq

    async def settlements(self, durable: str, stream: str | None = None) -> Settlements:
        """Watch how the catalog's durable consumer `durable` (on the CMD stream unless told) settles messages;
        call before publishing."""
        settlements = Settlements()
        consumer = self.topology.durable(durable)
        stream = stream or self.topology.cmd_stream.name
        await self.nc.subscribe(f"$JS.ACK.{stream}.{consumer}.>", cb=settlements.on_ack)
        await self.nc.flush()
        return settlements

    async def events(self) -> JetStreamContext.PullSubscription:
        """A reader of this tenant's public sync events, from the first one."""
        return await self.js.pull_subscribe(
            self.topology.sync_events(self.tenant_id),
            stream=self.topology.events_stream.name,
            config=ConsumerConfig(ack_policy=AckPolicy.NONE, deliver_policy=DeliverPolicy.ALL, inactive_threshold=60.0),
        )

    async def next_event(self, reader: JetStreamContext.PullSubscription) -> tuple[str, SyncEvent]:
        (message,) = await reader.fetch(1, timeout=15)
        return message.subject, SyncEvent.model_validate_json(message.data)

    async def event_count(self) -> int:
        info = await self.js.stream_info(
            self.topology.events_stream.name, subjects_filter=self.topology.sync_events(self.tenant_id)
        )
        return sum((info.state.subjects or {}).values())


@pytest.fixture
async def peer(nats_settings: NatsSettings, tenant_id: str) -> AsyncIterator[Peer]:
    broker = NatsBroker(nats_settings.servers)
    await broker.connect()
    nc = await nats.connect(nats_settings.url)
    try:
        yield Peer(
            RpcClient(broker, nats_settings.request_timeout), nc, nc.jetstream(), nats_settings.topology, tenant_id
        )
    finally:
        await nc.close()
        await broker.stop()
