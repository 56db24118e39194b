"""Spec error codes: a missing resource, a completion of nothing, and JSON-RPC batches by protocol version."""

from __future__ import annotations

import json

import httpx2
import pytest
from lakegate.edge.app import EdgeState
from mcp import Client
from mcp.shared.exceptions import MCPError
from mcp.types import PromptReference, ResourceTemplateReference

MCP_HEADERS = {"Accept": "application/json, text/event-stream", "Content-Type": "application/json"}
RESOURCE_NOT_FOUND = -32002
INVALID_PARAMS = -32602
INVALID_REQUEST = -32600


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
