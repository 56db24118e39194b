"""Resources: the templates, the tenant's concrete resources, reading each, and completing their parameters."""

from __future__ import annotations

import asyncio
import json
from typing import TYPE_CHECKING, Any

import pytest
from lakegate.edge.app import EdgeState
from mcp import Client
from mcp.shared.exceptions import MCPError
from mcp.types import PromptReference, ResourceTemplateReference, TextResourceContents

if TYPE_CHECKING:
    from conftest import Fakes

TEMPLATES = {
    "datasource://{id}/status",
    "datasource://{id}/tables",
    "table://{catalog}/{schema}/{name}/schema",
    "table://{catalog}/{schema}/{name}/preview",
    "run://{id}",
    "schedule://{id}",
}


async def read(client: Client, uri: str) -> Any:
    result = await client.read_resource(uri)
    [contents] = result.contents
    assert isinstance(contents, TextResourceContents)
    assert contents.mime_type == "application/json"
    return json.loads(contents.text)


async def sync_one(client: Client) -> str:
    connected = await client.call_tool(
        "connect_postgres",
        {"name": "crm", "host": "crm.internal", "database": "crm", "user": "reader", "password": "pw"},
    )
    assert connected.structured_content is not None
    connection_id = connected.structured_content["connection_id"]
    run = await client.call_tool("sync_table_to_bronze", {"connection_id": connection_id, "table_name": "orders"})
    assert run.structured_content is not None
    return str(run.structured_content["run_id"])


async def test_every_template_is_listed_as_json_with_a_description(edge: EdgeState) -> None:
    async with Client(edge.server) as client:
        templates = (await client.list_resource_templates()).resource_templates

    assert {t.uri_template for t in templates} == TEMPLATES
    for template in templates:
        assert template.description, template.uri_template
        assert template.mime_type == "application/json"


async def test_resources_list_shows_the_tenants_own_sources_tables_and_runs(edge: EdgeState, tenant_id: str) -> None:
    async with Client(edge.server) as client:
        run_id = await sync_one(client)
        resources = {str(r.uri): r for r in (await client.list_resources()).resources}

    catalog = f"tenant_{tenant_id}"
    assert {"datasource://src_seed/status", "datasource://src_seed/tables"} <= set(resources)
    for layer, name in (("bronze", "scratch"), ("bronze", "shop_orders"), ("silver", "orders"), ("gold", "revenue")):
        assert f"table://{catalog}/{layer}/{name}/schema" in resources
        assert f"table://{catalog}/{layer}/{name}/preview" in resources
    assert f"run://{run_id}" in resources
    assert resources[f"run://{run_id}"].description.startswith("succeeded")  # type: ignore[union-attr]
    assert all(r.mime_type == "application/json" for r in resources.values())


async def test_a_source_status_is_checked_when_read_and_a_failure_comes_with_next_steps(
    edge: EdgeState, fakes: Fakes
) -> None:
    async with Client(edge.server) as client:
        healthy = await read(client, "datasource://src_seed/status")
        fakes.extractor.broken.add("src_seed")
        broken = await read(client, "datasource://src_seed/status")
        tables = await read(client, "datasource://src_seed/tables")

    assert healthy["reachable"] is True
    assert healthy["server_version"] == "16.4"
    assert "read-only grants" in healthy["next_steps"][0]
    assert broken["reachable"] is False
    assert broken["error_code"] == "source_error"
    assert "password authentication failed" in broken["error"]
    assert any("register the source again with connect_postgres" in step for step in broken["next_steps"])
    assert [t["table_name"] for t in tables["tables"]] == ["public.orders"]


async def test_table_schema_preview_and_run_resources_read_like_their_tools(edge: EdgeState, tenant_id: str) -> None:
    catalog = f"tenant_{tenant_id}"
    async with Client(edge.server) as client:
        run_id = await sync_one(client)
        schema = await read(client, f"table://{catalog}/silver/orders/schema")
        preview = await read(client, f"table://{catalog}/silver/orders/preview")
        run = await read(client, f"run://{run_id}")

    assert schema["table_name"] == f"{catalog}.silver.orders"
    assert schema["columns"][1]["null_count"] == 7
    assert preview["table_name"] == f"{catalog}.silver.orders"
    assert preview["row_count"] == 5
    assert (run["run_id"], run["status"], run["row_count"]) == (run_id, "succeeded", 1000)


async def test_reading_another_tenants_catalog_or_a_missing_object_is_an_error_that_says_why(
    edge: EdgeState, tenant_id: str
) -> None:
    async with Client(edge.server) as client:
        with pytest.raises(MCPError, match=rf"catalog 'tenant_other' is not yours.*table://tenant_{tenant_id}/"):
            await client.read_resource("table://tenant_other/bronze/shop_orders/schema")
        with pytest.raises(MCPError, match="run run_nope does not exist"):
            await client.read_resource("run://run_nope")
        with pytest.raises(MCPError, match="src_nope does not exist"):
            await client.read_resource("datasource://src_nope/status")


