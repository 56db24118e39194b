"""The AI-assisted tools: the real context goes to the client's own model through MCP sampling, and a
client that cannot (or will not) sample gets the context back with instructions instead."""

from __future__ import annotations

import pytest
from lakegate.devstack.toolresults import structured
from lakegate.edge.app import EdgeState
from mcp import Client
from mcp.client.context import ClientRequestContext
from mcp.types import CreateMessageRequestParams, CreateMessageResult, ErrorData, TextContent

SUGGESTED = "SELECT date_trunc('month', ordered_at) AS month, sum(total) FROM silver.orders GROUP BY 1"


class FakeModel:
    """A client's model: answers every sampling request with a fixed text, and keeps what it was asked."""

    def __init__(self, answer: str) -> None:
        self.answer = answer
        self.asked: list[CreateMessageRequestParams] = []

    async def __call__(
        self, context: ClientRequestContext, params: CreateMessageRequestParams
    ) -> CreateMessageResult | ErrorData:
        self.asked.append(params)
        return CreateMessageResult(
            role="assistant", content=TextContent(type="text", text=self.answer), model="fake-model-1"
        )

    @property
    def question(self) -> str:
        [params] = self.asked
        [message] = params.messages
        assert isinstance(message.content, TextContent)
        return message.content.text


async def refuse(context: ClientRequestContext, params: CreateMessageRequestParams) -> ErrorData:
    return ErrorData(code=-1, message="the user declined the sampling request")


@pytest.mark.parametrize("mode", ["auto", "legacy"])
async def test_analyze_schema_asks_the_clients_model_with_the_tables_real_columns_stats_and_rows(
    edge: EdgeState, tenant_id: str, mode: str
) -> None:
    model = FakeModel("One row is an order; `id` is the key; 7 totals are NULL.")
    async with Client(edge.server, sampling_callback=model, mode=mode) as client:
        analysis = structured(await client.call_tool("analyze_schema", {"table_name": "silver.orders"}))

    assert analysis["sampled"] is True
    assert analysis["answer"] == model.answer
    assert analysis["model"] == "fake-model-1"
    assert analysis["instructions"] is None
    assert analysis["table_name"] == f"tenant_{tenant_id}.silver.orders"
    question = model.question
    assert "transform_to_silver" in question
    assert '"null_count": 7' in question
    assert '"rows"' in question
    assert f"tenant_{tenant_id}.bronze.shop_orders" in question, "the lineage is part of the context"
    assert "data engineer" in (model.asked[0].system_prompt or "")
    assert analysis["context"]["lineage"]["kind"] == "silver"


async def test_suggest_query_returns_the_sql_from_the_models_answer(edge: EdgeState, tenant_id: str) -> None:
    model = FakeModel(f"Here you go:\n```sql\n{SUGGESTED}\n```\nIt sums totals per month.")
    async with Client(edge.server, sampling_callback=model) as client:
        suggestion = structured(
            await client.call_tool("suggest_query", {"question": "revenue per month", "tables": ["silver.orders"]})
        )

    assert suggestion["sampled"] is True
    assert suggestion["suggested_sql"] == SUGGESTED
    assert [t["table_name"] for t in suggestion["context"]["tables"]] == [f"tenant_{tenant_id}.silver.orders"]
    assert "revenue per month" in model.question
    assert f"tenant_{tenant_id}.silver.orders" in model.question


async def test_suggest_query_without_tables_briefs_the_model_on_the_whole_lakehouse(
    edge: EdgeState, tenant_id: str
) -> None:
    model = FakeModel(SUGGESTED)
    async with Client(edge.server, sampling_callback=model) as client:
        suggestion = structured(await client.call_tool("suggest_query", {"question": "revenue per month"}))

    tables = {t["table_name"]: t for t in suggestion["context"]["tables"]}
    assert set(tables) == {
        f"tenant_{tenant_id}.{name}"
        for name in ("bronze.scratch", "bronze.shop_orders", "silver.orders", "gold.revenue")
    }
    assert tables[f"tenant_{tenant_id}.bronze.shop_orders"]["keys"] == ["id"]
    assert [c["name"] for c in tables[f"tenant_{tenant_id}.bronze.scratch"]["columns"]] == ["id", "total"]
    assert suggestion["suggested_sql"] == SUGGESTED, "a bare SELECT answer is the SQL itself"


async def test_explain_data_runs_the_query_and_asks_about_its_rows(edge: EdgeState) -> None:
    model = FakeModel("Two orders, 12.50 and 7.25.")
    async with Client(edge.server, sampling_callback=model) as client:
        explained = structured(
            await client.call_tool("explain_data", {"sql": "SELECT id, total FROM silver.orders", "max_rows": 10})
        )

    assert explained["answer"] == model.answer
    assert explained["context"]["rows"] == [[1, "12.50"], [2, "7.25"]]
    assert "SELECT id, total FROM silver.orders" in model.question
    assert "12.50" in model.question


async def test_without_sampling_the_tools_return_the_context_and_instructions_for_the_calling_model(
    edge: EdgeState,
) -> None:
    async with Client(edge.server) as client:
        analysis = structured(await client.call_tool("analyze_schema", {"table_name": "silver.orders"}))
        suggestion = structured(await client.call_tool("suggest_query", {"question": "how many orders?"}))
        explained = structured(await client.call_tool("explain_data", {"sql": "SELECT id FROM silver.orders"}))

    for result in (analysis, suggestion, explained):
        assert result["sampled"] is False
        assert result["answer"] is None
        assert "did not declare the MCP sampling capability" in result["not_sampled_because"]
        assert "Do this yourself with `context`" in result["instructions"]
    assert analysis["context"]["description"]["columns"][1]["null_count"] == 7
    assert suggestion["suggested_sql"] is None
    assert explained["context"]["row_count"] == 2


async def test_a_client_that_refuses_to_sample_gets_the_context_and_the_reason(edge: EdgeState) -> None:
    async with Client(edge.server, sampling_callback=refuse, mode="legacy") as client:
        analysis = structured(await client.call_tool("analyze_schema", {"table_name": "silver.orders"}))

    assert analysis["sampled"] is False
    assert "the user declined the sampling request" in analysis["not_sampled_because"]
    assert analysis["instructions"]


async def test_over_streamable_http_the_model_is_asked_through_an_input_required_round(edge_url: str) -> None:
    model = FakeModel("Explained.")
    async with Client(edge_url, sampling_callback=model) as client:
        explained = structured(await client.call_tool("explain_data", {"sql": "SELECT id FROM silver.orders"}))

    assert explained["sampled"] is True
    assert explained["answer"] == "Explained."
    assert len(model.asked) == 1


async def test_over_stateless_http_a_handshake_client_is_told_why_its_model_was_not_asked(edge_url: str) -> None:
    model = FakeModel("never asked")
    async with Client(edge_url, sampling_callback=model, mode="legacy") as client:
        explained = structured(await client.call_tool("explain_data", {"sql": "SELECT id FROM silver.orders"}))

    assert explained["sampled"] is False
    assert "stateless HTTP before protocol 2026-07-28" in explained["not_sampled_because"]
    assert model.asked == []
