"""The audit trail: one record per tool call on the CMD stream, secrets removed, published off the call's path."""

from __future__ import annotations

import asyncio
import base64
import logging
from datetime import UTC, datetime
from typing import TYPE_CHECKING

import httpx2
import nats
import pytest
from lakegate.common.contracts.audit import AuditRecord, AuditRecords
from lakegate.common.settings import NatsSettings
from lakegate.edge.app import EdgeState, serve
from lakegate.edge.audit import AuditTrail
from lakegate.edge.config import EdgeSettings
from lakegate.edge.redaction import redact_arguments
from mcp import Client
from mcp.client.context import ClientRequestContext
from mcp.types import CreateMessageRequestParams, CreateMessageResult, TextContent

if TYPE_CHECKING:
    from conftest import Fakes


async def audit_records(nats_settings: NatsSettings, count: int) -> list[tuple[AuditRecord, str]]:
    """The first `count` records published, each with its batch's Nats-Msg-Id; waits for them up to 10 s."""
    return [(record, msg_id) for batch, msg_id in await audit_batches(nats_settings, count) for record in batch]


async def audit_batches(nats_settings: NatsSettings, count: int) -> list[tuple[list[AuditRecord], str]]:
    """The batches holding the first `count` records published, each with its Nats-Msg-Id."""
    topology = nats_settings.topology
    nc = await nats.connect(nats_settings.url)
    try:
        sub = await nc.jetstream().pull_subscribe(topology.cmd_audit, stream=topology.cmd_stream.name)
        batches: list[tuple[list[AuditRecord], str]] = []
        async with asyncio.timeout(10):
            while sum(len(batch) for batch, _ in batches) < count:
                try:
                    messages = await sub.fetch(1, timeout=2)
                except nats.errors.TimeoutError:
                    continue
                for message in messages:
                    batch = AuditRecords.model_validate_json(message.data).records
                    batches.append((batch, (message.headers or {})["Nats-Msg-Id"]))
                    await message.ack()
        return batches
    finally:
        await nc.close()


async def test_each_call_is_recorded_with_who_what_outcome_and_time_and_no_password(
    edge: EdgeState, nats_settings: NatsSettings, tenant_id: str
) -> None:
    async with Client(edge.server) as client:
        await client.call_tool(
            "connect_postgres",
            {"name": "shop", "host": "db.internal", "database": "shop", "user": "reader", "password": "pw-Secret-1"},
        )

    [(record, msg_id)] = await audit_records(nats_settings, 1)
    assert msg_id == f"{record.id}+1"
    assert (record.tenant_id, record.actor, record.tool, record.outcome) == (
        tenant_id,
        "local",
        "connect_postgres",
        "ok",
    )
    assert record.error_code is None
    assert record.arguments["password"] == "[redacted]"
    assert record.arguments["host"] == "db.internal"
    assert "pw-Secret-1" not in record.model_dump_json()
    assert record.duration_ms > 0
    assert record.at.tzinfo is not None


async def test_failed_calls_are_recorded_with_the_error_code(edge: EdgeState, nats_settings: NatsSettings) -> None:
    async with Client(edge.server) as client:
        await client.call_tool("query_sql", {"sql": "DROP TABLE x"})
        await client.call_tool("get_sync_run", {"run_id": "run_nope"})
        await client.call_tool("query_sql", {"sql": "SELECT 1", "max_rows": 0})

    records = [record for record, _ in await audit_records(nats_settings, 3)]
    assert [(r.tool, r.outcome, r.error_code) for r in records] == [
        ("query_sql", "error", "invalid_input"),
        ("get_sync_run", "error", "not_found"),
        ("query_sql", "error", "invalid_input"),
    ]


async def test_file_contents_and_long_arguments_are_shortened(edge: EdgeState, nats_settings: NatsSettings) -> None:
    content = base64.b64encode(b"a,b\n1,2\n").decode()
    long_sql = "SELECT " + ", ".join(f"c{n}" for n in range(400)) + " FROM t"
    async with Client(edge.server) as client:
        await client.call_tool("upload_file", {"file_content": content, "file_name": "t.csv", "dataset_name": "t"})
        await client.call_tool("query_sql", {"sql": long_sql})

    upload, query = (record for record, _ in await audit_records(nats_settings, 2))
    assert upload.arguments["file_content"] == f"[{len(content)} base64 characters]"
    assert upload.arguments["dataset_name"] == "t"
    assert query.arguments["sql"].startswith("SELECT c0, c1")
    assert query.arguments["sql"].endswith(f"… ({len(long_sql):,} characters)")


async def test_a_call_that_asks_the_client_for_input_first_is_recorded_once(
    edge: EdgeState, nats_settings: NatsSettings
) -> None:
    async def model(context: ClientRequestContext, params: CreateMessageRequestParams) -> CreateMessageResult:
        return CreateMessageResult(role="assistant", content=TextContent(type="text", text="fine"), model="m")

    async with Client(edge.server, sampling_callback=model) as client:
        await client.call_tool("explain_data", {"sql": "SELECT 1"})
        await client.call_tool("list_tables", {})

    records = [record for record, _ in await audit_records(nats_settings, 2)]
    assert [(r.tool, r.outcome) for r in records] == [("explain_data", "ok"), ("list_tables", "ok")]


