"""The tools, called by an MCP client connected to the edge in process."""

from __future__ import annotations

import itertools
import json
from typing import TYPE_CHECKING

from lakegate.common.errors import SourceError
from lakegate.common.sealing import Unsealer
from lakegate.devstack.toolresults import error_text, structured
from lakegate.edge.app import EdgeState, serve
from lakegate.edge.config import EdgeSettings
from mcp import Client
from mcp.types import TextContent

if TYPE_CHECKING:
    from conftest import Fakes

TOOLS = {
    "connect_postgres",
    "test_connection",
    "list_source_tables",
    "describe_source_table",
    "query_source",
    "sync_table_to_bronze",
    "get_sync_run",
    "list_sync_runs",
    "query_sql",
    "list_tables",
    "describe_table",
    "preview_table",
    "get_metadata",
    "transform_to_silver",
    "create_gold_view",
    "upload_file",
    "list_sources",
    "list_datasets",
    "analyze_schema",
    "suggest_query",
    "explain_data",
    "cancel_sync",
    "schedule_sync",
    "list_schedules",
    "delete_schedule",
    "list_audit_records",
}


async def connect(client: Client, name: str = "shop") -> str:
    result = await client.call_tool(
        "connect_postgres",
        {"name": name, "host": "db.internal", "database": "shop", "user": "reader", "password": "pw-Secret-1"},
    )
    return str(structured(result)["connection_id"])


class ProgressLog:
    """A progress callback that keeps what the server reported."""

    def __init__(self) -> None:
        self.reports: list[tuple[float, float | None, str | None]] = []

    async def __call__(self, progress: float, total: float | None, message: str | None) -> None:
        self.reports.append((progress, total, message))

    @property
    def messages(self) -> list[str]:
        return [message or "" for _, _, message in self.reports]


async def test_every_tool_is_listed_with_input_and_output_schemas_and_annotations(edge: EdgeState) -> None:
    async with Client(edge.server) as client:
        tools = {tool.name: tool for tool in (await client.list_tools()).tools}

        assert set(tools) == TOOLS
        for tool in tools.values():
            assert tool.description, tool.name
            assert tool.input_schema["type"] == "object", tool.name
            assert (tool.output_schema or {}).get("type") == "object", tool.name
            assert tool.annotations is not None, tool.name
            assert tool.annotations.read_only_hint is not None, tool.name
            assert "tenant_id" not in tool.input_schema.get("properties", {}), tool.name
        assert tools["query_sql"].annotations.read_only_hint is True  # type: ignore[union-attr]
        assert tools["sync_table_to_bronze"].annotations.destructive_hint is True  # type: ignore[union-attr]
        password = tools["connect_postgres"].input_schema["properties"]["password"]
        assert {"type": "string", "format": "password", "writeOnly": True}.items() <= password["anyOf"][0].items()
        for tool in tools.values():
            hints = tool.annotations
            assert hints is not None
            assert None not in (hints.read_only_hint, hints.destructive_hint, hints.idempotent_hint), tool.name
            assert hints.open_world_hint is not None, tool.name
            assert hints.title, tool.name
        writers = {name for name, tool in tools.items() if not tool.annotations.read_only_hint}  # type: ignore[union-attr]
        assert writers == {
            "connect_postgres",
            "sync_table_to_bronze",
            "transform_to_silver",
            "create_gold_view",
            "upload_file",
            "cancel_sync",
            "schedule_sync",
            "delete_schedule",
        }
        reaches_sources = {name for name, tool in tools.items() if tool.annotations.open_world_hint}  # type: ignore[union-attr]
        assert reaches_sources == {
            "connect_postgres",
            "test_connection",
            "list_source_tables",
            "describe_source_table",
            "query_source",
            "sync_table_to_bronze",
            "schedule_sync",
        }
        paged = {name for name, tool in tools.items() if "offset" in tool.input_schema["properties"]}
        assert paged == {
            "list_source_tables",
            "list_sync_runs",
            "list_tables",
            "list_sources",
            "list_datasets",
            "list_schedules",
            "list_audit_records",
        }
        for name in paged:
            assert "next_offset" in tools[name].output_schema["properties"], name  # type: ignore[index]
        assert set(tools["connect_postgres"].input_schema["required"]) == {
            "name",
            "host",
            "database",
            "user",
        }
        assert "ctx" not in tools["sync_table_to_bronze"].input_schema["properties"]


