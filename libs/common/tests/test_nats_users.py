"""The NATS users every deployment renders: a real nats-server enforcing them, real clients refused."""

from __future__ import annotations

import asyncio
import json
import secrets
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path

import nats
import nats.errors
import pytest
from lakegate.common.broker import ensure_streams
from lakegate.common.nats_users import SERVICE_USERS, deployment_users, inbox_prefix, tenant_subscriber
from lakegate.common.settings import NatsSettings
from lakegate.common.subjects import Topology
from lakegate.devstack.nats_server import NatsServer
from lakegate.devstack.ports import free_port
from nats.aio.client import Client
from nats.aio.msg import Msg
from nats.js.api import ConsumerConfig
from pydantic import ValidationError

TOPOLOGY = Topology("users")
Connect = Callable[..., Awaitable[Client]]
TENANTS = ("acme", "globex")


@pytest.fixture(scope="module")
def secured(tmp_path_factory: pytest.TempPathFactory) -> Iterator[NatsServer]:
    names = [*SERVICE_USERS, *(tenant_subscriber(t) for t in TENANTS), "admin"]
    passwords = {name: secrets.token_urlsafe(16) for name in names}
    users = deployment_users(TOPOLOGY, passwords, tenants=TENANTS)
    server = NatsServer(Path(tmp_path_factory.mktemp("secured-nats")), free_port(), users=users)
    server.start()
    yield server
    server.stop()


class Refusals:
    """The asynchronous errors the server sent one client (permission violations arrive this way)."""

    def __init__(self) -> None:
        self.errors: asyncio.Queue[str] = asyncio.Queue()

    async def record(self, error: Exception) -> None:
        await self.errors.put(str(error).lower())

    async def next(self) -> str:
        return await asyncio.wait_for(self.errors.get(), timeout=10)


@pytest.fixture
async def login(secured: NatsServer) -> AsyncIterator[Connect]:
    opened: list[Client] = []

    async def connect(user: str, refusals: Refusals | None = None) -> Client:
        nc = await nats.connect(
            secured.url,
            user=user,
            password=secured.password(user),
            inbox_prefix=inbox_prefix(user),
            error_cb=(refusals or Refusals()).record,
            allow_reconnect=False,
        )
        opened.append(nc)
        return nc

    yield connect
    for nc in opened:
        await nc.close()


async def _connect_raw(server: NatsServer, credentials: dict[str, str]) -> str:
    """What the server answers a client's CONNECT, in the wire protocol (nats-py leaks a refused socket)."""
    reader, writer = await asyncio.open_connection(server.host, server.port)
    try:
        assert (await reader.readline()).startswith(b"INFO ")
        writer.write(b"CONNECT " + json.dumps({"verbose": False, **credentials}).encode() + b"\r\nPING\r\n")
        await writer.drain()
        return (await asyncio.wait_for(reader.readline(), timeout=10)).decode().strip()
    finally:
        writer.close()
        await writer.wait_closed()


async def test_a_client_without_credentials_or_with_a_wrong_password_is_refused(secured: NatsServer) -> None:
    for credentials in ({}, {"user": "edge", "pass": "not-the-password"}, {"user": "nobody", "pass": "x"}):
        assert await _connect_raw(secured, credentials) == "-ERR 'Authorization Violation'", credentials
    assert await _connect_raw(secured, {"user": "edge", "pass": secured.password("edge")}) == "PONG"


async def test_the_edge_is_the_only_user_that_sends_a_tenants_requests(login: Connect) -> None:
    """Extractor and loader may not register a source or start a run; the loader may not ask for credentials."""
    connect = login
    admin: Client = await connect("admin")
    seen: asyncio.Queue[str] = asyncio.Queue()

    async def record(msg: Msg) -> None:
        await seen.put(msg.subject)

    await admin.subscribe(f"{TOPOLOGY.prefix}.>", cb=record)
    await admin.flush()
    attempts = {
        "extractor": (TOPOLOGY.sources_register, TOPOLOGY.runs_start, TOPOLOGY.warehouse_query),
        "loader": (TOPOLOGY.sources_credentials, TOPOLOGY.sources_register, TOPOLOGY.source_query),
        "catalog": (TOPOLOGY.warehouse_query, TOPOLOGY.source_query, TOPOLOGY.sources_credentials),
    }
    for user, forbidden in attempts.items():
        allowed = TOPOLOGY.cancel(f"after_{user}") if user == "catalog" else TOPOLOGY.progress(f"after_{user}")
        refusals = Refusals()
        nc: Client = await connect(user, refusals)
        for subject in forbidden:
            await nc.publish(subject, json.dumps({"tenant_id": "acme"}).encode())
            assert "permissions violation for publish" in await refusals.next()
        # A subject the user may publish, sent after the refused ones on the same connection: the
        # server handles a connection's messages in order, so by the time it arrives none got through.
        await nc.publish(allowed, b"{}")
        assert await asyncio.wait_for(seen.get(), timeout=10) == allowed
    edge: Client = await connect("edge")
    await edge.publish(TOPOLOGY.sources_register, b"{}")
    assert await asyncio.wait_for(seen.get(), timeout=10) == TOPOLOGY.sources_register


