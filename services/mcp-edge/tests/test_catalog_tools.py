"""The catalog tools and get_metadata: sources, datasets with lineage, run history, the lakehouse at once."""

from __future__ import annotations

from typing import TYPE_CHECKING

from lakegate.devstack.toolresults import structured
from lakegate.edge.app import EdgeState
from mcp import Client

if TYPE_CHECKING:
    from conftest import Fakes


async def test_list_sources_shows_every_registered_source_without_secrets(edge: EdgeState) -> None:
    async with Client(edge.server) as client:
        await client.call_tool(
            "connect_postgres",
            {"name": "crm", "host": "crm.internal", "database": "crm", "user": "reader", "password": "pw-Secret-9"},
        )

        listed = structured(await client.call_tool("list_sources", {}))
        paged = structured(await client.call_tool("list_sources", {"limit": 1}))

        assert [s["name"] for s in listed["sources"]] == ["crm", "shop"]
        assert listed["total"] == 2
        assert "pw-Secret-9" not in str(listed)
        assert [s["name"] for s in paged["sources"]] == ["crm"]
        assert paged["next_offset"] == 1


async def test_list_datasets_shows_lineage_keys_and_last_sync(edge: EdgeState, tenant_id: str) -> None:
    async with Client(edge.server) as client:
        listed = structured(await client.call_tool("list_datasets", {}))
        first_page = structured(await client.call_tool("list_datasets", {"limit": 2}))

        bronze, silver, gold = listed["datasets"]
        catalog = f"tenant_{tenant_id}"
        assert (bronze["kind"], bronze["source_table"], bronze["keys"]) == ("synced", "public.orders", ["id"])
        assert bronze["last_synced_at"] is not None
        assert silver["upstream"] == [f"{catalog}.bronze.shop_orders"]
        assert gold["upstream"] == [f"{catalog}.silver.orders"]
        assert gold["definition"].startswith("SELECT sum(total)")
        assert len(first_page["datasets"]) == 2
        assert first_page["next_offset"] == 2


async def test_list_sync_runs_shows_history_newest_first_with_durations(edge: EdgeState) -> None:
    async with Client(edge.server) as client:
        listed = await client.call_tool(
            "connect_postgres",
            {"name": "shop2", "host": "db.internal", "database": "shop", "user": "reader", "password": "pw"},
        )
        connection_id = structured(listed)["connection_id"]
        for table in ("orders", "customers"):
            await client.call_tool("sync_table_to_bronze", {"connection_id": connection_id, "table_name": table})

        runs = structured(await client.call_tool("list_sync_runs", {"connection_id": connection_id}))
        page = structured(await client.call_tool("list_sync_runs", {"limit": 1}))
        other = structured(await client.call_tool("list_sync_runs", {"connection_id": "src_other"}))

        assert [r["source_table"] for r in runs["runs"]] == ["public.customers", "public.orders"]
        assert all(r["status"] == "succeeded" and r["duration_seconds"] is not None for r in runs["runs"])
        assert runs["next_offset"] is None
        assert len(page["runs"]) == 1
        assert page["next_offset"] == 1
        assert other["runs"] == []


async def test_get_metadata_joins_every_layer_with_lineage_from_the_source_table_to_gold(
    edge: EdgeState, fakes: Fakes, tenant_id: str
) -> None:
    catalog = f"tenant_{tenant_id}"
    async with Client(edge.server) as client:
        metadata = structured(await client.call_tool("get_metadata", {}))

    assert metadata["catalog"] == catalog
    assert [s["connection_id"] for s in metadata["sources"]] == ["src_seed"]
    tables = {t["table_name"]: t for t in metadata["tables"]}
    assert [t["layer"] for t in metadata["tables"]] == ["bronze", "bronze", "silver", "gold"]
    bronze = tables[f"{catalog}.bronze.shop_orders"]
    assert bronze["kind"] == "synced"
    assert bronze["source"] == "shop:public.orders"
    assert bronze["keys"] == ["id"]
    assert bronze["downstream"] == [f"{catalog}.silver.orders"]
    assert bronze["row_count"] == 1000
    assert [c["name"] for c in bronze["columns"]] == ["id", "total"]
    assert tables[f"{catalog}.gold.revenue"]["upstream"] == [f"{catalog}.silver.orders"]
    assert tables[f"{catalog}.bronze.scratch"]["kind"] == "unrecorded"
    chain = {(e["upstream"], e["downstream"], e["via"]) for e in metadata["lineage"]}
    assert chain == {
        ("shop:public.orders", f"{catalog}.bronze.shop_orders", "sync"),
        (f"{catalog}.bronze.shop_orders", f"{catalog}.silver.orders", "transform"),
        (f"{catalog}.silver.orders", f"{catalog}.gold.revenue", "view"),
    }
