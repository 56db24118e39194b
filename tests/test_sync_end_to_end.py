"""An agent drives the real stack through the MCP edge: connect, explore, sync, query, get the event."""

from __future__ import annotations

import datetime as dt
import json
import sys
from typing import Any

import asyncpg
import nats
from lakegate.devstack.stack import Stack
from mcp import Client, StdioServerParameters
from nats.js.api import ConsumerConfig, DeliverPolicy

from tests.conftest import Source
from tests.mcp_calls import call
from tests.sources import create_every_type_table, create_orders_table

EXPECTED_EVERY_TYPE = """
SELECT id, i, s, n::text AS n, n_free::text AS n_free, f, r, b, ts, tz, d, u::text AS u, j::text AS j,
       jb::text AS jb, encode(by, 'base64') AS by, t, vc, m::text AS m, arr, iv::text AS iv, textin(inet_out(ip)) AS ip
FROM every_type ORDER BY id
"""


def _as_json(value: Any) -> Any:
    """What the warehouse returns for a value PostgreSQL returned (see services/loader/README.md)."""
    if isinstance(value, dt.datetime):
        return value.astimezone(dt.UTC).isoformat() if value.tzinfo else value.isoformat()
    if isinstance(value, dt.date):
        return value.isoformat()
    return value


async def _expected_every_type(dsn: str) -> list[list[Any]]:
    conn = await asyncpg.connect(dsn)
    try:
        await conn.execute("SET IntervalStyle = iso_8601")
        return [[_as_json(v) for v in record.values()] for record in await conn.fetch(EXPECTED_EVERY_TYPE)]
    finally:
        await conn.close()


async def _completed_event(stack: Stack, run_id: str) -> dict[str, Any]:
    """Replay the public event stream from the start, as a late subscriber would, and find the run's event."""
    nc = await nats.connect(stack.urls.nats, **stack.nats_credentials())
    try:
        js = nc.jetstream()
        sub = await js.subscribe(
            "lakegate.events.default.sync.completed", config=ConsumerConfig(deliver_policy=DeliverPolicy.ALL)
        )
        while True:
            message = await sub.next_msg(timeout=10)
            event: dict[str, Any] = json.loads(message.data)
            if event["subject"] == run_id:
                return event
    finally:
        await nc.close()


async def _sync_every_type(client: Client, source: Source, name: str) -> dict[str, Any]:
    connection = await call(client, "connect_postgres", source.connect_arguments(name))
    assert connection["server_version"]
    assert connection["read_only"] is True

    listed = await call(client, "list_source_tables", {"connection_id": connection["connection_id"]})
    (table,) = [t for t in listed["tables"] if t["table_name"] == "public.every_type"]
    columns = {c["name"]: c for c in table["columns"]}
    assert columns["n"]["synced_as"] == "decimal128(38, 10)"
    assert [name for name, c in columns.items() if not c["mapped"]] == []
    assert (columns["ip"]["type"], columns["ip"]["synced_as"]) == ("inet", "string")

    progress: list[tuple[float, str | None]] = []

    async def on_progress(done: float, total: float | None, message: str | None) -> None:
        progress.append((done, message))

    run = await call(
        client,
        "sync_table_to_bronze",
        {"connection_id": connection["connection_id"], "table_name": "every_type"},
        progress=on_progress,
    )
    assert run["status"] == "succeeded", run
    assert run["row_count"] == 4
    assert run["bronze_table"] == f"tenant_default.bronze.{name}_every_type"
    assert progress, "the client sent a progress token and got no progress"
    assert [p for p, _ in progress] == sorted(p for p, _ in progress)
    return run


async def test_an_agent_syncs_every_mapped_type_over_http_and_reads_back_exact_values(
    stack: Stack, source: Source, unique: str
) -> None:
    await create_every_type_table(source.admin_dsn)
    name = f"http{unique}"
    async with Client(stack.urls.mcp) as client:
        run = await _sync_every_type(client, source, name)
        result = await call(client, "query_sql", {"sql": f"SELECT * FROM bronze.{name}_every_type ORDER BY id"})

    expected = await _expected_every_type(source.admin_dsn)
    assert result["row_count"] == 4
    assert not result["truncated"]
    assert [c["name"] for c in result["columns"]][:3] == ["id", "i", "s"]
    for got, want in zip(result["rows"], expected, strict=True):
        assert got == want

    event = await _completed_event(stack, run["run_id"])
    assert event["specversion"] == "1.0"
    assert event["type"] == "io.lakegate.sync.completed.v1"
    assert event["data"]["row_count"] == 4
    assert event["data"]["target"]["name"] == f"{name}_every_type"