async def complete(
    client: Client, ref: PromptReference | ResourceTemplateReference, name: str, value: str = "", **known: str
) -> list[str]:
    result = await client.complete(ref, {"name": name, "value": value}, known or None)
    return result.completion.values


async def test_template_parameters_complete_from_the_tenants_own_objects(edge: EdgeState, tenant_id: str) -> None:
    table = ResourceTemplateReference(type="ref/resource", uri="table://{catalog}/{schema}/{name}/schema")
    source = ResourceTemplateReference(type="ref/resource", uri="datasource://{id}/status")
    run = ResourceTemplateReference(type="ref/resource", uri="run://{id}")
    async with Client(edge.server) as client:
        run_id = await sync_one(client)

        assert await complete(client, table, "catalog") == [f"tenant_{tenant_id}"]
        assert await complete(client, table, "schema", "s") == ["silver"]
        assert await complete(client, table, "name", schema="bronze") == ["scratch", "shop_orders"]
        assert await complete(client, table, "name", "o") == ["orders"]
        assert "src_seed" in await complete(client, source, "id")
        assert await complete(client, source, "id", "src_s") == ["src_seed"]
        assert await complete(client, run, "id") == [run_id]


async def test_prompt_arguments_complete_with_tables_and_connection_ids(edge: EdgeState) -> None:
    async with Client(edge.server) as client:
        tables = await complete(client, PromptReference(type="ref/prompt", name="analyze_schema"), "table_name", "b")
        sources = await complete(
            client, PromptReference(type="ref/prompt", name="troubleshoot_connection"), "connection_id"
        )

    assert tables == ["bronze.scratch", "bronze.shop_orders"]
    assert sources == ["src_seed"]


async def test_a_listener_hears_that_the_resource_list_changed_after_connect_postgres(edge: EdgeState) -> None:
    arguments = {"name": "shop", "host": "db.internal", "database": "shop", "user": "reader", "password": "pw"}
    async with Client(edge.server) as client, client.listen(resources_list_changed=True) as changes:
        connected = await client.call_tool("connect_postgres", arguments)
        event = await asyncio.wait_for(anext(changes), 10)
        listed = await client.list_resources()

    assert connected.structured_content is not None
    connection_id = connected.structured_content["connection_id"]
    assert type(event).__name__ == "ResourcesListChanged"
    assert f"datasource://{connection_id}/status" in {str(resource.uri) for resource in listed.resources}


async def test_a_listener_subscribed_to_a_run_hears_it_change_until_it_ends(edge: EdgeState, fakes: Fakes) -> None:
    fakes.catalog.plans["huge"] = "stall"
    started = asyncio.Event()

    async def on_progress(progress: float, total: float | None, message: str | None) -> None:
        started.set()

    async with Client(edge.server) as client:
        sync = asyncio.create_task(
            client.call_tool(
                "sync_table_to_bronze",
                {"connection_id": "src_seed", "table_name": "huge"},
                progress_callback=on_progress,
            )
        )
        await asyncio.wait_for(started.wait(), 10)
        [run_id] = fakes.catalog.runs
        uris = [f"run://{run_id}", "datasource://src_seed/status"]
        async with client.listen(resource_subscriptions=uris) as updates:
            await client.call_tool("cancel_sync", {"run_id": run_id})
            heard: set[str] = set()
            while heard != set(uris):
                heard.add(getattr(await asyncio.wait_for(anext(updates), 10), "uri", ""))
        ended = await sync

    assert set(updates.honored.resource_subscriptions or []) == set(uris)
    assert ended.structured_content is not None
    assert ended.structured_content["status"] == "cancelled"


async def test_every_claimed_change_notification_is_one_the_edge_sends(edge: EdgeState) -> None:
    async with Client(edge.server) as modern:
        claimed = modern.session.server_capabilities
    async with Client(edge.server, mode="legacy") as legacy:
        handshake = legacy.session.server_capabilities

    assert claimed is not None
    assert claimed.tools is not None
    assert claimed.prompts is not None
    assert claimed.resources is not None
    assert claimed.tools.list_changed is False  # tools and prompts never change at run time
    assert claimed.prompts.list_changed is False
    assert claimed.resources.list_changed is True  # connect_postgres, syncs, uploads, transforms, schedules
    assert claimed.resources.subscribe is True  # run:// and datasource:// updates while a sync runs
    assert claimed.tasks is None  # tasks left the core protocol in 2026-07-28
    assert handshake is not None
    assert handshake.tools is not None
    assert handshake.tools.list_changed is False
