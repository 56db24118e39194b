"""Prompts: listed with their arguments, and filled with context fetched when they are asked for."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest
from lakegate.edge.app import EdgeState
from mcp import Client
from mcp.shared.exceptions import MCPError
from mcp.types import TextContent
from mcp_types import INVALID_PARAMS

if TYPE_CHECKING:
    from conftest import Fakes


async def prompt_text(client: Client, name: str, arguments: dict[str, str]) -> str:
    result = await client.get_prompt(name, arguments)
    [message] = result.messages
    assert message.role == "user"
    assert isinstance(message.content, TextContent)
    return message.content.text


async def test_every_prompt_is_listed_with_its_described_arguments(edge: EdgeState) -> None:
    async with Client(edge.server) as client:
        prompts = {p.name: p for p in (await client.list_prompts()).prompts}

    assert {name: [a.name for a in p.arguments or []] for name, p in prompts.items()} == {
        "analyze_schema": ["table_name"],
        "troubleshoot_connection": ["connection_id"],
        "generate_query": ["question"],
    }
    for prompt in prompts.values():
        assert prompt.description
        assert all(argument.required and argument.description for argument in prompt.arguments or [])


async def test_analyze_schema_carries_the_tables_statistics_rows_and_lineage(edge: EdgeState, tenant_id: str) -> None:
    async with Client(edge.server) as client:
        text = await prompt_text(client, "analyze_schema", {"table_name": "silver.orders"})

    assert f"`tenant_{tenant_id}.silver.orders`" in text
    assert '"null_count": 7' in text
    assert '"sample_rows"' in text
    assert f"tenant_{tenant_id}.bronze.shop_orders" in text
    assert "transform_to_silver" in text


async def test_troubleshoot_connection_carries_the_check_made_now_and_concrete_next_steps(
    edge: EdgeState, fakes: Fakes
) -> None:
    async with Client(edge.server) as client:
        fakes.extractor.broken.add("src_seed")
        broken = await prompt_text(client, "troubleshoot_connection", {"connection_id": "src_seed"})
        fakes.extractor.broken.clear()
        healthy = await prompt_text(client, "troubleshoot_connection", {"connection_id": "src_seed"})

    assert "reader@db.internal:5432/shop" in broken
    assert "The check failed just now [source_error]: password authentication failed" in broken
    assert "1. The server refused the stored password" in broken
    assert "pg_hba.conf" in broken
    assert "test_connection confirms it" in broken
    assert "lakegate logged in just now (PostgreSQL 16.4" in healthy


async def test_generate_query_carries_the_question_and_every_table_with_its_columns(
    edge: EdgeState, tenant_id: str
) -> None:
    async with Client(edge.server) as client:
        text = await prompt_text(client, "generate_query", {"question": "What was revenue per month?"})

    assert "Question: What was revenue per month?" in text
    for name in ("bronze.scratch", "bronze.shop_orders", "silver.orders", "gold.revenue"):
        assert f"tenant_{tenant_id}.{name}" in text
    assert "query_sql" in text


async def test_a_prompt_for_something_that_does_not_exist_says_so(edge: EdgeState) -> None:
    async with Client(edge.server) as client:
        with pytest.raises(MCPError, match="list_tables shows the tables"):
            await client.get_prompt("analyze_schema", {"table_name": "nope"})
        with pytest.raises(MCPError, match="src_nope does not exist"):
            await client.get_prompt("troubleshoot_connection", {"connection_id": "src_nope"})


async def test_an_unknown_prompt_or_a_missing_argument_is_invalid_params_saying_what_to_send(
    edge: EdgeState,
) -> None:
    async with Client(edge.server) as client:
        with pytest.raises(MCPError) as unknown:
            await client.get_prompt("no_such_prompt", {})
        with pytest.raises(MCPError) as missing:
            await client.get_prompt("analyze_schema", {})

    assert unknown.value.error.code == INVALID_PARAMS
    assert "unknown prompt 'no_such_prompt'" in unknown.value.error.message
    assert "analyze_schema" in unknown.value.error.message
    assert missing.value.error.code == INVALID_PARAMS
    assert "needs the argument(s) table_name" in missing.value.error.message
