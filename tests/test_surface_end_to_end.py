"""The whole MCP surface on the real stack: explore a source, sync, curate bronze → silver → gold,
upload files, ask the client's model, read resources and prompts — all through a real MCP client."""

from __future__ import annotations

import base64
import io
import json
from typing import Any

import asyncpg
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from lakegate.devstack.stack import Stack
from mcp import Client
from mcp.client.context import ClientRequestContext
from mcp.types import CreateMessageRequestParams, CreateMessageResult, TextContent
from openpyxl import Workbook

from tests.conftest import Source
from tests.mcp_calls import call, failure
from tests.sources import create_orders_table

TOOLS = {
    "connect_postgres", "test_connection", "list_source_tables", "describe_source_table", "query_source",
    "sync_table_to_bronze", "get_sync_run", "list_sync_runs", "query_sql", "list_tables", "describe_table",
    "preview_table", "get_metadata", "transform_to_silver", "create_gold_view", "upload_file", "list_sources",
    "list_datasets", "analyze_schema", "suggest_query", "explain_data", "cancel_sync", "schedule_sync",
    "list_schedules", "delete_schedule", "list_audit_records",
}  # fmt: skip


async def _shop(source: Source) -> None:
    """`orders` (100 rows) referencing `customers`, whose names need trimming and hold duplicates."""
    await create_orders_table(source.admin_dsn, 100)
    conn = await asyncpg.connect(source.admin_dsn)
    try:
        await conn.execute(
            """
            CREATE TABLE customers (id int PRIMARY KEY, name text, signup text);
            INSERT INTO customers
              SELECT g, '  Customer ' || (g % 40) || '  ', '2024-01-' || lpad((1 + g % 28)::text, 2, '0')
              FROM generate_series(0, 99999) g;
            ALTER TABLE orders ADD CONSTRAINT orders_customer FOREIGN KEY (customer_id) REFERENCES customers(id);
            """
        )
    finally:
        await conn.close()


async def test_every_tool_resource_template_and_prompt_is_listed_with_schemas(stack: Stack) -> None:
    async with Client(stack.urls.mcp) as client:
        tools = (await client.list_tools()).tools
        templates = (await client.list_resource_templates()).resource_templates
        prompts = (await client.list_prompts()).prompts
    assert {t.name for t in tools} == TOOLS
    for tool in tools:
        assert tool.output_schema, tool.name
        assert tool.annotations is not None, tool.name
        assert tool.description, tool.name
        assert "tenant_id" not in json.dumps(tool.input_schema), tool.name
    read_only = {t.name for t in tools if t.annotations and t.annotations.read_only_hint}
    assert {"query_sql", "query_source", "list_tables", "describe_source_table"} <= read_only
    assert not {"sync_table_to_bronze", "transform_to_silver", "upload_file", "connect_postgres"} & read_only
    assert {t.uri_template for t in templates} == {
        "datasource://{id}/status",
        "datasource://{id}/tables",
        "table://{catalog}/{schema}/{name}/schema",
        "table://{catalog}/{schema}/{name}/preview",
        "run://{id}",
        "schedule://{id}",
    }
    assert {p.name for p in prompts} == {"analyze_schema", "troubleshoot_connection", "generate_query"}


