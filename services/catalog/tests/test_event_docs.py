"""The published reference for subscribers: the AsyncAPI document and the example subscriber in `docs/`."""

from __future__ import annotations

import asyncio
import json
import re
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

from lakegate.catalog.app import CatalogState
from lakegate.catalog.asyncapi import document
from lakegate.common.contracts.events import SYNC_COMPLETED, SYNC_FAILED, SyncEvent
from lakegate.common.settings import NatsSettings

if TYPE_CHECKING:
    from conftest import Peer

DOCS = Path(__file__).resolve().parents[3] / "docs"


def test_the_checked_in_asyncapi_document_is_the_one_faststream_generates() -> None:
    checked_in = json.loads((DOCS / "asyncapi.json").read_text(encoding="utf-8"))
    assert checked_in == document(), (
        "docs/asyncapi.json is stale: regenerate it with `uv run python -m lakegate.catalog.asyncapi`"
    )


def test_the_asyncapi_document_describes_both_public_events_with_their_envelope() -> None:
    spec = document()

    channels = {channel["address"]: channel for channel in spec["channels"].values()}
    assert set(channels) == {"lakegate.events.{tenant_id}.sync.completed", "lakegate.events.{tenant_id}.sync.failed"}
    for channel in channels.values():
        assert "tenant_id" in channel["parameters"]
    payloads = {message["payload"]["$ref"] for message in spec["components"]["messages"].values()}
    assert payloads == {"#/components/schemas/SyncEvent"}
    envelope = spec["components"]["schemas"]["SyncEvent"]
    assert set(envelope["properties"]["type"]["enum"]) == {SYNC_COMPLETED, SYNC_FAILED}
    outcome = spec["components"]["schemas"]["SyncOutcome"]["properties"]
    assert {"row_count", "bytes", "duration_seconds", "schema_changes", "cursor", "schedule_id"} <= set(outcome)
    assert all(operation["action"] == "send" for operation in spec["operations"].values())


async def _subscriber(settings: NatsSettings, tenant_id: str, *extra: str) -> str:
    """Run docs/examples/subscriber.py for one event; what it printed."""
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        str(DOCS / "examples" / "subscriber.py"),
        "--url",
        settings.url,
        "--prefix",
        settings.prefix,
        "--tenant",
        tenant_id,
        "--count",
        "1",
        *extra,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        out, err = await asyncio.wait_for(process.communicate(), 30)
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
    assert process.returncode == 0, err.decode()
    return out.decode()


async def test_the_example_subscriber_replays_from_the_start_resumes_where_it_stopped_or_starts_at_a_time(
    catalog: CatalogState, peer: Peer, nats_settings: NatsSettings
) -> None:
    source = await peer.register("shop")
    events = await peer.events()
    first = await peer.succeed(await peer.start(source.connection_id), events, rows=12)
    between = datetime.now(UTC)
    second = await peer.fail(await peer.start(source.connection_id), events)

    from_start = await _subscriber(nats_settings, peer.tenant_id)
    resumed = await _subscriber(nats_settings, peer.tenant_id)
    from_between = await _subscriber(nats_settings, peer.tenant_id, "--name", "late", "--since", between.isoformat())

    printed_time, *printed = from_start.split()
    assert datetime.fromisoformat(printed_time) == first.time
    assert printed == [
        SYNC_COMPLETED,
        first.subject,
        "succeeded",
        "public.orders",
        "->",
        str(peer.target()),
        "rows:",
        "12",
    ]
    assert resumed.split()[1:4] == [SYNC_FAILED, second.subject, "failed"]
    assert from_between.split()[1:4] == [SYNC_FAILED, second.subject, "failed"]


def test_the_example_events_in_the_docs_are_valid_sync_events() -> None:
    text = (DOCS / "events.md").read_text(encoding="utf-8")
    examples = re.findall(r"```json\n(.*?)\n```", text, flags=re.DOTALL)

    events = [SyncEvent.model_validate_json(example) for example in examples]

    assert [(event.type, event.data.status) for event in events] == [
        (SYNC_COMPLETED, "succeeded"),
        (SYNC_FAILED, "cancelled"),
    ]
