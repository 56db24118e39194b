"""Spec error codes: a missing resource, a completion of nothing, and JSON-RPC batches by protocol version."""

from __future__ import annotations

import json

import httpx2
import pytest
from lakegate.common.errors import NotFound, Unavailable
from lakegate.edge.app import EdgeState
from mcp import Client
from mcp.shared.exceptions import MCPError
from mcp.types import PromptReference, RequestParams, ResourceTemplateReference

MCP_HEADERS = {"Accept": "application/json, text/event-stream", "Content-Type": "application/json"}
RESOURCE_NOT_FOUND = -32002
INVALID_PARAMS = -32602
INVALID_REQUEST = -32600
UNSUPPORTED_PROTOCOL_VERSION = -32022


@pytest.mark.parametrize(("mode", "code"), [("legacy", RESOURCE_NOT_FOUND), ("auto", INVALID_PARAMS)])
async def test_a_missing_resource_is_resource_not_found_in_the_handshake_era_and_invalid_params_in_2026(
    edge: EdgeState, mode: str, code: int
) -> None:
    async with Client(edge.server, mode=mode) as client:
        for uri in ("run://run_nope", "datasource://src_nope/status", "nope://x"):
            with pytest.raises(MCPError) as missing:
                await client.read_resource(uri)
            assert missing.value.error.code == code, uri
            assert missing.value.error.data == {"uri": uri}
    assert "does not exist" in missing.value.error.message or "Unknown resource" in missing.value.error.message


async def test_completing_an_unknown_prompt_template_or_argument_is_invalid_params_naming_what_exists(
    edge: EdgeState,
) -> None:
    asks = [
        (PromptReference(type="ref/prompt", name="nope"), "name", "the prompts are analyze_schema"),
        (ResourceTemplateReference(type="ref/resource", uri="nope://{x}"), "x", "the templates are datasource://"),
        (ResourceTemplateReference(type="ref/resource", uri="run://{id}"), "who", "its arguments are id"),
    ]
    async with Client(edge.server) as client:
        for ref, argument, hint in asks:
            with pytest.raises(MCPError) as refused:
                await client.complete(ref, {"name": argument, "value": ""})
            assert refused.value.error.code == INVALID_PARAMS
            assert hint in refused.value.error.message


async def test_a_batch_in_2025_03_26_is_answered_with_one_response_per_request(edge_url: str) -> None:
    batch = [
        {"jsonrpc": "2.0", "id": 2, "method": "tools/list"},
        {"jsonrpc": "2.0", "method": "notifications/cancelled", "params": {"requestId": 99}},
        {"jsonrpc": "2.0", "id": "three", "method": "resources/read", "params": {"uri": "run://run_nope"}},
        {"jsonrpc": "2.0", "id": 4, "method": "initialize", "params": {}},
    ]
    async with httpx2.AsyncClient(timeout=30) as http:
        unversioned = await http.post(edge_url, json=batch, headers=MCP_HEADERS)
        versioned = await http.post(edge_url, json=batch, headers={**MCP_HEADERS, "MCP-Protocol-Version": "2025-03-26"})
        only_notices = await http.post(edge_url, json=batch[1:2], headers=MCP_HEADERS)

    assert unversioned.status_code == 200
    assert unversioned.json() == versioned.json()
    answers = {answer["id"]: answer for answer in unversioned.json()}
    assert set(answers) == {2, "three", 4}
    assert "sync_table_to_bronze" in {tool["name"] for tool in answers[2]["result"]["tools"]}
    assert answers["three"]["error"]["code"] == RESOURCE_NOT_FOUND
    assert answers[4]["error"]["code"] == INVALID_REQUEST
    assert only_notices.status_code == 202


@pytest.mark.parametrize("version", ["2025-06-18", "2025-11-25", "2026-07-28"])
async def test_a_batch_under_a_later_version_is_one_clear_json_rpc_error(edge_url: str, version: str) -> None:
    batch = [{"jsonrpc": "2.0", "id": 1, "method": "ping"}, {"jsonrpc": "2.0", "id": 2, "method": "ping"}]
    async with httpx2.AsyncClient(timeout=30) as http:
        answer = await http.post(edge_url, json=batch, headers={**MCP_HEADERS, "MCP-Protocol-Version": version})

    assert answer.status_code == 400
    body = answer.json()
    assert body["id"] is None
    assert body["error"]["code"] == INVALID_REQUEST
    assert f"speaks {version}: send one JSON-RPC message per POST" in body["error"]["message"]
    assert "pydantic" not in json.dumps(body)