async def test_an_agent_syncs_over_stdio_too(
    stack: Stack, source: Source, unique: str, edge_env: dict[str, str]
) -> None:
    await create_every_type_table(source.admin_dsn)
    name = f"stdio{unique}"
    server = StdioServerParameters(
        command=sys.executable, args=["-m", "lakegate.edge", "--transport", "stdio"], env=edge_env
    )
    async with Client(server) as client:
        await _sync_every_type(client, source, name)
        result = await call(client, "query_sql", {"sql": f"SELECT id, n, tz FROM {name}_every_type ORDER BY id"})
    assert result["rows"][0] == [1, "1234567890123456789012345678.1234567890", "0001-01-01T00:00:00+00:00"]


async def test_a_hundred_thousand_mixed_rows_sum_to_the_sources_answer(
    stack: Stack, source: Source, unique: str
) -> None:
    await create_orders_table(source.admin_dsn, 100_000)
    name = f"big{unique}"
    aggregate = (
        "SELECT count(*), sum(amount), sum(quantity), sum(customer_id), count(comment), min(created_at), "
        "max(local_time), sum(CASE WHEN paid THEN 1 ELSE 0 END) FROM {table}"
    )
    async with Client(stack.urls.mcp) as client:
        connection = await call(client, "connect_postgres", source.connect_arguments(name))
        run = await call(
            client, "sync_table_to_bronze", {"connection_id": connection["connection_id"], "table_name": "orders"}
        )
        assert run["row_count"] == 100_000
        result = await call(client, "query_sql", {"sql": aggregate.format(table=f"bronze.{name}_orders")})

    conn = await asyncpg.connect(source.admin_dsn)
    try:
        want = [_as_json(v) for v in (await conn.fetchrow(aggregate.format(table="orders"))).values()]
    finally:
        await conn.close()
    (got,) = result["rows"]
    assert [str(v) for v in got] == [str(v) for v in want]


async def test_an_agent_syncs_a_whole_schema_in_one_call_one_run_per_table(
    stack: Stack, source: Source, unique: str
) -> None:
    conn = await asyncpg.connect(source.admin_dsn)
    try:
        await conn.execute(
            """
            CREATE SCHEMA shop;
            CREATE TABLE shop.small AS SELECT g AS id, g * 2 AS twice FROM generate_series(1, 10) g;
            CREATE TABLE shop.medium AS SELECT g AS id, md5(g::text) AS label FROM generate_series(1, 5000) g;
            CREATE TABLE shop.large AS SELECT g AS id, g::numeric / 7 AS share FROM generate_series(1, 60000) g;
            CREATE VIEW shop.recent AS SELECT * FROM shop.small WHERE id > 5;
            GRANT USAGE ON SCHEMA shop TO PUBLIC;
            GRANT SELECT ON ALL TABLES IN SCHEMA shop TO PUBLIC;
            """
        )
    finally:
        await conn.close()
    name = f"schema{unique}"
    progress: list[float] = []

    async def on_progress(done: float, total: float | None, message: str | None) -> None:
        progress.append(done)

    async with Client(stack.urls.mcp) as client:
        connection = await call(client, "connect_postgres", source.connect_arguments(name))
        result = await call(
            client,
            "sync_table_to_bronze",
            {"connection_id": connection["connection_id"], "schema_name": "shop"},
            progress=on_progress,
        )
        counts = {
            table: (await call(client, "query_sql", {"sql": f"SELECT count(*) FROM bronze.{name}_shop_{table}"}))[
                "rows"
            ][0][0]
            for table in ("small", "medium", "large")
        }

    assert sorted(t["source_table"] for t in result["tables"]) == ["shop.large", "shop.medium", "shop.small"]
    assert {t["outcome"] for t in result["tables"]} == {"succeeded"}, result
    assert len({t["run"]["run_id"] for t in result["tables"]}) == 3
    assert result["succeeded"] == 3
    assert counts == {"small": 10, "medium": 5000, "large": 60000}
    assert progress == sorted(progress)
    assert progress[-1] == 12.0