async def test_a_call_succeeds_even_when_its_audit_record_cannot_be_published(
    edge_settings: EdgeSettings, fakes: Fakes, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="lakegate.edge.audit")
    async with serve(edge_settings) as edge:
        await edge.link.ready()  # NATS is connected in the background
        js = edge.runtime.broker.connection.jetstream()
        await js.delete_stream(edge.runtime.topology.cmd_stream.name)
        async with Client(edge.server) as client:
            result = await client.call_tool("list_tables", {})
        assert not result.is_error
    # Leaving `serve` waits for the trail to finish trying, so its verdict is in the log now.
    assert any("was not published" in r.getMessage() and "list_tables" in r.getMessage() for r in caplog.records)


def test_secrets_are_removed_at_any_depth_and_contents_kept_by_size_only() -> None:
    shown = redact_arguments(
        {
            "login": {"user": "u", "password": "p1", "nested": [{"client_secret": "s1"}]},
            "api_token": "t1",
            "file_content": "abcd",
            "max_rows": 5,
            "sql": "SELECT 1",
        }
    )

    assert shown == {
        "login": '{"user": "u", "password": "[redacted]", "nested": [{"client_secret": "[redacted]"}]}',
        "api_token": "[redacted]",
        "file_content": "[4 base64 characters]",
        "max_rows": "5",
        "sql": "SELECT 1",
    }


async def test_nul_characters_non_object_and_huge_arguments_are_recorded_safely(
    edge_url: str, nats_settings: NatsSettings
) -> None:
    headers = {"Accept": "application/json, text/event-stream", "Content-Type": "application/json"}
    bodies = [
        {"name": "query_sql", "arguments": {"sql": "SELECT '\u0000'", "pass\u0000word": "pw-Nul-1"}},
        {"name": "query_sql", "arguments": ["SELECT 1", {"password": "pw-List-1"}]},
        {"name": "query_sql", "arguments": {f"a{n}": "x" * 10_000 for n in range(200)}},
    ]
    async with httpx2.AsyncClient() as http:
        for number, params in enumerate(bodies):
            call = {"jsonrpc": "2.0", "id": number, "method": "tools/call", "params": params}
            await http.post(edge_url, json=call, headers={**headers, "MCP-Protocol-Version": "2025-06-18"})

    records = [record for record, _ in await audit_records(nats_settings, 3)]
    text = "".join(record.model_dump_json() for record in records)
    assert "\u0000" not in "".join(v for record in records for v in [*record.arguments, *record.arguments.values()])
    assert records[0].arguments["sql"] == "SELECT '\\u0000'"
    assert records[1].arguments["[arguments]"].startswith('["SELECT 1"')
    assert records[2].arguments["[more]"] == "150 more arguments not recorded"
    assert len(records[2].arguments) == 51
    assert "pw-Nul-1" not in text
    assert "pw-List-1" not in text


def _call(tenant_id: str, n: int) -> AuditRecord:
    return AuditRecord(
        id=f"call_{n:03d}",
        tenant_id=tenant_id,
        actor="local",
        tool="list_tables",
        arguments={"n": str(n)},
        outcome="ok",
        duration_ms=1.0,
        at=datetime.now(UTC),
    )


async def test_records_queued_together_go_out_in_batches_and_none_is_lost_when_the_trail_stops(
    edge: EdgeState, nats_settings: NatsSettings, tenant_id: str
) -> None:
    trail = AuditTrail(edge.runtime.broker, nats_settings.topology, batch_records=4)
    for n in range(10):
        trail.record(_call(tenant_id, n))  # queued before the trail publishes, as under load

    async with trail.running():
        pass  # stops at once: leaving `running` flushes what is queued

    batches = await audit_batches(nats_settings, 10)
    assert [len(batch) for batch, _ in batches] == [4, 4, 2]
    assert [record.id for batch, _ in batches for record in batch] == [f"call_{n:03d}" for n in range(10)]
    assert [msg_id for _, msg_id in batches] == ["call_000+4", "call_004+4", "call_008+2"]


async def taken(trail: AuditTrail) -> None:
    """Until the trail has taken every queued record, as between two calls of one caller."""
    async with asyncio.timeout(5):
        while trail.queued:  # noqa: ASYNC110 - the trail signals nothing when it takes a record, so poll its queue
            await asyncio.sleep(0.01)


async def test_a_record_alone_waits_for_the_next_calls_and_they_go_out_together(
    edge: EdgeState, nats_settings: NatsSettings, tenant_id: str
) -> None:
    trail = AuditTrail(edge.runtime.broker, nats_settings.topology, linger_seconds=1.0)
    async with trail.running():
        trail.record(_call(tenant_id, 0))
        await taken(trail)
        trail.record(_call(tenant_id, 1))
        trail.record(_call(tenant_id, 2))

    batches = await audit_batches(nats_settings, 3)
    assert [msg_id for _, msg_id in batches] == ["call_000+3"]


async def test_without_a_linger_a_lone_record_goes_out_alone(
    edge: EdgeState, nats_settings: NatsSettings, tenant_id: str
) -> None:
    trail = AuditTrail(edge.runtime.broker, nats_settings.topology, linger_seconds=0)
    async with trail.running():
        trail.record(_call(tenant_id, 0))
        await taken(trail)
        trail.record(_call(tenant_id, 1))

    batches = await audit_batches(nats_settings, 2)
    assert [msg_id for _, msg_id in batches] == ["call_000+1", "call_001+1"]