@pytest.mark.parametrize("mode", ["legacy", "auto"])
async def test_calling_an_unknown_tool_is_invalid_params_not_a_tool_result(edge: EdgeState, mode: str) -> None:
    async with Client(edge.server, mode=mode) as client:
        with pytest.raises(MCPError) as unknown:
            await client.call_tool("sync_everything", {})
    assert unknown.value.error.code == INVALID_PARAMS
    assert "unknown tool 'sync_everything'" in unknown.value.error.message
    assert unknown.value.error.data == {"name": "sync_everything"}


async def test_an_unsupported_protocol_version_header_is_400_naming_the_versions_spoken(edge_url: str) -> None:
    ping = {"jsonrpc": "2.0", "id": 1, "method": "ping"}
    async with httpx2.AsyncClient(timeout=30) as http:
        answer = await http.post(edge_url, json=ping, headers={**MCP_HEADERS, "MCP-Protocol-Version": "1999-01-01"})
        foreign = await http.post(
            edge_url,
            json=ping,
            headers={**MCP_HEADERS, "MCP-Protocol-Version": "1999-01-01", "Origin": "http://evil.example"},
        )

    assert answer.status_code == 400
    error = answer.json()["error"]
    assert error["code"] == UNSUPPORTED_PROTOCOL_VERSION
    assert "unsupported MCP-Protocol-Version '1999-01-01'" in error["message"]
    assert error["data"]["requested"] == "1999-01-01"
    assert {"2025-03-26", "2025-11-25", "2026-07-28"} <= set(error["data"]["supported"])
    assert foreign.status_code == 403


INTERNAL_ERROR = -32603


@pytest.mark.parametrize("path", ["json exchange", "sse stream", "in-memory dispatcher"])
async def test_an_exception_no_handler_maps_is_internal_error_without_its_text(
    edge: EdgeState, edge_url: str, path: str
) -> None:
    async def explode(ctx: object, params: RequestParams) -> dict[str, object]:
        raise RuntimeError("nats://reader:hunter2@10.0.0.7:4222 refused the connection")

    edge.server._lowlevel_server.add_request_handler("lakegate/explode", RequestParams, explode)
    request = {"jsonrpc": "2.0", "id": 7, "method": "lakegate/explode", "params": {}}
    if path == "in-memory dispatcher":
        async with Client(edge.server, mode="legacy") as client:
            with pytest.raises(MCPError) as raised:
                await client.session._dispatcher.send_raw_request("lakegate/explode", {}, {})
        error = raised.value.error.model_dump()
    else:
        if path == "sse stream":
            request["params"] = {"_meta": {"progressToken": "p1"}}
        headers = {**MCP_HEADERS, "MCP-Protocol-Version": "2025-11-25"}
        async with httpx2.AsyncClient(timeout=30) as http:
            answer = await http.post(edge_url, json=request, headers=headers)
        body = answer.text
        if answer.headers["content-type"].startswith("text/event-stream"):
            body = next(line[5:] for line in body.splitlines() if line.startswith("data:") and '"id"' in line)
        assert path == "json exchange" or answer.headers["content-type"].startswith("text/event-stream")
        error = json.loads(body)["error"]

    assert error["code"] == INTERNAL_ERROR
    assert "lakegate/explode" in error["message"]
    assert "hunter2" not in json.dumps(error)
    assert "RuntimeError" not in json.dumps(error)


async def test_a_lakegate_error_outside_a_tool_keeps_its_message_with_a_spec_code(edge: EdgeState) -> None:
    subject = edge.runtime.topology.sources_list

    async def unavailable(ctx: object, params: RequestParams) -> dict[str, object]:
        raise Unavailable(f"no answer on {subject}: check LAKEGATE_NATS_URL")

    async def missing(ctx: object, params: RequestParams) -> dict[str, object]:
        raise NotFound("source src_nope does not exist: list_sources shows yours")

    edge.server._lowlevel_server.add_request_handler("lakegate/unavailable", RequestParams, unavailable)
    edge.server._lowlevel_server.add_request_handler("lakegate/missing", RequestParams, missing)
    async with Client(edge.server, mode="legacy") as client:
        with pytest.raises(MCPError) as down:
            await client.session._dispatcher.send_raw_request("lakegate/unavailable", {}, {})
        with pytest.raises(MCPError) as absent:
            await client.session._dispatcher.send_raw_request("lakegate/missing", {}, {})

    assert down.value.error.code == INTERNAL_ERROR
    assert "LAKEGATE_NATS_URL" in down.value.error.message
    assert subject not in down.value.error.message  # NATS names are made public
    assert down.value.error.data == {"code": "unavailable"}
    assert absent.value.error.code == INVALID_PARAMS
    assert "src_nope" in absent.value.error.message
