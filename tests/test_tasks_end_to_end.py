"""Long syncs as MCP tasks against the real stack, over streamable HTTP and stdio, in both eras.

2025-11-25 has task-augmented `tools/call`; 2026-07-28 the `io.modelcontextprotocol/tasks`
extension. A task runs its sync to completion; another, cancelled through `tasks/cancel` while it
extracts a million rows, ends `cancelled` with the bronze table and the incremental cursor as they
were. `lakegate.devstack.taskclient` drives both eras through the official Python client.
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import asyncpg
import pytest
from lakegate.devstack.stack import Stack
from lakegate.devstack.taskclient import TERMINAL, TasksExtension, cancel_task, start_task, wait_task
from lakegate.devstack.toolresults import structured
from mcp import Client, StdioServerParameters

from tests.conftest import Source
from tests.mcp_calls import call

ACCOUNTS = """
CREATE TABLE accounts (
    id bigint PRIMARY KEY,
    owner text NOT NULL,
    updated_at timestamptz NOT NULL DEFAULT clock_timestamp()
);
INSERT INTO accounts (id, owner, updated_at)
SELECT g, 'owner ' || g, timestamptz '2024-01-01 00:00:00+00' + g * interval '1 second'
FROM generate_series(1, 1000) g;
"""
#: Rows past the first run's cursor: what the cancelled run would have read.
MANY = "INSERT INTO accounts (id, owner) SELECT g, 'x' FROM generate_series(1001, 1000000) g"
#: Afterwards: the million rows go, and three old rows change to a time past the first run's cursor only.
AFTERWARDS = (
    "DELETE FROM accounts WHERE id > 1000;"
    "UPDATE accounts SET updated_at = timestamptz '2024-06-01 00:00:00+00' WHERE id IN (3, 30, 300)"
)

NOTES = "CREATE TABLE notes AS SELECT g AS id, 'n' || g AS body FROM generate_series(1, 7) g"


@asynccontextmanager
async def _locked(source: Source, table: str) -> AsyncIterator[None]:
    """Hold an ACCESS EXCLUSIVE lock on `table` in the source: every read of it waits until the block ends."""
    conn = await asyncpg.connect(source.admin_dsn)
    try:
        async with conn.transaction():
            await conn.execute(f"LOCK TABLE {table} IN ACCESS EXCLUSIVE MODE")
            yield
    finally:
        await conn.close()


async def _until_a_read_waits_for(source: Source, table: str, timeout: float = 120) -> None:
    """Until a session of the source waits for a lock in a statement that names `table`."""
    conn = await asyncpg.connect(source.admin_dsn)
    try:
        async with asyncio.timeout(timeout):
            waiting = "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' AND query LIKE $1"
            # PostgreSQL tells no one when a session starts waiting: ask it.
            while not await conn.fetchval(waiting, f"%{table}%"):  # noqa: ASYNC110
                await asyncio.sleep(0.05)
    finally:
        await conn.close()


@asynccontextmanager
async def _client(stack: Stack, edge_env: dict[str, str], transport: str, era: str) -> AsyncIterator[Client]:
    target: str | StdioServerParameters = stack.urls.mcp
    if transport == "stdio":
        args = ["-m", "lakegate.edge", "--transport", "stdio"]
        target = StdioServerParameters(command=sys.executable, args=args, env=edge_env)
    # The extension is declared only in 2026-07-28; the handshake era has tasks in the core protocol.
    client = Client(target, extensions=[TasksExtension()]) if era == "2026-07-28" else Client(target, mode="legacy")
    async with client:
        assert client.protocol_version == era
        yield client


@pytest.mark.parametrize(("transport", "era"), [("http", "2026-07-28"), ("stdio", "2025-11-25")])
async def test_a_sync_task_completes_and_a_cancelled_one_leaves_bronze_and_the_cursor_as_they_were(
    stack: Stack, source: Source, unique: str, edge_env: dict[str, str], transport: str, era: str
) -> None:
    await source.execute(ACCOUNTS)
    name = f"task{unique}"
    table = f"bronze.{name}_accounts"
    async with _client(stack, edge_env, transport, era) as client:
        connection = await call(client, "connect_postgres", source.connect_arguments(name))
        arguments = {"connection_id": connection["connection_id"], "table_name": "accounts", "sync_mode": "incremental"}
        first = await wait_task(client, await start_task(client, "sync_table_to_bronze", arguments), TERMINAL, 120)

        await source.execute(MANY)
        # The second run's read waits on a lock until its task is cancelled: it cannot finish first.
        async with _locked(source, "accounts"):
            task_id = await start_task(client, "sync_table_to_bronze", arguments)
            await _until_a_read_waits_for(source, "accounts")
            await cancel_task(client, task_id)
            cancelled = await wait_task(client, task_id, TERMINAL, 60)
        [run] = (await call(client, "list_sync_runs", {"connection_id": connection["connection_id"], "limit": 1}))[
            "runs"
        ]
        rows = await call(client, "query_sql", {"sql": f"SELECT count(*) FROM {table}"})

        await source.execute(AFTERWARDS)
        after = await call(client, "sync_table_to_bronze", arguments)

    assert first.status == "completed", first
    assert first.result is not None
    synced = structured(first.result)
    assert (synced["status"], synced["row_count"]) == ("succeeded", 1000)
    assert cancelled.status == "cancelled", cancelled
    assert run["status"] == "cancelled"
    assert rows["rows"] == [[1000]], "a cancelled run wrote to bronze"
    # Only the three rows past the first run's cursor: the cancelled run did not move it.
    assert (after["status"], after["row_count"]) == ("succeeded", 3), after


@pytest.mark.parametrize(("transport", "era"), [("stdio", "2026-07-28"), ("http", "2025-11-25")])
async def test_a_several_table_sync_runs_as_one_task_listing_every_run(
    stack: Stack, source: Source, unique: str, edge_env: dict[str, str], transport: str, era: str
) -> None:
    await source.execute(ACCOUNTS + NOTES)
    name = f"tasks{unique}"
    async with _client(stack, edge_env, transport, era) as client:
        connection = await call(client, "connect_postgres", source.connect_arguments(name))
        arguments = {"connection_id": connection["connection_id"], "table_name": ["accounts", "notes"]}
        done = await wait_task(client, await start_task(client, "sync_table_to_bronze", arguments), TERMINAL, 120)

    assert done.status == "completed", done
    assert done.result is not None
    result = structured(done.result)
    assert [(t["source_table"], t["outcome"]) for t in result["tables"]] == [
        ("public.accounts", "succeeded"),
        ("public.notes", "succeeded"),
    ]
    assert [t["run"]["row_count"] for t in result["tables"]] == [1000, 7]
    assert "2 tables synced" in (done.status_message or "")
