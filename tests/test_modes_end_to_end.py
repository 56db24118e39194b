"""Incremental and merge syncs, schema drift, cancellation and schedules, through the MCP edge."""

from __future__ import annotations

import asyncio

import asyncpg
from lakegate.devstack.stack import Stack
from mcp import Client

from tests.conftest import Source
from tests.mcp_calls import call, failure
from tests.progress import extracting_runs

ACCOUNTS = """
CREATE TABLE accounts (
    id bigint PRIMARY KEY,
    owner text NOT NULL,
    balance numeric(14, 2) NOT NULL,
    updated_at timestamptz NOT NULL DEFAULT clock_timestamp()
);
INSERT INTO accounts (id, owner, balance, updated_at)
SELECT g, 'owner ' || g, g * 10, timestamptz '2024-01-01 00:00:00+00' + g * interval '1 second'
FROM generate_series(1, 1000) g;
"""


async def _source_rows(source: Source) -> list[list[str]]:
    conn = await asyncpg.connect(source.admin_dsn)
    try:
        rows = await conn.fetch("SELECT id, owner, balance::text FROM accounts ORDER BY id")
    finally:
        await conn.close()
    return [[str(r[0]), r[1], r[2]] for r in rows]


async def _target_rows(client: Client, table: str) -> list[list[str]]:
    result = await call(
        client, "query_sql", {"sql": f"SELECT id, owner, balance FROM {table} ORDER BY id", "max_rows": 5000}
    )
    return [[str(v) for v in row] for row in result["rows"]]


CHANGES = """
UPDATE accounts SET balance = balance + 1, updated_at = clock_timestamp() WHERE id IN (3, 30, 300);
INSERT INTO accounts (id, owner, balance) VALUES (1001, 'new one', 5), (1002, 'new two', 6);
"""


async def test_incremental_appends_only_rows_past_the_cursor(stack: Stack, source: Source, unique: str) -> None:
    await source.execute(ACCOUNTS)
    name = f"inc{unique}"
    async with Client(stack.urls.mcp) as client:
        connection = await call(client, "connect_postgres", source.connect_arguments(name))
        arguments = {"connection_id": connection["connection_id"], "table_name": "accounts", "sync_mode": "incremental"}
        first = await call(client, "sync_table_to_bronze", arguments)
        assert first["row_count"] == 1000
        assert first["cursor"]["column"] == "updated_at", "the cursor column should be inferred"

        again = await call(client, "sync_table_to_bronze", arguments)
        assert again["row_count"] == 0, "nothing changed, so nothing is appended"

        await source.execute(CHANGES)
        third = await call(client, "sync_table_to_bronze", arguments)
        assert third["row_count"] == 5, "3 updated and 2 inserted rows, and only those"
        result = await call(
            client, "query_sql", {"sql": f"SELECT count(*), count(DISTINCT id) FROM bronze.{name}_accounts"}
        )
        assert result["rows"] == [[1005, 1002]]


async def test_merge_upserts_on_the_primary_key_so_the_target_equals_the_source(
    stack: Stack, source: Source, unique: str
) -> None:
    await source.execute(ACCOUNTS)
    name = f"mrg{unique}"
    table = f"bronze.{name}_accounts"
    async with Client(stack.urls.mcp) as client:
        connection = await call(client, "connect_postgres", source.connect_arguments(name))
        arguments = {"connection_id": connection["connection_id"], "table_name": "accounts", "sync_mode": "merge"}
        await call(client, "sync_table_to_bronze", arguments)
        await source.execute(CHANGES)
        second = await call(client, "sync_table_to_bronze", arguments)
        assert second["row_count"] == 5
        assert await _target_rows(client, table) == await _source_rows(source)


