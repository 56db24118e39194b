"""What a failing call tells the model: what went wrong and what to do, never how lakegate is wired inside."""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

from lakegate.common.errors import Unavailable
from lakegate.common.settings import NatsSettings
from lakegate.edge.app import EdgeState, serve
from lakegate.edge.config import EdgeSettings
from lakegate.edge.failures import Failures
from mcp import Client
from mcp.types import CallToolResult, TextContent

if TYPE_CHECKING:
    from conftest import Fakes


def error_text(result: CallToolResult) -> str:
    assert result.is_error, result.structured_content
    return " ".join(block.text for block in result.content if isinstance(block, TextContent))


async def test_a_service_that_is_not_running_is_named_without_its_subject(
    edge_settings: EdgeSettings, nats_settings: NatsSettings
) -> None:
    calls = {
        "list_tables": ({}, "loader"),
        "list_sources": ({}, "catalog"),
        "query_source": ({"connection_id": "src_1", "sql": "SELECT 1"}, "extractor"),
    }
    async with serve(edge_settings) as edge, Client(edge.server) as client:
        results = await asyncio.gather(*(client.call_tool(name, arguments) for name, (arguments, _) in calls.items()))

    for (name, (_, service)), result in zip(calls.items(), results, strict=True):
        text = error_text(result)
        assert f"the {service} service is not running" in text, name
        assert "start it" in text, name
        assert nats_settings.prefix not in text, name
        assert ".rpc." not in text, name


async def test_subject_names_inside_another_services_message_are_replaced_by_what_they_are(
    edge: EdgeState, fakes: Fakes, nats_settings: NatsSettings
) -> None:
    staged = nats_settings.topology.stage("run_1", "a1")
    fakes.loader.query_failure = Unavailable(f"staging returned 1 of 2 parts at {staged}; retrying")
    async with Client(edge.server) as client:
        text = error_text(await client.call_tool("query_sql", {"sql": "SELECT 1"}))

    assert text.endswith(": staging returned 1 of 2 parts at the staging stream; retrying")


def test_every_kind_of_subject_is_recognised_under_its_own_prefix_only() -> None:
    failures = Failures("t42")

    assert failures.public("no answer on t42.rpc.loader.tables.list") == "no answer on the loader service"
    assert failures.public("queue t42.cmd.extract is full") == "queue a lakegate work queue is full"
    assert failures.public("see t42.run.run_9.failed.") == "see a run's step log."
    assert failures.public("told t42.cancel.run_9") == "told a run's cancellation"
    assert (
        failures.public("not accepted on stream T42_CMD (timeout)")
        == "not accepted on stream a lakegate stream (timeout)"
    )
    assert (
        failures.public("table lakegate.rpc.orders and public.events.id")
        == "table lakegate.rpc.orders and public.events.id"
    )


async def test_a_failed_runs_error_is_public_in_the_tool_error_the_progress_and_the_run(
    edge: EdgeState, fakes: Fakes, nats_settings: NatsSettings
) -> None:
    fakes.catalog.plans["lost"] = "lose"
    said: list[str] = []

    async def on_progress(progress: float, total: float | None, message: str | None) -> None:
        said.append(message or "")

    async with Client(edge.server) as client:
        connected = await client.call_tool(
            "connect_postgres", {"name": "s", "host": "h", "database": "d", "user": "u", "password": "p"}
        )
        assert connected.structured_content is not None
        arguments = {"connection_id": connected.structured_content["connection_id"], "table_name": "lost"}
        text = error_text(await client.call_tool("sync_table_to_bronze", arguments, progress_callback=on_progress))
        [run_id] = fakes.catalog.runs
        run = await client.call_tool("get_sync_run", {"run_id": run_id})

    internal = f"{nats_settings.prefix}.stage."
    assert "staging holds 0 parts at the staging stream, expected 1" in text
    assert internal not in text
    assert run.structured_content is not None
    assert run.structured_content["error"] == "staging holds 0 parts at the staging stream, expected 1"
    assert any("at the staging stream" in message for message in said), said
    assert not [message for message in said if internal in message]