async def test_an_agent_explores_a_source_read_only_before_syncing_it(
    stack: Stack, source: Source, unique: str
) -> None:
    await _shop(source)
    async with Client(stack.urls.mcp) as client:
        connection = await call(client, "connect_postgres", source.connect_arguments(f"ex{unique}"))
        cid = connection["connection_id"]
        status = await call(client, "test_connection", {"connection_id": cid})
        assert status["server_version"].split(".")[0].isdigit()
        assert status["read_only"] is True

        detail = await call(client, "describe_source_table", {"connection_id": cid, "table_name": "orders"})
        assert detail["primary_key"] == ["id"]
        assert [fk["references_table"] for fk in detail["foreign_keys"]] == ["public.customers"]
        assert any(index["primary"] for index in detail["indexes"])
        assert detail["samples"]["id"]

        answer = await call(
            client, "query_source", {"connection_id": cid, "sql": "SELECT count(*), sum(amount) FROM orders"}
        )
        conn = await asyncpg.connect(source.admin_dsn)
        try:
            count, total = await conn.fetchrow("SELECT count(*), sum(amount)::text FROM orders")
        finally:
            await conn.close()
        assert [str(v) for v in answer["rows"][0]] == [str(count), total]

        capped = await call(
            client, "query_source", {"connection_id": cid, "sql": "SELECT * FROM orders", "max_rows": 7}
        )
        assert capped["row_count"] == 7
        assert capped["truncated"] is True

        for hostile in (
            "COMMIT; DROP TABLE orders",
            "DELETE FROM orders",
            "WITH gone AS (DELETE FROM orders RETURNING *) SELECT * FROM gone",
            "SELECT * FROM orders FOR UPDATE",
            "SELECT pg_read_file('/etc/passwd')",
            "SELECT setval('orders_id_seq', 1)",
            "/* hi */ DROP TABLE customers --",
            "COPY orders TO PROGRAM 'touch /tmp/x'",
        ):
            message = await failure(client, "query_source", {"connection_id": cid, "sql": hostile})
            assert "Traceback" not in message
            assert ".rpc." not in message
        conn = await asyncpg.connect(source.admin_dsn)
        try:
            assert await conn.fetchval("SELECT count(*) FROM orders") == 100
        finally:
            await conn.close()

        listed = await call(client, "list_sources", {})
        assert cid in {s["connection_id"] for s in listed["sources"]}
        assert "password" not in json.dumps(listed)


async def test_bronze_becomes_silver_and_gold_with_lineage_an_agent_can_follow(
    stack: Stack, source: Source, unique: str
) -> None:
    await _shop(source)
    name = f"cur{unique}"
    async with Client(stack.urls.mcp) as client:
        connection = await call(client, "connect_postgres", source.connect_arguments(name))
        run = await call(
            client, "sync_table_to_bronze", {"connection_id": connection["connection_id"], "table_name": "customers"}
        )
        bronze = f"{name}_customers"

        described = await call(client, "describe_table", {"table_name": bronze})
        columns = {c["name"]: c for c in described["columns"]}
        assert described["row_count"] == 100_000
        assert columns["id"]["min"] == 0
        assert columns["id"]["max"] == 99_999
        assert columns["name"]["null_count"] == 0

        preview = await call(client, "preview_table", {"table_name": f"bronze.{bronze}", "limit": 3})
        assert preview["row_count"] == 3

        silver = await call(
            client,
            "transform_to_silver",
            {
                "bronze_table": bronze,
                "transformations": [
                    {"kind": "rename", "column": "name", "to": "customer_name"},
                    {"kind": "trim", "columns": ["customer_name"]},
                    {"kind": "cast", "column": "signup", "to": "date"},
                    {"kind": "filter", "column": "id", "op": "<", "value": 1000},
                    {"kind": "dedupe", "keys": ["customer_name"], "latest_by": "id"},
                ],
            },
        )
        assert silver["rows_in"] == 100_000
        assert silver["rows_out"] == 40
        assert "ROW_NUMBER" in silver["sql"].upper()

        gold = await call(
            client,
            "create_gold_view",
            {"name": f"{name}_signups", "sql": f"SELECT signup, count(*) AS n FROM silver.{bronze} GROUP BY signup"},
        )
        assert gold["upstream"] == [f"tenant_default.silver.{bronze}"]
        rows = await call(client, "query_sql", {"sql": f"SELECT sum(n) FROM gold.{name}_signups"})
        assert [[str(v) for v in row] for row in rows["rows"]] == [["40"]]  # SUM of bigint is a DECIMAL(38,0)
        latest = await call(client, "query_sql", {"sql": f"SELECT max(id), min(customer_name) FROM silver.{bronze}"})
        assert latest["rows"] == [[999, "Customer 0"]]

        refused = await failure(
            client, "create_gold_view", {"name": f"{name}_raw", "sql": f"SELECT * FROM bronze.{bronze}"}
        )
        assert "bronze" in refused

        metadata = await call(client, "get_metadata", {})
        tables = {t["table_name"]: t for t in metadata["tables"]}
        assert tables[f"tenant_default.bronze.{bronze}"]["keys"] == ["id"]
        assert tables[f"tenant_default.bronze.{bronze}"]["upstream"] == [f"{name}:public.customers"]
        assert tables[f"tenant_default.silver.{bronze}"]["upstream"] == [f"tenant_default.bronze.{bronze}"]
        assert tables[f"tenant_default.gold.{name}_signups"]["upstream"] == [f"tenant_default.silver.{bronze}"]

        datasets = await call(client, "list_datasets", {})
        kinds = {d["table_name"]: d["kind"] for d in datasets["datasets"]}
        assert kinds[f"tenant_default.silver.{bronze}"] == "silver"
        assert kinds[f"tenant_default.gold.{name}_signups"] == "gold"

        runs = await call(client, "list_sync_runs", {"connection_id": connection["connection_id"]})
        assert [r["run_id"] for r in runs["runs"]] == [run["run_id"]]
        assert runs["runs"][0]["duration_seconds"] > 0

        for layer, expected in (("silver", bronze), ("gold", f"{name}_signups")):
            listed = await call(client, "list_tables", {"layer": layer})
            assert expected in {t["name"] for t in listed["tables"]}


