"""Fixtures for the extractor's tests: a running extractor, a fake catalog, source databases.

The fake catalog is a real implementation of the catalog's side of the protocol: it answers
`sources.credentials` with real `SourceCredentials` and `runs.get` with the run as it knows it,
publishes `cmd.extract` like the catalog does, and cancels a run the way the catalog does (records
it, then publishes on `cancel.<run_id>`), so these tests do not depend on the catalog service.

No `from __future__ import annotations`: FastStream reads the fake's handler annotations at runtime.
"""

import asyncio
import base64
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit

import asyncpg
import pyarrow as pa
import pytest
from faststream.nats import NatsBroker
from lakegate.common.broker import MAX_PART_BYTES
from lakegate.common.contracts.runs import (
    CancelRun,
    Cursor,
    Extracted,
    ExtractTable,
    Failed,
    RunRef,
    RunView,
    SyncMode,
    TableRef,
)
from lakegate.common.contracts.sources import (
    SourceAddress,
    SourceCredentials,
    SourceInfo,
    SourceLogin,
    SourceRef,
)
from lakegate.common.errors import NotFound, Unavailable
from lakegate.common.rpc import RpcClient, answers
from lakegate.common.sealing import Sealer, new_private_key, public_key_of
from lakegate.common.settings import NatsSettings
from lakegate.common.staging import JetStreamStaging
from lakegate.common.subjects import RunStep, Topology
from lakegate.devstack.pytest_plugin import CreateDatabase
from lakegate.extractor.app import ExtractorState, serve
from lakegate.extractor.config import ExtractorSettings
from lakegate.extractor.logins import Credentials, Login
from nats.aio.msg import Msg
from nats.aio.subscription import Subscription
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy
from pydantic import SecretStr

OUTCOME_TIMEOUT = 60.0
#: The extractor's sealing key in these tests; the edge's side of it seals the logins the fake catalog hands out.
SEAL_KEY = new_private_key()
SEALER = Sealer(public_key_of(SEAL_KEY))
SEAL_KEYS = SecretStr(SEAL_KEY)


async def eventually(check: Callable[[], Awaitable[bool]], what: str, timeout: float = 30.0) -> None:
    """Wait until `check()` holds, for state that another process keeps (NATS, PostgreSQL) and announces to nobody."""
    deadline = time.monotonic() + timeout
    while not await check():
        if time.monotonic() > deadline:
            pytest.fail(f"waited {timeout:g}s for {what}")
        await asyncio.sleep(0.02)


def login_for(
    dsn: str,
    *,
    user: str | None = None,
    password: str = "not-checked",
    database: str | None = None,
    host: str | None = None,
    port: int | None = None,
) -> Login:
    """A login in clear for a database the test harness created; `FakeCatalog.seal` makes it what the wire carries."""
    parts = urlsplit(dsn)
    address = SourceAddress(
        host=host or parts.hostname or "127.0.0.1",
        port=port or parts.port or 5432,
        database=database or parts.path.lstrip("/"),
        user=user or parts.username or "postgres",
    )
    return Login(address, SecretStr(password))


@dataclass
class StartedRun:
    """A run the fake catalog sent to the extractor, and its outcome step once it comes."""

    run_id: str
    outcome: "asyncio.Future[Extracted | Failed]"