async def test_connect_postgres_registers_a_checked_source_for_the_default_tenant(
    edge: EdgeState, fakes: Fakes, tenant_id: str, unsealer: Unsealer
) -> None:
    async with Client(edge.server) as client:
        result = structured(
            await client.call_tool(
                "connect_postgres",
                {
                    "name": "shop",
                    "host": "db.internal",
                    "port": 6543,
                    "database": "shop",
                    "user": "reader",
                    "password": "pw-Zq8!unsealed",
                },
            )
        )

        assert result["server_version"] == "16.4"
        assert result["read_only"] is True
        assert result["port"] == 6543
        assert [check.tenant_id for check in fakes.extractor.checked] == [tenant_id]
        [registered] = fakes.catalog.registered
        assert registered.tenant_id == tenant_id
        assert registered.name == "shop"
        assert registered.login.sealed_password is not None
        # sealed at the edge: no NATS message carries it in clear (long enough not to occur in base64 by chance)
        assert "pw-Zq8!unsealed" not in registered.model_dump_json()
        opened = unsealer.open(
            registered.login.sealed_password, tenant_id=tenant_id, address=registered.login.address, source="shop"
        )
        assert opened.get_secret_value() == "pw-Zq8!unsealed"
        assert "pw-Zq8!unsealed" not in str(result.values())


async def test_connect_postgres_with_a_failing_check_is_a_tool_error_and_registers_nothing(
    edge: EdgeState, fakes: Fakes
) -> None:
    async with Client(edge.server) as client:
        fakes.extractor.check_failure = SourceError(
            "password authentication failed for user 'reader' at db.internal:5432/shop: check the password"
        )

        result = await client.call_tool(
            "connect_postgres",
            {"name": "shop", "host": "db.internal", "database": "shop", "user": "reader", "password": "x"},
        )

        text = error_text(result)
        assert "password authentication failed for user 'reader'" in text
        assert "Nothing was registered" in text
        assert fakes.extractor.checked
        assert fakes.catalog.registered == []


async def test_a_registered_source_can_be_tested_and_its_tables_listed(edge: EdgeState) -> None:
    async with Client(edge.server) as client:
        connection_id = await connect(client)

        tested = structured(await client.call_tool("test_connection", {"connection_id": connection_id}))
        listed = structured(await client.call_tool("list_source_tables", {"connection_id": connection_id}))

        assert tested["status"] == "ok"
        assert tested["server_version"] == "16.4"
        assert tested["latency_ms"] == round(3.25, 1)
        assert tested["read_only"] is False
        assert "read-only grants" in tested["warnings"][0]
        assert tested["host"] == "db.internal"
        assert tested["name"] == "shop"
        [table] = listed["tables"]
        assert table["table_name"] == "public.orders"
        assert [c["name"] for c in table["columns"]] == ["id", "total"]
        assert (listed["total"], listed["next_offset"]) == (1, None)


async def test_a_source_whose_stored_password_no_longer_works_fails_its_test_with_the_reason(
    edge: EdgeState, fakes: Fakes
) -> None:
    async with Client(edge.server) as client:
        connection_id = await connect(client)
        fakes.extractor.broken.add(connection_id)

        text = error_text(await client.call_tool("test_connection", {"connection_id": connection_id}))

        assert "password authentication failed for user 'reader'" in text


async def test_a_source_table_is_described_with_keys_indexes_and_samples(edge: EdgeState) -> None:
    async with Client(edge.server) as client:
        connection_id = await connect(client)

        detail = structured(
            await client.call_tool(
                "describe_source_table", {"connection_id": connection_id, "table_name": "orders", "sample_size": 2}
            )
        )
        missing = await client.call_tool(
            "describe_source_table", {"connection_id": connection_id, "table_name": "nope"}
        )

        assert detail["table_name"] == "public.orders"
        assert detail["primary_key"] == ["id"]
        assert detail["foreign_keys"][0]["references_table"] == "public.customers"
        assert detail["indexes"][0]["primary"] is True
        assert detail["samples"] == {"id": [1, 2], "total": ["12.50", "7.25"]}
        assert "list_source_tables shows them" in error_text(missing)


async def test_a_source_is_queried_read_only_through_the_extractor(
    edge: EdgeState, fakes: Fakes, tenant_id: str
) -> None:
    async with Client(edge.server) as client:
        connection_id = await connect(client)

        result = structured(
            await client.call_tool(
                "query_source",
                {
                    "connection_id": connection_id,
                    "sql": "SELECT status, count(*) FROM orders GROUP BY 1",
                    "max_rows": 1,
                },
            )
        )

        assert result["rows"] == [["paid", 3]]
        assert result["truncated"] is True
        [query] = fakes.extractor.queries
        assert (query.tenant_id, query.connection_id, query.max_rows) == (tenant_id, connection_id, 1)


