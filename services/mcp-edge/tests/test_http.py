"""The streamable-HTTP transport: a real MCP client over uvicorn, and the checks in front of it."""

from __future__ import annotations

import asyncio
import base64
from typing import TYPE_CHECKING

import httpx2
from lakegate.edge.app import EdgeState
from mcp import Client
from mcp.client.streamable_http import streamable_http_client

if TYPE_CHECKING:
    from conftest import Fakes

INITIALIZE = {
    "jsonrpc": "2.0",
    "id": 1,
    "method": "initialize",
    "params": {"protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "probe", "version": "0"}},
}
MCP_HEADERS = {"Accept": "application/json, text/event-stream", "Content-Type": "application/json"}


async def test_a_sync_over_streamable_http_streams_progress_to_the_client(edge_url: str, fakes: Fakes) -> None:
    reports: list[tuple[float, str | None]] = []

    async def on_progress(progress: float, total: float | None, message: str | None) -> None:
        reports.append((progress, message))

    async with Client(edge_url) as client:
        connected = await client.call_tool(
            "connect_postgres",
            {"name": "shop", "host": "db.internal", "database": "shop", "user": "u", "password": "p"},
        )
        assert connected.structured_content is not None
        connection_id = connected.structured_content["connection_id"]
        result = await client.call_tool(
            "sync_table_to_bronze",
            {"connection_id": connection_id, "table_name": "orders"},
            progress_callback=on_progress,
        )

    assert not result.is_error
    assert result.structured_content is not None
    assert result.structured_content["status"] == "succeeded"
    assert result.structured_content["row_count"] == 1000
    assert any("extracting public.orders" in (message or "") for _, message in reports)
    assert reports[-1][0] == 4.0


async def test_a_client_from_a_loopback_origin_is_served(edge_url: str) -> None:
    async with (
        httpx2.AsyncClient(headers={"Origin": "http://localhost:3000"}) as http,
        Client(streamable_http_client(edge_url, http_client=http)) as client,
    ):
        tools = await client.list_tools()

    assert "query_sql" in {tool.name for tool in tools.tools}


async def test_a_request_from_a_foreign_origin_is_refused(edge_url: str, fakes: Fakes) -> None:
    async with httpx2.AsyncClient() as http:
        response = await http.post(edge_url, json=INITIALIZE, headers={**MCP_HEADERS, "Origin": "https://evil.example"})

    assert response.status_code == 403
    assert "Origin" in response.text


async def test_a_request_for_a_foreign_host_name_is_refused(edge_url: str) -> None:
    async with httpx2.AsyncClient() as http:
        response = await http.post(edge_url, json=INITIALIZE, headers={**MCP_HEADERS, "Host": "rebound.example:80"})

    assert response.status_code == 421


async def test_health_and_readiness_probes_answer_on_the_http_port(edge_url: str, edge: EdgeState) -> None:
    base = edge_url.removesuffix(edge.settings.path)
    async with httpx2.AsyncClient() as http:
        health = await http.get(f"{base}/healthz")
        ready = await http.get(f"{base}/readyz")

    assert (health.status_code, health.text) == (200, "ok\n")
    assert (ready.status_code, ready.text) == (200, "ok\n")


async def test_an_upload_bigger_than_the_sdks_default_request_limit_is_accepted_over_http(
    edge_url: str, fakes: Fakes
) -> None:
    rows = b"id,name\n" + b"".join(b"%d,row number %d\n" % (n, n) for n in range(250_000))
    assert len(base64.b64encode(rows)) > 4 * 1024 * 1024
    async with Client(edge_url) as client:
        result = await client.call_tool(
            "upload_file",
            {"file_content": base64.b64encode(rows).decode(), "file_name": "rows.csv", "dataset_name": "rows"},
        )

    assert not result.is_error, result.content
    assert result.structured_content is not None
    assert result.structured_content["row_count"] == 250_000
    assert base64.b64decode(fakes.loader.uploads[0].content_base64) == rows


async def test_a_call_past_the_request_limit_is_answered_as_a_tool_error_naming_the_limit(
    edge_url: str, edge: EdgeState, fakes: Fakes
) -> None:
    limit = edge.settings.max_request_bytes
    content = "A" * (limit + 1024)
    async with Client(edge_url) as client:
        result = await client.call_tool(
            "upload_file", {"file_content": content, "file_name": "big.csv", "dataset_name": "big"}
        )
        listed = await client.list_tools()  # the session is still usable

    assert result.is_error
    text = result.content[0].text if result.content[0].type == "text" else ""
    assert f"more than the {limit} bytes one call may carry" in text
    assert "file_content must decode to at most" in text
    assert listed.tools
    assert fakes.loader.uploads == []


async def test_a_post_past_the_limit_that_is_not_a_tool_call_still_gets_413(edge_url: str, edge: EdgeState) -> None:
    body = b'{"jsonrpc": "2.0", "method": "notifications/x", "params": {"p": "' + b"A" * edge.settings.max_request_bytes
    async with httpx2.AsyncClient() as http:
        response = await http.post(edge_url, content=body + b'"}}', headers=MCP_HEADERS)

    assert response.status_code == 413


async def test_a_cancel_posted_in_the_handshake_era_reaches_the_sync_in_another_post_and_cancels_its_run(
    edge_url: str, edge: EdgeState, fakes: Fakes
) -> None:
    fakes.catalog.plans["huge"] = "stall"
    headers = {**MCP_HEADERS, "MCP-Protocol-Version": "2025-06-18"}
    call = {
        "jsonrpc": "2.0",
        "id": 7,
        "method": "tools/call",
        "params": {
            "name": "sync_table_to_bronze",
            "arguments": {"connection_id": "src_seed", "table_name": "huge"},
            "_meta": {"progressToken": "p7"},
        },
    }
    told = asyncio.Event()

    async def on_cancel(msg: object) -> None:
        told.set()

    async with httpx2.AsyncClient(timeout=30) as http:
        progressing = asyncio.Event()
        answer: list[str] = []

        async def sync() -> None:
            async with http.stream("POST", edge_url, json=call, headers=headers) as response:
                async for chunk in response.aiter_text():
                    answer.append(chunk)
                    if "notifications/progress" in chunk:
                        progressing.set()

        streaming = asyncio.create_task(sync())
        await asyncio.wait_for(progressing.wait(), 10)  # the edge follows the run
        [run_id] = fakes.catalog.runs
        nats = edge.runtime.broker.connection
        watch = await nats.subscribe(edge.runtime.topology.cancel(run_id), cb=on_cancel)
        await nats.flush()
        cancel = {"jsonrpc": "2.0", "method": "notifications/cancelled", "params": {"requestId": 7}}
        posted = await http.post(edge_url, json=cancel, headers=headers)
        await asyncio.wait_for(told.wait(), 10)
        await watch.unsubscribe()
        await asyncio.wait_for(streaming, 10)

    assert posted.status_code == 202
    assert fakes.catalog.runs[run_id].status == "cancelled"
    assert "-32800" in "".join(answer)


async def test_a_get_on_the_stateless_endpoint_is_answered_405_with_allow_post(edge_url: str) -> None:
    async with httpx2.AsyncClient(timeout=10) as http:
        answer = await http.get(edge_url, headers={"Accept": "text/event-stream"})

    assert answer.status_code == 405
    assert answer.headers["allow"] == "POST"