async def test_no_user_reads_the_replies_of_another(login: Connect) -> None:
    """The catalog's answer to the extractor's credentials request goes to the extractor's own inbox alone."""
    connect = login
    catalog: Client = await connect("catalog")

    async def answer(msg: Msg) -> None:
        await msg.respond(b'{"password": "only-for-the-extractor"}')

    await catalog.subscribe(TOPOLOGY.sources_credentials, cb=answer)
    await catalog.flush()
    for user in ("loader", "edge", tenant_subscriber("acme")):
        refusals = Refusals()
        eavesdropper: Client = await connect(user, refusals)
        for inbox in (f"{inbox_prefix('extractor')}.>", "_INBOX.>", ">"):
            await eavesdropper.subscribe(inbox)
            assert "permissions violation for subscription" in await refusals.next()
    extractor: Client = await connect("extractor")
    reply = await extractor.request(TOPOLOGY.sources_credentials, b"{}", timeout=10)
    assert reply.data == b'{"password": "only-for-the-extractor"}'


async def test_a_tenant_subscriber_sees_only_its_own_tenants_events(login: Connect) -> None:
    connect = login
    catalog: Client = await connect("catalog")
    js = catalog.jetstream()
    await ensure_streams(js, TOPOLOGY)
    for tenant in TENANTS:
        for outcome in ("completed", "failed"):
            await js.publish(TOPOLOGY.sync_event(tenant, outcome), json.dumps({"tenant": tenant}).encode())

    refusals = Refusals()
    user = tenant_subscriber("acme")
    acme: Client = await connect(user, refusals)
    live: asyncio.Queue[bytes] = asyncio.Queue()

    async def on_live(msg: Msg) -> None:
        await live.put(msg.data)

    # Live: its own tenant's subjects only.
    await acme.subscribe(f"{TOPOLOGY.prefix}.events.acme.>", cb=on_live)
    await acme.subscribe(f"{TOPOLOGY.prefix}.events.globex.>", cb=on_live)
    assert "permissions violation for subscription" in await refusals.next()
    await acme.subscribe(f"{TOPOLOGY.prefix}.events.>", cb=on_live)
    assert "permissions violation for subscription" in await refusals.next()
    await js.publish(TOPOLOGY.sync_event("globex", "completed"), b'{"tenant": "globex"}')
    await js.publish(TOPOLOGY.sync_event("acme", "completed"), b'{"tenant": "acme"}')
    assert json.loads(await asyncio.wait_for(live.get(), timeout=10)) == {"tenant": "acme"}

    # Replayed: through its own durable consumer, which it may create only over its own tenant's subjects.
    ajs = acme.jetstream()
    stream = TOPOLOGY.events_stream.name
    with pytest.raises(nats.errors.TimeoutError):  # the refused API request gets no answer
        await ajs.add_consumer(
            stream,
            ConsumerConfig(
                name=user,
                durable_name=user,
                filter_subject=TOPOLOGY.sync_events("globex"),
            ),
            timeout=3,
        )
    assert "permissions violation for publish" in await refusals.next()
    sub = await ajs.pull_subscribe(
        f"{TOPOLOGY.prefix}.events.acme.>", durable=user, stream=stream, config=ConsumerConfig(name=user)
    )
    replayed: list[object] = []
    while len(replayed) < 3:
        for msg in await sub.fetch(3, timeout=10):
            replayed.append(json.loads(msg.data))
            await msg.ack()
    assert replayed == [{"tenant": "acme"}] * 3


def test_nats_settings_read_the_password_file_and_name_what_to_fix(tmp_path: Path) -> None:
    secret = tmp_path / "edge.password"
    secret.write_text("from-the-file\n")
    settings = NatsSettings(user="edge", password_file=secret)
    assert settings.password is not None
    assert settings.password.get_secret_value() == "from-the-file"
    assert "from-the-file" not in repr(settings)

    with pytest.raises(ValidationError, match=r"LAKEGATE_NATS_PASSWORD_FILE=.*cannot be read"):
        NatsSettings(user="edge", password_file=tmp_path / "missing")
    with pytest.raises(ValidationError, match="LAKEGATE_NATS_USER is not"):
        NatsSettings(password="orphan")
