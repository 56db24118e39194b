"""Fixtures for the extractor's tests: a running extractor, a fake catalog, source databases.

The fake catalog is a real implementation of the catalog's side of the protocol: it answers
`sources.credentials` with real `SourceCredentials` and publishes `cmd.extract` like the catalog
does, so these tests do not depend on the catalog service.

No `from __future__ import annotations`: FastStream reads the fake's handler annotations at runtime.
"""

import asyncio
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from urllib.parse import urlsplit

import asyncpg
import pyarrow as pa
import pytest
from faststream.nats import NatsBroker
from lakegate.common.broker import MAX_PART_BYTES
from lakegate.common.contracts.runs import Extracted, ExtractTable, Failed, TableRef
from lakegate.common.contracts.sources import (
    SourceAddress,
    SourceCredentials,
    SourceInfo,
    SourceLogin,
    SourceRef,
)
from lakegate.common.errors import NotFound, Unavailable
from lakegate.common.rpc import RpcClient, answers
from lakegate.common.settings import NatsSettings
from lakegate.common.staging import JetStreamStaging
from lakegate.common.subjects import RunStep, Topology
from lakegate.devstack.pytest_plugin import CreateDatabase
from lakegate.extractor.app import ExtractorState, serve
from lakegate.extractor.config import ExtractorSettings
from nats.aio.msg import Msg
from pydantic import SecretStr

OUTCOME_TIMEOUT = 60.0


def login_for(
    dsn: str,
    *,
    user: str | None = None,
    password: str = "not-checked",
    database: str | None = None,
    host: str | None = None,
    port: int | None = None,
) -> SourceLogin:
    """A login for a database the test harness created, optionally with some part changed."""
    parts = urlsplit(dsn)
    address = SourceAddress(
        host=host or parts.hostname or "127.0.0.1",
        port=port or parts.port or 5432,
        database=database or parts.path.lstrip("/"),
        user=user or parts.username or "postgres",
    )
    return SourceLogin(address=address, password=SecretStr(password))


class FakeCatalog:
    """Knows some sources and starts extractions, the way the catalog does."""

    def __init__(self, broker: NatsBroker, topology: Topology, tenant_id: str) -> None:
        self.broker, self.topology, self.tenant_id = broker, topology, tenant_id
        self.sources: dict[str, SourceCredentials] = {}
        self.rpc = RpcClient(broker, timeout=30.0)
        self.unavailable_for = 0  # how many coming credential requests to answer "try later"

    def add_source(self, login: SourceLogin, name: str = "shop") -> str:
        """Register a source; returns its connection id."""
        connection_id = f"src_{uuid.uuid4().hex[:8]}"
        info = SourceInfo(
            connection_id=connection_id,
            tenant_id=self.tenant_id,
            name=name,
            address=login.address,
            created_at=datetime.now(UTC),
        )
        self.sources[connection_id] = SourceCredentials(source=info, login=login)
        return connection_id

    def credentials(self, request: SourceRef) -> SourceCredentials:
        if self.unavailable_for > 0:
            self.unavailable_for -= 1
            raise Unavailable("the catalog database is restarting; retry shortly")
        found = self.sources.get(request.connection_id)
        if found is None or found.source.tenant_id != request.tenant_id:
            raise NotFound(f"source {request.connection_id} does not exist for tenant {request.tenant_id}")
        return found

    async def extract(self, connection_id: str, table: str, schema: str = "public") -> Extracted | Failed:
        """Publish `cmd.extract` for one table and wait for the run's outcome step."""
        run_id = f"run{uuid.uuid4().hex[:12]}"
        outcome: asyncio.Future[Extracted | Failed] = asyncio.get_running_loop().create_future()

        async def on_extracted(msg: Msg) -> None:
            if not outcome.done():
                outcome.set_result(Extracted.model_validate_json(msg.data))

        async def on_failed(msg: Msg) -> None:
            if not outcome.done():
                outcome.set_result(Failed.model_validate_json(msg.data))

        nc = self.broker.connection
        subscriptions = [
            await nc.subscribe(self.topology.run_step(run_id, RunStep.EXTRACTED), cb=on_extracted),
            await nc.subscribe(self.topology.run_step(run_id, RunStep.FAILED), cb=on_failed),
        ]
        try:
            command = ExtractTable(
                tenant_id=self.tenant_id,
                run_id=run_id,
                connection_id=connection_id,
                source_schema=schema,
                source_table=table,
                target=TableRef(catalog=f"tenant_{self.tenant_id}", schema_name="bronze", name=table.lower()),
                sync_mode="full",
            )
            await self.broker.publish(
                command,
                self.topology.cmd_extract,
                stream=self.topology.cmd_stream.name,
                headers={"Nats-Msg-Id": f"{run_id}.extract"},
            )
            return await asyncio.wait_for(outcome, OUTCOME_TIMEOUT)
        finally:
            for subscription in subscriptions:
                await subscription.unsubscribe()

    async def staged_batches(self, extracted: Extracted) -> list[pa.RecordBatch]:
        """Read the run's staged parts back, as the loader would."""
        staging = JetStreamStaging(self.broker.connection.jetstream(), self.topology, MAX_PART_BYTES)
        return [batch async for batch in staging.read(extracted.staged)]


@pytest.fixture
def settings(nats_settings: NatsSettings) -> ExtractorSettings:
    return ExtractorSettings(nats=nats_settings, connect_timeout=5.0, statement_timeout=30.0)


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

    await broker.start()
    try:
        yield fake
    finally:
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
