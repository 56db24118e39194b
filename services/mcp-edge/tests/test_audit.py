"""The audit trail: one record per tool call on the CMD stream, secrets removed, published off the call's path."""

from __future__ import annotations

import asyncio
import base64
import logging
from typing import TYPE_CHECKING

import httpx2
import nats
import pytest
from lakegate.common.contracts.audit import AuditRecord
from lakegate.common.settings import NatsSettings
from lakegate.edge.app import EdgeState, serve
from lakegate.edge.config import EdgeSettings
from lakegate.edge.redaction import redact_arguments
from mcp import Client
from mcp.client.context import ClientRequestContext
from mcp.types import CreateMessageRequestParams, CreateMessageResult, TextContent

if TYPE_CHECKING:
    from conftest import Fakes


async def audit_records(nats_settings: NatsSettings, count: int) -> list[tuple[AuditRecord, str]]:
    """The first `count` records published, each with its Nats-Msg-Id; waits for them up to 10 s."""
    topology = nats_settings.topology
    nc = await nats.connect(nats_settings.url)
    try:
        sub = await nc.jetstream().pull_subscribe(topology.cmd_audit, stream=topology.cmd_stream.name)
        records: list[tuple[AuditRecord, str]] = []
        async with asyncio.timeout(10):
            while len(records) < count:
                try:
                    messages = await sub.fetch(count - len(records), timeout=2)
                except nats.errors.TimeoutError:
                    continue
                for message in messages:
                    records.append(
                        (AuditRecord.model_validate_json(message.data), (message.headers or {})["Nats-Msg-Id"])
                    )
                    await message.ack()
        return records
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
    assert record.id == msg_id
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