class FakeCatalog:
    """Knows some sources and runs, starts extractions and cancels them, the way the catalog does."""

    def __init__(self, broker: NatsBroker, topology: Topology, tenant_id: str) -> None:
        self.broker, self.topology, self.tenant_id = broker, topology, tenant_id
        self.sources: dict[str, SourceCredentials] = {}
        #: The same sources as the extractor sees them once it opened their seals.
        self.opened: dict[str, Credentials] = {}
        self.runs: dict[str, RunView] = {}
        self.rpc = RpcClient(broker, timeout=30.0)
        self.unavailable_for = 0  # how many coming credential requests to answer "try later"
        self._subscriptions: list[Subscription] = []

    def seal(self, login: Login) -> SourceLogin:
        """`login` as the edge sends it for this tenant: the password sealed for the extractor."""
        sealed = SEALER.seal(login.password, tenant_id=self.tenant_id, address=login.address)
        return SourceLogin(address=login.address, sealed_password=sealed)

    def add_referenced_source(self, address: SourceAddress, reference: str, name: str = "shop") -> str:
        """Register a source whose password the extractor reads where `reference` points."""
        return self._register(SourceLogin(address=address, password_ref=reference), name).connection_id

    def add_source(self, login: Login, name: str = "shop") -> str:
        """Register a source; returns its connection id."""
        info = self._register(self.seal(login), name)
        self.opened[info.connection_id] = Credentials(info, login)
        return info.connection_id

    def _register(self, login: SourceLogin, name: str) -> SourceInfo:
        """Store a source with `login` as the catalog would hand it out."""
        info = SourceInfo(
            connection_id=f"src_{uuid.uuid4().hex[:8]}",
            tenant_id=self.tenant_id,
            name=name,
            address=login.address,
            created_at=datetime.now(UTC),
        )
        self.sources[info.connection_id] = SourceCredentials(source=info, login=login)
        return info

    def credentials(self, request: SourceRef) -> SourceCredentials:
        if self.unavailable_for > 0:
            self.unavailable_for -= 1
            raise Unavailable("the catalog database is restarting; retry shortly")
        found = self.sources.get(request.connection_id)
        if found is None or found.source.tenant_id != request.tenant_id:
            raise NotFound(f"source {request.connection_id} does not exist for tenant {request.tenant_id}")
        return found

    def run(self, request: RunRef) -> RunView:
        found = self.runs.get(request.run_id)
        if found is None or found.tenant_id != request.tenant_id:
            raise NotFound(f"run {request.run_id} does not exist for tenant {request.tenant_id}")
        return found

    async def start(
        self,
        connection_id: str,
        table: str,
        schema: str = "public",
        *,
        mode: SyncMode = "full",
        cursor_column: str | None = None,
        since: Cursor | None = None,
        detect_deletes: bool = False,
    ) -> StartedRun:
        """Record a run and publish `cmd.extract` for it; its outcome step resolves `outcome`."""
        run_id = self.record(connection_id, table, schema, mode=mode)
        await self.send(
            ExtractTable(
                tenant_id=self.tenant_id,
                run_id=run_id,
                connection_id=connection_id,
                source_schema=schema,
                source_table=table,
                target=self.runs[run_id].target,
                sync_mode=mode,
                cursor_column=cursor_column,
                since=since,
                detect_deletes=detect_deletes,
            )
        )
        return StartedRun(run_id, await self.outcome(run_id))

    def record(self, connection_id: str, table: str, schema: str = "public", *, mode: SyncMode = "full") -> str:
        """Record a queued run, as the catalog does before it sends the run to the extractor; returns its id."""
        run_id = f"run{uuid.uuid4().hex[:12]}"
        self.runs[run_id] = RunView(
            run_id=run_id,
            tenant_id=self.tenant_id,
            connection_id=connection_id,
            source_table=f"{schema}.{table}",
            target=TableRef(catalog=f"tenant_{self.tenant_id}", schema_name="bronze", name=table.lower()),
            sync_mode=mode,
            status="queued",
            created_at=datetime.now(UTC),
        )
        return run_id

    async def send(self, command: ExtractTable) -> None:
        """Publish `cmd.extract`."""
        await self.broker.publish(
            command,
            self.topology.cmd_extract,
            stream=self.topology.cmd_stream.name,
            headers={"Nats-Msg-Id": f"{command.run_id}.extract"},
        )

    async def outcome(self, run_id: str) -> "asyncio.Future[Extracted | Failed]":
        """A future that the run's `extracted` or `failed` step resolves."""
        outcome: asyncio.Future[Extracted | Failed] = asyncio.get_running_loop().create_future()

        async def on_extracted(msg: Msg) -> None:
            if not outcome.done():
                outcome.set_result(Extracted.model_validate_json(msg.data))

        async def on_failed(msg: Msg) -> None:
            if not outcome.done():
                outcome.set_result(Failed.model_validate_json(msg.data))

        nc = self.broker.connection
        self._subscriptions += [
            await nc.subscribe(self.topology.run_step(run_id, RunStep.EXTRACTED), cb=on_extracted),
            await nc.subscribe(self.topology.run_step(run_id, RunStep.FAILED), cb=on_failed),
        ]
        return outcome

    async def extract(
        self,
        connection_id: str,
        table: str,
        schema: str = "public",
        *,
        mode: SyncMode = "full",
        cursor_column: str | None = None,
        since: Cursor | None = None,
        detect_deletes: bool = False,
    ) -> Extracted | Failed:
        """Publish `cmd.extract` for one table and wait for the run's outcome step."""
        run = await self.start(
            connection_id,
            table,
            schema,
            mode=mode,
            cursor_column=cursor_column,
            since=since,
            detect_deletes=detect_deletes,
        )
        return await asyncio.wait_for(run.outcome, OUTCOME_TIMEOUT)

    async def cancel(self, run_id: str) -> None:
        """Record the run cancelled, then tell whoever works on it, as the catalog does."""
        self.runs[run_id] = self.runs[run_id].model_copy(update={"status": "cancelled"})
        await self.broker.publish(CancelRun(tenant_id=self.tenant_id, run_id=run_id), self.topology.cancel(run_id))

    async def close(self) -> None:
        for subscription in self._subscriptions:
            await subscription.unsubscribe()

    async def staged_batches(self, extracted: Extracted) -> list[pa.RecordBatch]:
        """Read the run's staged parts back (every range's, in order), as the loader would."""
        staging = JetStreamStaging(self.broker.connection.jetstream(), self.topology, MAX_PART_BYTES)
        return [batch for staged in [extracted.staged, *extracted.ranges] async for batch in staging.read(staged)]

    async def staged_keys(self, extracted: Extracted) -> pa.Table:
        """The primary keys a merge with detect_deletes staged, as one table."""
        assert extracted.source_keys is not None
        staging = JetStreamStaging(self.broker.connection.jetstream(), self.topology, MAX_PART_BYTES)
        return pa.Table.from_batches([batch async for batch in staging.read(extracted.source_keys)])

    async def staged_table(self, extracted: Extracted) -> pa.Table:
        """Every staged row of the run, as one table of the extracted schema."""
        schema = pa.ipc.read_schema(pa.py_buffer(base64.b64decode(extracted.arrow_schema)))
        return pa.Table.from_batches(await self.staged_batches(extracted), schema=schema)

    async def steps(self, run_id: str, step: RunStep) -> list[bytes]:
        """Every message of one step of a run that the run stream holds."""
        js = self.broker.connection.jetstream()
        info = await js.stream_info(self.topology.run_stream.name, subjects_filter=self.topology.run_step(run_id, step))
        stored = (info.state.subjects or {}).get(self.topology.run_step(run_id, step), 0)
        if not stored:
            return []
        subscription = await js.pull_subscribe(
            self.topology.run_step(run_id, step),
            stream=self.topology.run_stream.name,
            config=ConsumerConfig(ack_policy=AckPolicy.NONE, deliver_policy=DeliverPolicy.ALL),
        )
        try:
            return [message.data for message in await subscription.fetch(stored, timeout=10)]
        finally:
            await subscription.unsubscribe()

    async def staged_part_count(self, run_id: str) -> int:
        """How many staged parts of any attempt of the run the staging stream holds."""
        info = await self.broker.connection.jetstream().stream_info(
            self.topology.stage_stream.name, subjects_filter=self.topology.stage_all(run_id)
        )
        return sum((info.state.subjects or {}).values())

    async def commands_waiting(self) -> int:
        """Commands in the CMD stream that no worker has acknowledged yet."""
        info = await self.broker.connection.jetstream().stream_info(self.topology.cmd_stream.name)
        return int(info.state.messages)


