"""Bad input through the MCP edge: each a clear tool error that says what to fix, and nothing half-written."""

from __future__ import annotations

import asyncpg
import pytest
from lakegate.devstack.stack import Stack
from mcp import Client

from tests.conftest import Source
from tests.mcp_calls import call, failure
from tests.sources import create_every_type_table


async def _sources_named(stack: Stack, name: str) -> int:
    conn = await asyncpg.connect(stack.catalog_database_dsn())
    try:
        return int(await conn.fetchval("SELECT count(*) FROM sources WHERE name = $1", name))
    finally:
        await conn.close()


async def _bronze_tables(client: Client) -> set[str]:
    listed = await call(client, "list_tables", {"layer": "bronze"})
    return {t["name"] for t in listed["tables"]}


async def test_a_wrong_password_is_refused_and_nothing_is_registered(stack: Stack, source: Source, unique: str) -> None:
    arguments = {**source.connect_arguments(f"pw{unique}"), "password": "not-the-password"}
    async with Client(stack.urls.mcp) as client:
        message = await failure(client, "connect_postgres", arguments)
    assert "password" in message.lower()
    assert source.user in message
    assert "not-the-password" not in message
    assert await _sources_named(stack, f"pw{unique}") == 0


async def test_an_unknown_host_is_named_in_the_error(stack: Stack, source: Source, unique: str) -> None:
    arguments = {**source.connect_arguments(f"host{unique}"), "host": "no-such-host.invalid"}
    async with Client(stack.urls.mcp) as client:
        message = await failure(client, "connect_postgres", arguments)
    assert "no-such-host.invalid" in message
    assert "host" in message.lower()
    assert await _sources_named(stack, f"host{unique}") == 0


async def test_an_unknown_connection_id_is_a_clear_error(stack: Stack) -> None:
    async with Client(stack.urls.mcp) as client:
        for tool, arguments in [
            ("sync_table_to_bronze", {"connection_id": "src_doesnotexist", "table_name": "orders"}),
            ("list_source_tables", {"connection_id": "src_doesnotexist"}),
            ("test_connection", {"connection_id": "src_doesnotexist"}),
        ]:
            message = await failure(client, tool, arguments)
            assert "src_doesnotexist" in message, (tool, message)


async def test_an_unknown_table_fails_the_run_and_writes_no_table(stack: Stack, source: Source, unique: str) -> None:
    await create_every_type_table(source.admin_dsn)
    name = f"unk{unique}"
    async with Client(stack.urls.mcp) as client:
        connection = await call(client, "connect_postgres", source.connect_arguments(name))
        message = await failure(
            client,
            "sync_table_to_bronze",
            {"connection_id": connection["connection_id"], "table_name": "no_such_table"},
        )
        assert "no_such_table" in message
        assert "every_type" in message, "the error should list the tables that do exist"
        assert "run_" in message
        assert f"{name}_no_such_table" not in await _bronze_tables(client)


@pytest.mark.parametrize(
    "table_name", ['every"type', "public.every_type.x", "every_type; drop table x", "'every_type'"]
)
async def test_table_names_with_quotes_or_extra_dots_are_refused_before_anything_runs(
    stack: Stack, source: Source, unique: str, table_name: str
) -> None:
    await create_every_type_table(source.admin_dsn)
    name = f"q{unique}"
    async with Client(stack.urls.mcp) as client:
        connection = await call(client, "connect_postgres", source.connect_arguments(name))
        message = await failure(
            client, "sync_table_to_bronze", {"connection_id": connection["connection_id"], "table_name": table_name}
        )
        assert "schema.table" in message
        assert not {t for t in await _bronze_tables(client) if t.startswith(name)}


async def test_the_stacks_own_database_nats_and_edge_cannot_be_registered_as_sources(
    stack: Stack, source: Source, unique: str
) -> None:
    ports = stack.config.ports
    targets = {
        "the catalog's PostgreSQL": ("127.0.0.1", ports.postgres, "lakegate_catalog"),
        "the catalog's PostgreSQL by name": ("localhost", ports.postgres, "lakegate_catalog"),
        "the catalog's PostgreSQL on 0.0.0.0": ("0.0.0.0", ports.postgres, "lakegate_catalog"),
        "NATS": ("127.0.0.1", ports.nats, "x"),
        "the edge": ("127.0.0.1", ports.edge, "x"),
    }
    async with Client(stack.urls.mcp) as client:
        for what, (host, port, database) in targets.items():
            arguments = {
                **source.connect_arguments(f"own{unique}"),
                "host": host,
                "port": port,
                "database": database,
                "user": "postgres",
            }
            message = await failure(client, "connect_postgres", arguments)
            assert "one of this lakegate deployment's own services" in message, what
        socket_dir = await failure(
            client,
            "connect_postgres",
            {**source.connect_arguments(f"own{unique}"), "host": str(stack.postgres.home / "sockets")},
        )
    assert "is a path" in socket_dir
    assert await _sources_named(stack, f"own{unique}") == 0
