"""Checking a login and listing a source's tables, over NATS request/reply like the edge and catalog do."""

from __future__ import annotations

import asyncio
import uuid

import asyncpg
import pytest
from lakegate.common.contracts.runs import Extracted
from lakegate.common.contracts.sources import CheckSource, ConnectionStatus, SourceRef, SourceTables
from lakegate.common.errors import NotFound, SourceError, Unavailable
from lakegate.common.settings import NatsSettings
from lakegate.devstack.ports import free_port
from lakegate.devstack.postgres import PASSWORD_ROLE
from lakegate.extractor.config import ExtractorSettings
from lakegate.extractor.logins import Login

from .conftest import SEAL_KEYS, FakeCatalog, login_for

RIGHT_PASSWORD = 'it\'s a \\ "quoted" pass=word'
WRONG_PASSWORD = "wr0ng-secret-xyz"


@pytest.fixture
def settings(nats_settings: NatsSettings) -> ExtractorSettings:
    return ExtractorSettings(nats=nats_settings, seal_keys=SEAL_KEYS, allow_private_sources=True, connect_timeout=2.0)


@pytest.fixture
async def password_user(source: asyncpg.Connection) -> str:
    """A user of the source database who must give RIGHT_PASSWORD (the harness trusts everyone else)."""
    user = f"app_{uuid.uuid4().hex[:8]}"
    create = await source.fetchval(
        "SELECT format('CREATE ROLE %I LOGIN PASSWORD %L IN ROLE %I', $1::text, $2::text, $3::text)",
        user,
        RIGHT_PASSWORD,
        PASSWORD_ROLE,
    )
    await source.execute(create)
    await source.execute(f"CREATE TABLE things AS SELECT 1 AS id; GRANT SELECT ON things TO {user}")
    return user


async def check(catalog: FakeCatalog, login: Login) -> ConnectionStatus:
    request = CheckSource(tenant_id=catalog.tenant_id, login=catalog.seal(login))
    return await catalog.rpc.call(catalog.topology.sources_check, request, ConnectionStatus)


async def list_tables(catalog: FakeCatalog, connection_id: str) -> SourceTables:
    request = SourceRef(tenant_id=catalog.tenant_id, connection_id=connection_id)
    return await catalog.rpc.call(catalog.topology.source_tables_list, request, SourceTables)


async def test_check_reports_the_server_version_the_user_and_that_a_superuser_can_write(
    catalog: FakeCatalog, source: asyncpg.Connection, source_dsn: str
) -> None:
    status = await check(catalog, login_for(source_dsn))

    version = await source.fetchval("SHOW server_version")
    assert status.ok
    assert version.startswith(status.server_version)
    assert status.database == source_dsn.rsplit("/", 1)[1]
    assert status.user == "postgres"
    assert not status.read_only
    assert status.latency_ms >= 0


async def test_check_says_a_user_who_may_only_select_is_read_only_and_one_who_may_insert_is_not(
    catalog: FakeCatalog, source: asyncpg.Connection, source_dsn: str
) -> None:
    user = f"analyst_{uuid.uuid4().hex[:8]}"
    await source.execute(f"CREATE ROLE {user} LOGIN; CREATE TABLE orders (id int); GRANT SELECT ON orders TO {user}")
    login = login_for(source_dsn, user=user)

    assert (await check(catalog, login)).read_only
    await source.execute(f"GRANT INSERT ON orders TO {user}")
    assert not (await check(catalog, login)).read_only


async def test_a_wrong_password_is_reported_as_such_and_never_echoed(
    catalog: FakeCatalog, source_dsn: str, password_user: str
) -> None:
    wrong = login_for(source_dsn, user=password_user, password=WRONG_PASSWORD)

    with pytest.raises(SourceError) as checked:
        await check(catalog, wrong)
    with pytest.raises(SourceError) as listed:
        await list_tables(catalog, catalog.add_source(wrong, name="shop"))

    address = f"{wrong.address.host}:{wrong.address.port}/{wrong.address.database}"
    expected = f"password authentication failed for user '{password_user}' at {address}: check the password"
    assert checked.value.message == expected
    assert listed.value.message == f"source 'shop': {expected}"
    assert WRONG_PASSWORD not in checked.value.message + listed.value.message


async def test_the_right_password_full_of_quotes_works_for_checks_and_extractions(
    catalog: FakeCatalog, source_dsn: str, password_user: str
) -> None:
    right = login_for(source_dsn, user=password_user, password=RIGHT_PASSWORD)

    status = await check(catalog, right)
    outcome = await catalog.extract(catalog.add_source(right), "things")

    assert status.user == password_user
    assert status.read_only
    assert isinstance(outcome, Extracted), outcome
    assert outcome.row_count == 1