async def test_schema_drift_adds_columns_keeps_dropped_ones_and_refuses_incompatible_types(
    stack: Stack, source: Source, unique: str
) -> None:
    await source.execute(ACCOUNTS)
    name = f"dr{unique}"
    table = f"bronze.{name}_accounts"
    async with Client(stack.urls.mcp) as client:
        connection = await call(client, "connect_postgres", source.connect_arguments(name))
        arguments = {"connection_id": connection["connection_id"], "table_name": "accounts", "sync_mode": "merge"}
        await call(client, "sync_table_to_bronze", arguments)

        await source.execute(
            "ALTER TABLE accounts ADD COLUMN tier text; ALTER TABLE accounts DROP COLUMN owner;"
            "UPDATE accounts SET tier = 'gold', updated_at = clock_timestamp() WHERE id = 7",
        )
        drifted = await call(client, "sync_table_to_bronze", arguments)
        changes = {(c["column"], c["change"]) for c in drifted["schema_changes"]}
        assert changes == {("tier", "added"), ("owner", "dropped")}
        rows = await call(
            client, "query_sql", {"sql": f"SELECT id, owner, tier FROM {table} WHERE id IN (7, 8) ORDER BY id"}
        )
        assert rows["rows"] == [[7, None, "gold"], [8, "owner 8", None]]

        described = await call(client, "describe_table", {"table_name": table, "with_stats": False})
        version = described["version"]
        await source.execute(
            "ALTER TABLE accounts ALTER COLUMN tier TYPE int USING 1;"
            "UPDATE accounts SET updated_at = clock_timestamp()",
        )
        message = await failure(client, "sync_table_to_bronze", arguments)
        assert "tier" in message
        after = await call(client, "describe_table", {"table_name": table, "with_stats": False})
        assert after["version"] == version, "a refused type change must not write anything"


async def test_a_cancelled_sync_leaves_the_target_as_it_was(stack: Stack, source: Source, unique: str) -> None:
    await source.execute(ACCOUNTS)
    await source.execute(
        "INSERT INTO accounts (id, owner, balance) SELECT g, 'x', 1 FROM generate_series(1001, 1000000) g"
    )
    name = f"can{unique}"
    async with (
        Client(stack.urls.mcp) as client,
        Client(stack.urls.mcp) as other,
        extracting_runs(stack) as extracting,
    ):
        connection = await call(client, "connect_postgres", source.connect_arguments(name))
        sync = asyncio.create_task(
            call(
                client,
                "sync_table_to_bronze",
                {"connection_id": connection["connection_id"], "table_name": "accounts"},
            )
        )
        run_id = await asyncio.wait_for(extracting.get(), 60)
        cancelled = await call(other, "cancel_sync", {"run_id": run_id})
        assert cancelled["status"] == "cancelled"
        finished = await asyncio.wait_for(sync, 60)
        assert finished["status"] == "cancelled"
        listed = await call(client, "list_tables", {"layer": "bronze"})
        assert f"{name}_accounts" not in {t["name"] for t in listed["tables"]}, "a cancelled run wrote a table"
        again = await call(other, "cancel_sync", {"run_id": run_id})
        assert again["status"] == "cancelled", "cancelling twice is harmless"


async def test_schedules_are_created_listed_kept_across_a_catalog_restart_and_deleted(
    stack: Stack, source: Source, unique: str
) -> None:
    await source.execute(ACCOUNTS)
    name = f"sch{unique}"
    async with Client(stack.urls.mcp) as client:
        connection = await call(client, "connect_postgres", source.connect_arguments(name))
        schedule = await call(
            client,
            "schedule_sync",
            {
                "connection_id": connection["connection_id"],
                "table_name": "accounts",
                "sync_mode": "merge",
                "every": "1h",
            },
        )
        refused = await failure(
            client,
            "schedule_sync",
            {"connection_id": connection["connection_id"], "table_name": "accounts", "cron": "not a cron"},
        )
        assert "cron" in refused.lower()

    stack.kill_service("catalog")
    await asyncio.to_thread(stack.wait_for_restarts, "catalog", stack.restarts("catalog") + 1, 60)
    await asyncio.to_thread(stack.wait_ready, "catalog", 60)

    async with Client(stack.urls.mcp) as client:
        listed = await call(client, "list_schedules", {})
        assert schedule["schedule_id"] in {s["schedule_id"] for s in listed["schedules"]}
        await call(client, "delete_schedule", {"schedule_id": schedule["schedule_id"]})
        listed = await call(client, "list_schedules", {})
        assert schedule["schedule_id"] not in {s["schedule_id"] for s in listed["schedules"]}


