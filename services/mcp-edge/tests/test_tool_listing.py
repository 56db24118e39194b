"""tools/list fits one 64 KiB line (some stdio clients read no longer lines) and keeps what a model needs."""

from __future__ import annotations

import inspect
import json
from typing import Any

import pytest
from lakegate.edge.app import EdgeState
from mcp import Client
from mcp.server.mcpserver import MCPServer

LINE_LIMIT = 64 * 1024


def keywords(node: Any, found: set[str]) -> set[str]:
    """Every JSON-schema keyword used in `node` (property and definition names are not keywords)."""
    if isinstance(node, list):
        for item in node:
            keywords(item, found)
    elif isinstance(node, dict):
        for key, value in node.items():
            found.add(key)
            if key in ("properties", "$defs"):
                for sub in value.values():
                    keywords(sub, found)
            else:
                keywords(value, found)
    return found


@pytest.mark.parametrize("mode", ["legacy", "auto"])
async def test_tools_list_is_one_json_line_under_64_kib(edge: EdgeState, mode: str) -> None:
    async with Client(edge.server, mode=mode) as client:
        listed = await client.list_tools()

    line = json.dumps(
        {"jsonrpc": "2.0", "id": 1, "result": listed.model_dump(by_alias=True, mode="json", exclude_none=True)},
        separators=(",", ":"),
    )
    assert "\n" not in line
    assert len(line.encode()) < LINE_LIMIT, f"tools/list is {len(line.encode())} bytes"


async def test_the_compact_listing_keeps_every_input_and_its_description(edge: EdgeState) -> None:
    registered = {tool.name: tool for tool in await MCPServer.list_tools(edge.server)}
    async with Client(edge.server) as client:
        listed = {tool.name: tool for tool in (await client.list_tools()).tools}

    assert set(listed) == set(registered)
    for name, tool in listed.items():
        original = registered[name]
        assert tool.description == inspect.cleandoc(original.description or "")
        assert tool.description, name
        properties = tool.input_schema.get("properties", {})
        assert set(properties) == set(original.input_schema.get("properties", {})), name
        assert tool.input_schema.get("required") == original.input_schema.get("required"), name
        for argument, schema in properties.items():
            before = original.input_schema["properties"][argument].get("description")
            assert schema.get("description") == (inspect.cleandoc(before) if before else None), (name, argument)
        assert "title" not in keywords(tool.input_schema, set())
        assert tool.output_schema is not None
        assert set(tool.output_schema.get("properties", {})) == set(original.output_schema["properties"]), name
    steps = json.dumps(listed["transform_to_silver"].input_schema)
    assert all(kind in steps for kind in ("rename", "cast", "trim", "fill_null", "drop_null", "filter", "dedupe"))


async def test_each_result_shape_is_described_once_by_the_first_tool_that_returns_it(edge: EdgeState) -> None:
    async with Client(edge.server) as client:
        listed = {tool.name: tool for tool in (await client.list_tools()).tools}

    first = listed["get_sync_run"].output_schema
    again = listed["cancel_sync"].output_schema
    assert first is not None
    assert again is not None
    assert "description" in first["properties"]["run_id"]
    assert again["properties"]["run_id"] == {"type": "string"}
    assert set(again["properties"]) == set(first["properties"])