async def test_an_unknown_host_is_named_with_what_to_check(catalog: FakeCatalog, source_dsn: str) -> None:
    with pytest.raises(SourceError) as raised:
        await check(catalog, login_for(source_dsn, host="nope.invalid"))

    assert raised.value.message == "could not resolve host 'nope.invalid': check the host name"


async def test_an_unknown_database_is_named_with_what_to_check(catalog: FakeCatalog, source_dsn: str) -> None:
    login = login_for(source_dsn, database="no_such_db")
    with pytest.raises(SourceError) as raised:
        await check(catalog, login)

    hostport = f"{login.address.host}:{login.address.port}"
    assert raised.value.message == f"database 'no_such_db' does not exist at {hostport}: check the database name"


async def test_a_port_nobody_listens_on_is_a_transient_error_naming_host_and_port(
    catalog: FakeCatalog, source_dsn: str
) -> None:
    port = free_port()
    with pytest.raises(Unavailable) as raised:
        await check(catalog, login_for(source_dsn, port=port))

    assert raised.value.message.startswith(f"127.0.0.1:{port} did not answer (connection refused)")
    assert raised.value.transient


async def test_a_server_that_never_answers_is_a_transient_timeout(catalog: FakeCatalog, source_dsn: str) -> None:
    held: list[asyncio.StreamWriter] = []

    async def accept_and_say_nothing(_reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        held.append(writer)

    server = await asyncio.start_server(accept_and_say_nothing, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        with pytest.raises(Unavailable) as raised:
            await check(catalog, login_for(source_dsn, port=port))
    finally:
        for writer in held:
            writer.close()
        server.close()
        await server.wait_closed()

    assert raised.value.message.startswith(f"127.0.0.1:{port} did not answer within 2s")


async def test_listing_shows_tables_and_views_of_every_user_schema_with_each_columns_mapping(
    catalog: FakeCatalog, source: asyncpg.Connection, source_dsn: str
) -> None:
    await source.execute(
        """
        CREATE SCHEMA sales;
        CREATE TABLE public.orders (id bigint NOT NULL, total numeric(12,2), client inet);
        INSERT INTO public.orders VALUES (1, 9.99, '10.0.0.1'), (2, 5, NULL), (3, NULL, NULL);
        CREATE TABLE sales.leads (name text);
        CREATE VIEW public.big_orders AS SELECT id, total FROM public.orders WHERE total > 6;
        CREATE MATERIALIZED VIEW sales.totals AS SELECT sum(total) AS total FROM public.orders;
        CREATE TABLE public.metrics (at date NOT NULL, value float8) PARTITION BY RANGE (at);
        CREATE TABLE public.metrics_2024 PARTITION OF public.metrics FOR VALUES FROM ('2024-01-01') TO ('2025-01-01');
        ANALYZE public.orders;
        """
    )
    listing = await list_tables(catalog, catalog.add_source(login_for(source_dsn)))

    tables = {f"{t.schema_name}.{t.name}": t for t in listing.tables}
    assert set(tables) == {"public.orders", "public.big_orders", "public.metrics", "sales.leads", "sales.totals"}
    assert {name: t.kind for name, t in tables.items()} == {
        "public.orders": "table",
        "public.big_orders": "view",
        "public.metrics": "partitioned table",
        "sales.leads": "table",
        "sales.totals": "materialized view",
    }
    assert tables["public.orders"].row_estimate == 3
    assert tables["public.big_orders"].row_estimate == -1
    orders = [(c.name, c.type, c.nullable, c.arrow_type, c.mapped) for c in tables["public.orders"].columns]
    assert orders == [
        ("id", "bigint", False, "int64", True),
        ("total", "numeric(12,2)", True, "decimal128(12, 2)", True),
        ("client", "inet", True, "string", True),
    ]


async def test_listing_shows_a_user_only_the_tables_it_may_read(
    catalog: FakeCatalog, source: asyncpg.Connection, source_dsn: str
) -> None:
    user = f"analyst_{uuid.uuid4().hex[:8]}"
    await source.execute(
        f"CREATE ROLE {user} LOGIN; CREATE TABLE open_data (id int); CREATE TABLE salaries (id int);"
        f"GRANT SELECT ON open_data TO {user}"
    )
    listing = await list_tables(catalog, catalog.add_source(login_for(source_dsn, user=user)))

    assert [t.name for t in listing.tables] == ["open_data"]


async def test_listing_a_source_the_catalog_does_not_know_is_not_found(catalog: FakeCatalog) -> None:
    with pytest.raises(NotFound):
        await list_tables(catalog, "src_unknown")