async def test_a_merge_with_detect_deletes_removes_rows_deleted_at_the_source(
    stack: Stack, source: Source, unique: str
) -> None:
    await source.execute(ACCOUNTS)
    name = f"del{unique}"
    table = f"bronze.{name}_accounts"
    async with Client(stack.urls.mcp) as client:
        connection = await call(client, "connect_postgres", source.connect_arguments(name))
        arguments = {"connection_id": connection["connection_id"], "table_name": "accounts", "sync_mode": "merge"}
        await call(client, "sync_table_to_bronze", arguments)
        await source.execute("DELETE FROM accounts WHERE id % 100 = 7;" + CHANGES)

        kept = await call(client, "sync_table_to_bronze", arguments)
        still = await call(client, "query_sql", {"sql": f"SELECT count(*) FROM {table}"})
        seen = await call(client, "sync_table_to_bronze", {**arguments, "detect_deletes": True})
        recorded = await call(client, "get_sync_run", {"run_id": seen["run_id"]})
        refused = await failure(
            client, "sync_table_to_bronze", {**arguments, "sync_mode": "full", "detect_deletes": True}
        )
        after = await _target_rows(client, table)

    assert kept["row_count"] == 5
    assert kept["deleted_rows"] is None
    assert still["rows"] == [[1002]], "without detect_deletes the 10 deleted rows stay"
    assert seen["status"] == "succeeded"
    assert seen["deleted_rows"] == recorded["deleted_rows"] == 10
    assert after == await _source_rows(source)
    assert len(after) == 992
    assert "detect_deletes applies to sync_mode 'merge' only" in refused


async def test_full_then_merge_adding_a_column_merge_incremental_and_merge_again_end_equal_to_the_source(
    stack: Stack, source: Source, unique: str
) -> None:
    await source.execute(ACCOUNTS)
    name = f"chain{unique}"
    table = f"bronze.{name}_accounts"
    async with Client(stack.urls.mcp) as client:
        connection = await call(client, "connect_postgres", source.connect_arguments(name))
        arguments = {"connection_id": connection["connection_id"], "table_name": "accounts"}
        await call(client, "sync_table_to_bronze", {**arguments, "sync_mode": "full"})
        await source.execute(
            "ALTER TABLE accounts ADD COLUMN email text;"
            "UPDATE accounts SET email = 'e' || id, updated_at = clock_timestamp() WHERE id <= 10;",
        )
        added = await call(client, "sync_table_to_bronze", {**arguments, "sync_mode": "merge"})
        await source.execute(CHANGES)
        merged = await call(client, "sync_table_to_bronze", {**arguments, "sync_mode": "merge"})
        await source.execute(
            "INSERT INTO accounts (id, owner, balance, email) VALUES (1003, 'three', 7, 'x@y');",
        )
        appended = await call(client, "sync_table_to_bronze", {**arguments, "sync_mode": "incremental"})
        await source.execute("UPDATE accounts SET owner = 'moved', updated_at = clock_timestamp() WHERE id = 5;")
        last = await call(client, "sync_table_to_bronze", {**arguments, "sync_mode": "merge"})
        emails = await call(
            client, "query_sql", {"sql": f"SELECT count(email), count(*), count(DISTINCT id) FROM {table}"}
        )
        after = await _target_rows(client, table)

    assert [change["column"] for change in added["schema_changes"]] == ["email"]
    assert (added["row_count"], merged["row_count"], appended["row_count"], last["row_count"]) == (10, 5, 1, 1)
    assert last["status"] == "succeeded"
    assert emails["rows"] == [[11, 1003, 1003]]
    assert after == await _source_rows(source)
