"""Tools that build tables: silver transforms from typed steps, gold views, and file uploads with a size limit."""

from __future__ import annotations

import base64
from typing import TYPE_CHECKING

from lakegate.common.contracts.transforms import Cast, Dedupe, Filter, Rename
from lakegate.devstack.toolresults import structured, text_of
from lakegate.edge.app import EdgeState, serve
from lakegate.edge.config import EdgeSettings
from mcp import Client

if TYPE_CHECKING:
    from conftest import Fakes

STEP_KINDS = {"rename", "cast", "trim", "fill_null", "drop_null", "filter", "dedupe"}


async def test_the_silver_steps_are_a_documented_union_chosen_by_kind(edge: EdgeState) -> None:
    async with Client(edge.server) as client:
        tools = {tool.name: tool for tool in (await client.list_tools()).tools}

    schema = tools["transform_to_silver"].input_schema
    steps = schema["properties"]["transformations"]
    union = next(option for option in steps["anyOf"] if option.get("type") == "array")["items"]
    assert union["discriminator"]["propertyName"] == "kind"
    assert set(union["discriminator"]["mapping"]) == STEP_KINDS
    for definition in (schema["$defs"][ref.rsplit("/", 1)[1]] for ref in union["discriminator"]["mapping"].values()):
        assert definition["description"], definition
        assert "version" not in definition["properties"]
        assert definition["additionalProperties"] is False
        assert "kind" in definition["required"], "a model must say which step it means"
    assert "decimal(p,s)" in schema["$defs"]["CastStep"]["properties"]["to"]["description"]
    assert schema["required"] == ["bronze_table"]


async def test_transform_to_silver_sends_the_steps_in_order_and_reports_rows_in_and_out(
    edge: EdgeState, fakes: Fakes, tenant_id: str
) -> None:
    steps = [
        {"kind": "rename", "column": "total", "to": "amount"},
        {"kind": "cast", "column": "amount", "to": "decimal(12,2)", "on_error": "null"},
        {"kind": "filter", "column": "amount", "op": ">", "value": 0},
        {"kind": "dedupe", "keys": ["id"], "latest_by": "updated_at"},
    ]
    async with Client(edge.server) as client:
        result = structured(
            await client.call_tool(
                "transform_to_silver",
                {"bronze_table": "shop_orders", "transformations": steps, "target_name": "orders_clean"},
            )
        )

    [request] = fakes.loader.transforms
    assert request.tenant_id == tenant_id
    assert request.spec is not None
    assert [type(step) for step in request.spec.steps] == [Rename, Cast, Filter, Dedupe]
    assert request.spec.steps[1] == Cast(column="amount", to="decimal(12,2)", on_error="null")
    assert request.spec.target_name == "orders_clean"
    assert result["silver_table"] == f"tenant_{tenant_id}.silver.orders_clean"
    assert (result["rows_in"], result["rows_out"], result["rows_removed"]) == (1000, 990, 10)
    assert result["sql"].startswith("CREATE OR REPLACE TABLE")


async def test_transform_to_silver_without_steps_leaves_the_default_to_the_loader(
    edge: EdgeState, fakes: Fakes
) -> None:
    async with Client(edge.server) as client:
        structured(await client.call_tool("transform_to_silver", {"bronze_table": "bronze.shop_orders"}))

    [request] = fakes.loader.transforms
    assert request.spec is None


async def test_a_step_of_an_unknown_kind_is_refused_before_the_loader_is_asked(edge: EdgeState, fakes: Fakes) -> None:
    async with Client(edge.server) as client:
        result = await client.call_tool(
            "transform_to_silver",
            {"bronze_table": "shop_orders", "transformations": [{"kind": "explode", "column": "id"}]},
        )

    assert result.is_error
    assert "kind" in text_of(result)
    assert fakes.loader.transforms == []


async def test_create_gold_view_returns_the_view_and_what_it_reads(
    edge: EdgeState, fakes: Fakes, tenant_id: str
) -> None:
    sql = "SELECT sum(total) AS revenue FROM silver.orders"
    async with Client(edge.server) as client:
        view = structured(await client.call_tool("create_gold_view", {"name": "revenue", "sql": sql}))

    assert view["view_name"] == f"tenant_{tenant_id}.gold.revenue"
    assert view["upstream"] == [f"tenant_{tenant_id}.silver.orders"]
    assert [(c["name"], c["type"]) for c in view["columns"]] == [("total", "decimal128(12, 2)")]
    assert fakes.loader.views[0].sql == sql


async def test_upload_file_loads_base64_content_into_bronze(edge: EdgeState, fakes: Fakes, tenant_id: str) -> None:
    csv = b"region,amount\nnorth,10\nsouth,20\n"
    async with Client(edge.server) as client:
        uploaded = structured(
            await client.call_tool(
                "upload_file",
                {
                    # A data URL prefix and line breaks are what a model often produces; both are accepted.
                    "file_content": "data:text/csv;base64," + base64.encodebytes(csv).decode(),
                    "file_name": "budget.csv",
                    "dataset_name": "budget",
                },
            )
        )

    [request] = fakes.loader.uploads
    assert base64.b64decode(request.content_base64) == csv
    assert uploaded["table_name"] == f"tenant_{tenant_id}.bronze.budget"
    assert uploaded["row_count"] == 2
    assert [c["name"] for c in uploaded["columns"]] == ["region", "amount"]


async def test_a_file_over_the_size_limit_is_refused_at_the_edge_with_sizes_and_alternatives(
    edge_settings: EdgeSettings, fakes: Fakes
) -> None:
    content = base64.b64encode(b"x" * 3 * 1024 * 1024).decode()
    async with (
        serve(edge_settings.model_copy(update={"max_upload_bytes": 1024 * 1024})) as edge,
        Client(edge.server) as client,
    ):
        result = await client.call_tool(
            "upload_file", {"file_content": content, "file_name": "big.csv", "dataset_name": "big"}
        )

    text = text_of(result)
    assert result.is_error
    assert "'big.csv' is 3.0 MiB" in text
    assert "at most 1.0 MiB" in text
    assert "Parquet" in text
    assert fakes.loader.uploads == []


async def test_content_that_is_not_base64_is_refused_with_how_to_encode_it(edge: EdgeState, fakes: Fakes) -> None:
    async with Client(edge.server) as client:
        result = await client.call_tool(
            "upload_file", {"file_content": "region,amount\nnorth,10", "file_name": "b.csv", "dataset_name": "b"}
        )

    assert result.is_error
    assert "not valid base64" in text_of(result)
    assert fakes.loader.uploads == []