def _xlsx(rows: list[list[Any]]) -> bytes:
    book = Workbook()
    sheet = book.active
    assert sheet is not None
    for row in rows:
        sheet.append(row)
    out = io.BytesIO()
    book.save(out)
    return out.getvalue()


def _parquet() -> bytes:
    out = io.BytesIO()
    pq.write_table(pa.table({"id": [1, 2, 3], "name": ["ä", "b", None], "amount": [1.5, 2.25, 3.0]}), out)
    return out.getvalue()


PEOPLE = [
    {"id": 1, "name": "ä", "amount": 1.5},
    {"id": 2, "name": "b", "amount": 2.25},
    {"id": 3, "name": None, "amount": 3.0},
]
UPLOADS = {
    "csv": ("people.csv", b"id,name,amount\n1,\xc3\xa4,1.5\n2,b,2.25\n3,,3.0\n"),
    "tsv": ("people.tsv", b"id\tname\tamount\n1\t\xc3\xa4\t1.5\n2\tb\t2.25\n3\t\t3.0\n"),
    "json": ("people.json", json.dumps(PEOPLE).encode()),
    "ndjson": ("people.ndjson", "".join(json.dumps(p) + "\n" for p in PEOPLE).encode()),
    "parquet": ("people.parquet", _parquet()),
    "xlsx": ("people.xlsx", _xlsx([["id", "name", "amount"], [1, "ä", 1.5], [2, "b", 2.25], [3, None, 3.0]])),
}  # fmt: skip

BROKEN = {
    "csv": ("broken.csv", b"id,name\n1,a\n2,b,extra\n"),
    "tsv": ("broken.tsv", b"id\tname\n1\ta\textra\n"),
    "json": ("broken.json", b'[{"id": 1}, {"id": 2'),
    "ndjson": ("broken.ndjson", b'{"id": 1}\n{"id": \n'),
    "parquet": ("broken.parquet", b"PAR1 this is not parquet"),
    "xlsx": ("broken.xlsx", b"PK\x03\x04 not really a workbook"),
}


@pytest.mark.parametrize("kind", list(UPLOADS))
async def test_an_uploaded_file_of_each_format_round_trips_and_a_broken_one_writes_nothing(
    stack: Stack, unique: str, kind: str
) -> None:
    dataset = f"up_{kind}_{unique}"
    file_name, content = UPLOADS[kind]
    async with Client(stack.urls.mcp) as client:
        uploaded = await call(
            client,
            "upload_file",
            {"file_content": base64.b64encode(content).decode(), "file_name": file_name, "dataset_name": dataset},
        )
        assert uploaded["row_count"] == 3
        rows = await call(client, "query_sql", {"sql": f"SELECT id, name, amount FROM bronze.{dataset} ORDER BY id"})
        assert [[int(r[0]), r[1] or None, float(r[2])] for r in rows["rows"]] == [
            [1, "ä", 1.5],
            [2, "b", 2.25],
            [3, None, 3.0],
        ]

        broken_name, broken = BROKEN[kind]
        message = await failure(
            client,
            "upload_file",
            {"file_content": base64.b64encode(broken).decode(), "file_name": broken_name, "dataset_name": dataset},
        )
        assert broken_name in message
        still = await call(client, "query_sql", {"sql": f"SELECT count(*) FROM bronze.{dataset}"})
        assert still["rows"] == [[3]]