async def test_an_unknown_source_is_a_tool_error_that_says_what_to_do(edge: EdgeState) -> None:
    async with Client(edge.server) as client:
        text = error_text(await client.call_tool("test_connection", {"connection_id": "src_missing"}))

        assert "src_missing does not exist" in text
        assert "connect_postgres" in text


async def test_sync_waits_for_the_run_and_reports_each_step_as_progress(
    edge: EdgeState, fakes: Fakes, tenant_id: str
) -> None:
    async with Client(edge.server) as client:
        connection_id = await connect(client)
        progress = ProgressLog()

        result = structured(
            await client.call_tool(
                "sync_table_to_bronze",
                {"connection_id": connection_id, "table_name": "orders"},
                progress_callback=progress,
            )
        )

        assert result["status"] == "succeeded"
        assert result["row_count"] == 1000
        assert result["bronze_table"] == f"tenant_{tenant_id}.bronze.shop_orders"
        assert result["run_id"] in fakes.catalog.runs
        assert result["duration_seconds"] is not None
        assert "query_sql" in result["hint"]
        [started] = fakes.catalog.started
        assert started.tenant_id == tenant_id
        assert started.sync_mode == "full"

        values = [value for value, _, _ in progress.reports]
        assert all(a < b for a, b in itertools.pairwise(values)), f"progress must only increase: {values}"
        assert {total for _, total, _ in progress.reports} == {4.0}
        assert values[-1] == 4.0
        said = "\n".join(progress.messages)
        for expected in (
            "queued",
            "extracting public.orders: 1,000 rows so far",
            "extracted 1,000 rows",
            "loaded 1,000",
        ):
            assert expected in said
        assert progress.messages[-1].startswith("succeeded: 1,000 rows")


async def test_a_run_still_going_after_the_wait_comes_back_as_a_handle_with_its_status(
    edge_settings: EdgeSettings, fakes: Fakes
) -> None:
    fakes.catalog.plans["huge"] = "stall"
    progress = ProgressLog()
    async with (
        serve(edge_settings.model_copy(update={"sync_wait_seconds": 0.5})) as edge,
        Client(edge.server) as client,
    ):
        connection_id = await connect(client)

        handle = structured(
            await client.call_tool(
                "sync_table_to_bronze",
                {"connection_id": connection_id, "table_name": "huge"},
                progress_callback=progress,
            )
        )
        polled = structured(await client.call_tool("get_sync_run", {"run_id": handle["run_id"]}))

    assert handle["status"] == "extracting"
    assert handle["finished_at"] is None
    assert "get_sync_run" in handle["hint"]
    assert handle["run_id"] in handle["hint"]
    assert polled["run_id"] == handle["run_id"]
    assert polled["status"] == "extracting"
    assert "extracting public.huge" in progress.messages


async def test_a_failed_run_is_a_tool_error_with_the_reason_and_the_run_id(edge: EdgeState, fakes: Fakes) -> None:
    async with Client(edge.server) as client:
        fakes.catalog.plans["secrets"] = "fail"
        connection_id = await connect(client)

        result = await client.call_tool(
            "sync_table_to_bronze", {"connection_id": connection_id, "table_name": "secrets"}
        )

        text = error_text(result)
        [run_id] = fakes.catalog.runs
        assert run_id in text
        assert "permission denied for table public.secrets" in text
        assert "grant SELECT" in text
        assert "call sync_table_to_bronze again" in text
        polled = structured(await client.call_tool("get_sync_run", {"run_id": run_id}))
        assert polled["status"] == "failed"
        assert polled["error_code"] == "permission_denied"


async def test_an_unknown_run_is_a_tool_error_that_names_it(edge: EdgeState) -> None:
    async with Client(edge.server) as client:
        text = error_text(await client.call_tool("get_sync_run", {"run_id": "run_nope"}))

        assert "run run_nope does not exist" in text