def harness_settings(nats_settings: NatsSettings, **overrides: Any) -> ExtractorSettings:
    """An extractor of the test harness: its NATS, the test sealing keys, sources on 127.0.0.1; then `overrides`."""
    return ExtractorSettings(
        nats=nats_settings,
        seal_keys=SEAL_KEYS,
        allow_private_sources=True,  # the sources live in the harness cluster on 127.0.0.1
        connect_timeout=5.0,
        **overrides,
    )


@pytest.fixture
def settings(nats_settings: NatsSettings) -> ExtractorSettings:
    return harness_settings(nats_settings, statement_timeout=30.0)


@pytest.fixture
async def extractor(settings: ExtractorSettings) -> AsyncIterator[ExtractorState]:
    async with serve(settings) as state:
        yield state


@pytest.fixture
async def catalog(nats_settings: NatsSettings, tenant_id: str, extractor: ExtractorState) -> AsyncIterator[FakeCatalog]:
    """A fake catalog on its own connection; the extractor is running (and the streams exist)."""
    broker = NatsBroker(nats_settings.servers)
    fake = FakeCatalog(broker, nats_settings.topology, tenant_id)

    @broker.subscriber(nats_settings.topology.sources_credentials)
    @answers
    async def credentials(request: SourceRef) -> SourceCredentials:
        return fake.credentials(request)

    @broker.subscriber(nats_settings.topology.runs_get)
    @answers
    async def run(request: RunRef) -> RunView:
        return fake.run(request)

    await broker.start()
    try:
        yield fake
    finally:
        await fake.close()
        await broker.stop()


@pytest.fixture
async def source_dsn(create_database: CreateDatabase) -> str:
    """A fresh source database, as the superuser."""
    return await create_database("source")


@pytest.fixture
async def source(source_dsn: str) -> AsyncIterator[asyncpg.Connection]:
    """An admin connection to the source database, to set up tables and look at the outcome."""
    conn = await asyncpg.connect(source_dsn)
    try:
        yield conn
    finally:
        await conn.close()