class ClientModel:
    """The client's own model, as a host application would answer sampling requests."""

    def __init__(self) -> None:
        self.questions: list[str] = []

    async def __call__(self, context: ClientRequestContext, params: CreateMessageRequestParams) -> CreateMessageResult:
        [message] = params.messages
        assert isinstance(message.content, TextContent)
        self.questions.append(message.content.text)
        text = "Try this:\n```sql\nSELECT count(*) FROM bronze.orders\n```"
        return CreateMessageResult(role="assistant", content=TextContent(type="text", text=text), model="host-model")


async def test_ai_tools_ask_the_clients_model_with_real_context_and_degrade_without_sampling(
    stack: Stack, source: Source, unique: str
) -> None:
    await _shop(source)
    name = f"ai{unique}"
    model = ClientModel()
    async with Client(stack.urls.mcp, sampling_callback=model) as client:
        connection = await call(client, "connect_postgres", source.connect_arguments(name))
        await call(
            client, "sync_table_to_bronze", {"connection_id": connection["connection_id"], "table_name": "orders"}
        )
        analysis = await call(client, "analyze_schema", {"table_name": f"{name}_orders"})
        suggestion = await call(client, "suggest_query", {"question": "How many orders?", "tables": [f"{name}_orders"]})
        explained = await call(
            client, "explain_data", {"sql": f"SELECT paid, count(*) FROM bronze.{name}_orders GROUP BY paid"}
        )
    assert analysis["sampled"] is True
    assert analysis["model"] == "host-model"
    assert suggestion["suggested_sql"] == "SELECT count(*) FROM bronze.orders"
    assert explained["sampled"] is True
    assert any("customer_id" in q for q in model.questions), "the model was not shown the real columns"

    async with Client(stack.urls.mcp) as client:
        plain = await call(client, "analyze_schema", {"table_name": f"{name}_orders"})
    assert plain["sampled"] is False
    assert plain["instructions"]
    assert plain["context"]["description"]["row_count"] == 100


async def test_resources_prompts_and_completions_carry_the_tenants_real_objects(
    stack: Stack, source: Source, unique: str
) -> None:
    await _shop(source)
    name = f"res{unique}"
    async with Client(stack.urls.mcp) as client:
        connection = await call(client, "connect_postgres", source.connect_arguments(name))
        cid = connection["connection_id"]
        run = await call(client, "sync_table_to_bronze", {"connection_id": cid, "table_name": "orders"})
        uris = {str(r.uri) for r in (await client.list_resources()).resources}
        assert f"datasource://{cid}/status" in uris
        assert f"table://tenant_default/bronze/{name}_orders/schema" in uris

        status = json.loads((await client.read_resource(f"datasource://{cid}/status")).contents[0].text)
        assert status["reachable"] is True
        schema = json.loads(
            (await client.read_resource(f"table://tenant_default/bronze/{name}_orders/schema")).contents[0].text
        )
        assert "customer_id" in {c["name"] for c in schema["columns"]}
        preview = json.loads(
            (await client.read_resource(f"table://tenant_default/bronze/{name}_orders/preview")).contents[0].text
        )
        assert preview["rows"]
        run_view = json.loads((await client.read_resource(f"run://{run['run_id']}")).contents[0].text)
        assert run_view["status"] == "succeeded"

        prompt = await client.get_prompt("troubleshoot_connection", {"connection_id": cid})
        text = " ".join(m.content.text for m in prompt.messages if isinstance(m.content, TextContent))
        assert source.user in text
        assert source.password not in text
        prompt = await client.get_prompt("analyze_schema", {"table_name": f"{name}_orders"})
        assert "customer_id" in " ".join(m.content.text for m in prompt.messages if isinstance(m.content, TextContent))

        from mcp.types import ResourceTemplateReference

        completion = await client.complete(
            ResourceTemplateReference(type="ref/resource", uri="datasource://{id}/status"),
            {"name": "id", "value": "src_"},
        )
        assert cid in completion.completion.values
