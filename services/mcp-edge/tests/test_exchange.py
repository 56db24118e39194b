"""JSON exchanges: a POST that wants no progress is answered as JSON; one that does keeps its SSE stream."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import httpx2

if TYPE_CHECKING:
    from conftest import Fakes

MCP_HEADERS = {"Accept": "application/json, text/event-stream", "Content-Type": "application/json"}


def _call(name: str, arguments: dict[str, Any], meta: dict[str, Any] | None = None) -> dict[str, Any]:
    params: dict[str, Any] = {"name": name, "arguments": arguments}
    if meta is not None:
        params["_meta"] = meta
    return {"jsonrpc": "2.0", "id": 7, "method": "tools/call", "params": params}


async def test_a_tool_call_without_a_progress_token_is_answered_with_one_json_body(edge_url: str, fakes: Fakes) -> None:
    async with httpx2.AsyncClient() as http:
        response = await http.post(edge_url, json=_call("list_sources", {}), headers=MCP_HEADERS)

    assert response.status_code == 200
    assert response.headers["content-type"] == "application/json"
    answer = response.json()
    assert answer["id"] == 7
    assert answer["result"]["isError"] is False
    assert "sources" in answer["result"]["structuredContent"]


async def test_a_tool_call_with_a_progress_token_is_answered_as_an_sse_stream(edge_url: str, fakes: Fakes) -> None:
    async with httpx2.AsyncClient() as http:
        body = _call("list_sources", {}, {"progressToken": "p1"})
        response = await http.post(edge_url, json=body, headers=MCP_HEADERS)

    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/event-stream")
    assert '"structuredContent"' in response.text


async def test_a_json_answer_carries_a_tool_error_as_the_sdk_would(edge_url: str, fakes: Fakes) -> None:
    async with httpx2.AsyncClient() as http:
        response = await http.post(edge_url, json=_call("no_such_tool", {}), headers=MCP_HEADERS)

    assert response.status_code == 200
    answer = response.json()
    assert answer["id"] == 7
    failed = answer["result"]["isError"] if "result" in answer else True
    assert failed
    assert "no_such_tool" in response.text


async def test_a_tool_call_from_a_foreign_origin_is_refused_before_it_runs(edge_url: str, fakes: Fakes) -> None:
    async with httpx2.AsyncClient() as http:
        response = await http.post(
            edge_url, json=_call("list_sources", {}), headers={**MCP_HEADERS, "Origin": "https://evil.example"}
        )

    assert response.status_code == 403
    assert "Origin" in response.text


async def test_a_client_that_accepts_only_sse_still_gets_its_answer_as_a_stream(edge_url: str, fakes: Fakes) -> None:
    headers = {**MCP_HEADERS, "Accept": "text/event-stream"}
    async with httpx2.AsyncClient() as http:
        response = await http.post(edge_url, json=_call("list_sources", {}), headers=headers)

    assert response.status_code == 406  # the SDK's own refusal: a stateless POST must accept JSON too
