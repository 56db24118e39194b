"""One tenant's slow query and hung source do not hold up another tenant's calls (ordering, not timing)."""

from __future__ import annotations

import asyncio
import contextlib
import sys
import time
from collections.abc import AsyncIterator

import asyncpg
from lakegate.devstack.stack import Stack
from mcp import Client, StdioServerParameters

from tests.conftest import Source
from tests.mcp_calls import call


@contextlib.asynccontextmanager
async def hung_server() -> AsyncIterator[tuple[int, asyncio.Event]]:
    """A TCP listener that accepts connections and never answers; the event is set once one came."""
    accepted = asyncio.Event()
    held: list[asyncio.StreamWriter] = []

    async def hold(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        held.append(writer)
        accepted.set()

    server = await asyncio.start_server(hold, "127.0.0.1", 0)
    try:
        yield server.sockets[0].getsockname()[1], accepted
    finally:
        for writer in held:
            writer.close()
        server.close()


async def until_sleeping(admin_dsn: str, timeout: float = 60.0) -> None:
    """Wait until the source runs the slow query (PostgreSQL announces it to nobody)."""
    conn = await asyncpg.connect(admin_dsn)
    try:
        deadline = time.monotonic() + timeout
        while not await conn.fetchval(
            "SELECT count(*) FROM pg_stat_activity WHERE state = 'active' AND query LIKE 'SELECT pg_sleep(30)%'"
        ):
            assert time.monotonic() < deadline, "the slow source query never started"
            await asyncio.sleep(0.05)
    finally:
        await conn.close()


async def test_another_tenants_calls_finish_while_one_tenant_sleeps_on_a_source_and_waits_on_a_hung_host(
    stack: Stack, source: Source, unique: str, edge_env: dict[str, str]
) -> None:
    noisy = StdioServerParameters(
        command=sys.executable,
        args=["-m", "lakegate.edge", "--transport", "stdio"],
        env={**edge_env, "LAKEGATE_EDGE_DEFAULT_TENANT": f"noisy{unique}"},
    )
    async with hung_server() as (hung_port, accepted), Client(noisy) as loud, Client(stack.urls.mcp) as quiet:
        slow_source = await call(loud, "connect_postgres", source.connect_arguments(f"slow{unique}"))
        sleeping = asyncio.create_task(
            call(loud, "query_source", {"connection_id": slow_source["connection_id"], "sql": "SELECT pg_sleep(30)"})
        )
        hanging = asyncio.create_task(
            call(
                loud,
                "connect_postgres",
                {**source.connect_arguments(f"hung{unique}"), "host": "127.0.0.1", "port": hung_port},
            )
        )
        await until_sleeping(source.admin_dsn)
        await asyncio.wait_for(accepted.wait(), 60)

        own = await call(quiet, "connect_postgres", source.connect_arguments(f"quiet{unique}"))
        answered = await call(quiet, "query_source", {"connection_id": own["connection_id"], "sql": "SELECT 41 + 1"})
        queried = await call(quiet, "query_sql", {"sql": "SELECT 42 AS answer"})

        still_waiting = not sleeping.done(), not hanging.done()
        sleeping.cancel()
        hanging.cancel()
        await asyncio.gather(sleeping, hanging, return_exceptions=True)

    assert answered["rows"] == [[42]]
    assert queried["rows"] == [[42]]
    assert own["connection_id"]
    assert still_waiting == (True, True)