async def test_query_sql_returns_rows_and_a_refused_statement_is_a_tool_error(
    edge: EdgeState, fakes: Fakes, tenant_id: str
) -> None:
    async with Client(edge.server) as client:
        rows = structured(
            await client.call_tool("query_sql", {"sql": "SELECT id, total FROM shop_orders", "max_rows": 1})
        )
        refused = await client.call_tool("query_sql", {"sql": "DROP TABLE shop_orders"})

        assert rows["rows"] == [[1, "12.50"]]
        assert rows["truncated"] is True
        assert rows["row_count"] == 1
        assert [c["type"] for c in rows["columns"]] == ["int64", "decimal128(12, 2)"]
        assert "only one read-only SELECT" in error_text(refused)
        assert {query.tenant_id for query in fakes.loader.queries} == {tenant_id}


async def test_a_tools_text_content_is_the_same_json_as_its_structured_content(edge: EdgeState) -> None:
    async with Client(edge.server) as client:
        result = await client.call_tool("list_tables", {"layer": "silver"})

        [block] = result.content
        assert isinstance(block, TextContent)
        assert json.loads(block.text) == structured(result)


async def test_out_of_range_arguments_are_refused_before_any_service_is_asked(edge: EdgeState, fakes: Fakes) -> None:
    async with Client(edge.server) as client:
        result = await client.call_tool("query_sql", {"sql": "SELECT 1", "max_rows": 0})

        assert "max_rows" in error_text(result)
        assert fakes.loader.queries == []


async def test_tables_of_a_layer_are_listed_and_described(edge: EdgeState, tenant_id: str) -> None:
    async with Client(edge.server) as client:
        listed = structured(await client.call_tool("list_tables", {"layer": "bronze"}))
        described = structured(await client.call_tool("describe_table", {"table_name": "shop_orders"}))
        missing = await client.call_tool("describe_table", {"table_name": "nope"})

        assert [t["name"] for t in listed["tables"]] == ["scratch", "shop_orders"]
        table = listed["tables"][1]
        assert table["table_name"] == f"tenant_{tenant_id}.bronze.shop_orders"
        assert table["version"] == 3
        assert described["columns"][0] == {
            "name": "id",
            "type": "bigint",
            "nullable": False,
            "source_type": None,
            "null_count": 0,
            "distinct_estimate": 1000,
            "min": 1,
            "max": 1000,
        }
        assert described["columns"][1]["null_count"] == 7
        assert "list_tables shows the tables" in error_text(missing)


async def test_list_tables_pages_with_offset_and_next_offset(edge: EdgeState) -> None:
    async with Client(edge.server) as client:
        first = structured(await client.call_tool("list_tables", {"layer": "bronze", "limit": 1}))
        second = structured(
            await client.call_tool("list_tables", {"layer": "bronze", "limit": 1, "offset": first["next_offset"]})
        )

        assert [t["name"] for t in first["tables"]] == ["scratch"]
        assert first["next_offset"] == 1
        assert [t["name"] for t in second["tables"]] == ["shop_orders"]
        assert second["next_offset"] is None


async def test_a_table_is_described_without_statistics_when_asked_and_previewed(
    edge: EdgeState, fakes: Fakes, tenant_id: str
) -> None:
    async with Client(edge.server) as client:
        plain = structured(
            await client.call_tool("describe_table", {"table_name": "silver.orders", "with_stats": False})
        )
        preview = structured(await client.call_tool("preview_table", {"table_name": "silver.orders", "limit": 3}))

        assert plain["table_name"] == f"tenant_{tenant_id}.silver.orders"
        assert plain["columns"][0]["null_count"] is None
        assert fakes.loader.described[-1].with_stats is False
        assert preview["table_name"] == f"tenant_{tenant_id}.silver.orders"
        assert preview["rows"] == [[1, "1.50"], [2, "2.50"], [3, "3.50"]]
        assert preview["truncated"] is True


async def test_arguments_that_do_not_fit_the_schema_are_named_without_library_text_or_their_values(
    edge: EdgeState,
) -> None:
    async with Client(edge.server) as client:
        missing = error_text(await client.call_tool("describe_table", {"table": "bronze.orders"}))
        wrong = error_text(
            await client.call_tool(
                "connect_postgres",
                {"name": "x", "host": "db", "port": 70000, "database": "d", "user": "u", "password": "s3cr3t-pw"},
            )
        )

    assert "`table_name`: field required" in missing
    assert "`port`:" in wrong
    assert "65535" in wrong
    for text in (missing, wrong):
        assert "pydantic" not in text
        assert "https://" not in text
        assert "tools/list shows each argument" in text
    assert "s3cr3t-pw" not in wrong
