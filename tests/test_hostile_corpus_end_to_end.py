"""The hostile corpus (`hostile_inputs`) against the running stack: each call refused with a readable reason,
nothing written to the catalog or the lakehouse, and every service still up (none restarted)."""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import asyncpg
import pytest
from lakegate.devstack.postgres import PASSWORD_ROLE, PostgresCluster
from lakegate.devstack.stack import SERVICES, Stack
from lakegate.devstack.toolresults import text_of
from mcp import Client, MCPError
from mcp.types import INVALID_PARAMS

from tests.conftest import Source
from tests.hostile_inputs import REAL_SOURCE, Case, cases
from tests.mcp_calls import call

#: Words in a tool error that mean the edge or a service crashed instead of refusing.
CRASHED = ("internal error", "traceback", "exception", "unexpected error")
#: Where a traversal in a file or member name would land if it were followed.
PWNED = Path("/tmp/lakegate-pwned")
CASES = list(cases())

#: Cases the stack does not yet refuse cleanly (found by this corpus); each is a strict xfail, so a fix shows.
KNOWN_GAPS: dict[str, str] = {}


def _param(case: Case) -> Any:
    gap = KNOWN_GAPS.get(case.id)
    marks = [pytest.mark.xfail(strict=True, reason=gap)] if gap else []
    return pytest.param(case, id=case.id, marks=marks)


@pytest.fixture(scope="module")
async def real_source(stack: Stack, pg_cluster: PostgresCluster) -> AsyncIterator[str]:
    """One registered source with an `orders` table, shared by every case that needs a real connection id."""
    name = "hostile_corpus_source"
    admin = await asyncpg.connect(pg_cluster.dsn())
    try:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.execute(f'CREATE DATABASE "{name}"')
    finally:
        await admin.close()
    user, password = "hostile_corpus_reader", "pw-hostile-corpus"
    owner = await asyncpg.connect(pg_cluster.dsn(name))
    try:
        await owner.execute("CREATE TABLE orders (id bigint PRIMARY KEY, total numeric(12, 2))")
        await owner.execute("INSERT INTO orders VALUES (1, 9.5)")
        await owner.execute(
            f"DO $$ BEGIN IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = '{user}') THEN "
            f"CREATE ROLE {user} LOGIN PASSWORD '{password}' IN ROLE {PASSWORD_ROLE}; END IF; END $$"
        )
        await owner.execute(f"GRANT SELECT ON orders TO {user}")
    finally:
        await owner.close()
    source = Source(pg_cluster.host, pg_cluster.port, name, user, password, pg_cluster.dsn(name))
    async with Client(stack.urls.mcp) as client:
        registered = await call(client, "connect_postgres", source.connect_arguments("hostile_corpus"))
    yield str(registered["connection_id"])
    admin = await asyncpg.connect(pg_cluster.dsn())
    try:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await admin.close()


@pytest.fixture(scope="module")
async def catalog_db(stack: Stack) -> AsyncIterator[asyncpg.Connection]:
    conn = await asyncpg.connect(stack.catalog_database_dsn())
    yield conn
    await conn.close()


async def written(stack: Stack, conn: asyncpg.Connection) -> tuple[dict[str, int], set[tuple[str, int]]]:
    """Rows of each catalog table, and every file of the lakehouse with its size."""
    rows = {
        table: int(await conn.fetchval(f"SELECT count(*) FROM {table}"))
        for table in ("sources", "runs", "datasets", "schedules", "cursors")
    }
    files = set()
    for folder, _, names in os.walk(stack.home.lakehouse):
        for name in names:
            path = Path(folder) / name
            files.add((str(path), path.stat().st_size))
    return rows, files


def restarts(stack: Stack) -> dict[str, int]:
    return {name: stack.restarts(name) for name in SERVICES}


def _real(arguments: dict[str, Any], connection_id: str) -> dict[str, Any]:
    return {key: connection_id if value == REAL_SOURCE else value for key, value in arguments.items()}


@pytest.mark.parametrize("case", [_param(case) for case in CASES])
async def test_every_hostile_input_is_refused_with_a_reason_and_writes_nothing(
    case: Case, stack: Stack, real_source: str, catalog_db: asyncpg.Connection
) -> None:
    before, restarted = await written(stack, catalog_db), restarts(stack)

    async with Client(stack.urls.mcp) as client:
        code = None
        try:
            result = await client.call_tool(case.tool, _real(case.arguments, real_source))
        except MCPError as exc:  # refused by the protocol itself (an unknown tool is -32602)
            result, code, message = None, exc.error.code, exc.error.message

    if result is None:
        assert code == INVALID_PARAMS, message
    else:
        message = text_of(result)
        assert result.is_error, f"accepted: {message[:300]}"
    # The SDK prefixes every tool error; a crash is that prefix with nothing after it.
    reason = message.removeprefix(f"Error executing tool {case.tool}").lstrip(": ")
    assert len(reason) > 20, message
    assert not any(word in message.lower() for word in CRASHED), message[:500]
    assert await written(stack, catalog_db) == before
    assert restarts(stack) == restarted
    assert not await asyncio.to_thread(PWNED.exists)


def test_the_corpus_has_at_least_five_hundred_inputs_across_every_tool() -> None:
    tools = {case.tool for case in CASES}

    assert len(CASES) >= 500
    assert len({case.id for case in CASES}) == len(CASES)
    assert len(tools) >= 25
