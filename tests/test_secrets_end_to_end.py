"""No NATS message carries a source password: a subscriber to every subject watches a whole session."""

from __future__ import annotations

import json

import nats
from lakegate.devstack.stack import Stack
from mcp import Client
from nats.aio.msg import Msg

from tests.conftest import Source
from tests.mcp_calls import call
from tests.sources import create_orders_table
from tests.spellings import spellings


async def test_a_subscriber_to_every_subject_sees_no_password_during_connect_and_a_whole_sync(
    stack: Stack, source: Source, unique: str
) -> None:
    await create_orders_table(source.admin_dsn, rows=500)
    captured: list[tuple[str, bytes]] = []

    async def capture(msg: Msg) -> None:
        headers = json.dumps(msg.headers or {}).encode()
        captured.append((msg.subject, msg.data + b"\n" + headers))

    # As `admin`, who may read every subject: what no user can see in clear, no narrower user can.
    watcher = await nats.connect(stack.urls.nats, **stack.nats_credentials("admin"))
    try:
        await watcher.subscribe(">", cb=capture)
        await watcher.flush()
        async with Client(stack.urls.mcp) as client:
            connection = await call(client, "connect_postgres", source.connect_arguments(f"sealed{unique}"))
            ref = {"connection_id": connection["connection_id"]}
            await call(client, "test_connection", ref)
            await call(client, "list_source_tables", ref)
            run = await call(client, "sync_table_to_bronze", {**ref, "table_name": "orders"})
            assert run["status"] == "succeeded", run
        await watcher.flush()
    finally:
        await watcher.drain()

    subjects = {subject for subject, _ in captured}
    # The watcher saw the session: the register request, the extractor's credential look-ups, the run's steps.
    assert any(subject.endswith("rpc.catalog.sources.register") for subject in subjects), sorted(subjects)
    assert any(subject.endswith("rpc.catalog.sources.credentials") for subject in subjects), sorted(subjects)
    assert any(".run." in subject for subject in subjects), sorted(subjects)
    register = next(data for subject, data in captured if subject.endswith("rpc.catalog.sources.register"))
    assert b'"sealed_password"' in register  # the secret went by, sealed for the extractor
    leaks = [subject for subject, data in captured for form in spellings(source.password) if form in data]
    assert not leaks, f"the password travelled in clear on {sorted(set(leaks))}"
