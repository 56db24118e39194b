"""Exploring a registered source before syncing it: checking it, describing a table, querying it.

Requests go over NATS like the edge sends them. The tests of the database's own walls call the
executor directly, past the parser guard, to show that those walls hold on their own.
"""

from __future__ import annotations

import asyncio
import uuid

import asyncpg
import pytest
from lakegate.common.contracts.explore import DescribeSourceTable, QuerySource, SourceTableDetail
from lakegate.common.contracts.rpc import CancelCall
from lakegate.common.contracts.runs import Extracted
from lakegate.common.contracts.sources import ConnectionStatus, SourceRef
from lakegate.common.contracts.warehouse import QueryResult
from lakegate.common.errors import Cancelled, InvalidInput, LakegateError, NotFound, SourceError
from lakegate.common.settings import NatsSettings
from lakegate.extractor.allowlist import Calls
from lakegate.extractor.config import ExtractorSettings
from lakegate.extractor.connections import connect
from lakegate.extractor.exploration import exploration_session, query_source, read_only_transaction
from lakegate.extractor.logins import Credentials

from .conftest import FakeCatalog, harness_settings, login_for
from .hostile_source import MARKER, SCHEMA, fingerprint, until_the_extractor_left

#: No calls read off the SQL: the allow-list passes everything, so these tests meet the database's walls alone.
WALLS_ONLY = Calls()

SHOP = """
CREATE TYPE mood AS ENUM ('happy', 'sad');
CREATE TYPE stay AS (nights int, took interval, price numeric(8,2));
CREATE TABLE customers (id int PRIMARY KEY, email text UNIQUE NOT NULL, mood mood, since date);
CREATE TABLE orders (
    region text NOT NULL,
    number int NOT NULL,
    customer_id int REFERENCES customers (id),
    total numeric(12,2),
    placed_at timestamptz,
    lines jsonb,
    tags text[],
    code uuid,
    note text,
    raw bytea,
    took interval,
    client inet,
    score float8,
    PRIMARY KEY (region, number)
);
CREATE INDEX orders_lower_note ON orders (lower(note)) WHERE note IS NOT NULL;
CREATE TABLE order_items (
    region text, number int, sku text,
    CONSTRAINT items_of_order FOREIGN KEY (region, number) REFERENCES orders (region, number)
);
INSERT INTO customers VALUES (1, 'a@example.com', 'happy', '2024-01-31'), (2, 'b@example.com', NULL, 'infinity');
INSERT INTO orders VALUES
    ('eu', 1, 1, 9.99, '2024-05-01 14:30:00+02', '{"b": 1, "a": [1, 2]}', '{a,b}',
     'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11', repeat('long ', 100), '\\x00ff', '1 day 2 hours', '10.0.0.1', 'NaN'),
    ('eu', 2, 1, 10.00, NULL, NULL, '{}', NULL, NULL, NULL, '-1 mon', NULL, 1.5),
    ('us', 1, 2, 1.50, '2024-05-01 12:30:00.000001+00', '[]', NULL, NULL, 'short', '', NULL, '::1', -0.25),
    ('us', 2, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL);
INSERT INTO order_items VALUES ('eu', 1, 'sku-1');
CREATE VIEW big_orders AS SELECT region, number, total FROM orders WHERE total > 5;
ANALYZE;
"""


@pytest.fixture
def settings(nats_settings: NatsSettings) -> ExtractorSettings:
    return harness_settings(
        nats_settings,
        query_timeout=2.0,
        query_max_bytes=64 * 1024,
    )


@pytest.fixture
async def shop(catalog: FakeCatalog, source: asyncpg.Connection, source_dsn: str) -> str:
    """A registered source holding the shop; returns its connection id."""
    await source.execute(SHOP)
    return catalog.add_source(login_for(source_dsn), name="shop")


async def describe(catalog: FakeCatalog, connection_id: str, table: str, sample_size: int = 3) -> SourceTableDetail:
    request = DescribeSourceTable(
        tenant_id=catalog.tenant_id, connection_id=connection_id, table_name=table, sample_size=sample_size
    )
    return await catalog.rpc.call(catalog.topology.source_table_describe, request, SourceTableDetail)


async def query(catalog: FakeCatalog, connection_id: str, sql: str, max_rows: int = 100) -> QueryResult:
    request = QuerySource(tenant_id=catalog.tenant_id, connection_id=connection_id, sql=sql, max_rows=max_rows)
    return await catalog.rpc.call(catalog.topology.source_query, request, QueryResult)


# --- checking a registered source ---------------------------------------------------------------


async def test_checking_a_registered_source_connects_with_the_credentials_the_catalog_holds(
    catalog: FakeCatalog, source: asyncpg.Connection, source_dsn: str
) -> None:
    reader = f"reader_{uuid.uuid4().hex[:8]}"
    await source.execute(f"CREATE ROLE {reader} LOGIN; CREATE TABLE t (id int); GRANT SELECT ON t TO {reader}")
    connection_id = catalog.add_source(login_for(source_dsn, user=reader))

    status = await catalog.rpc.call(
        catalog.topology.sources_check_registered,
        SourceRef(tenant_id=catalog.tenant_id, connection_id=connection_id),
        ConnectionStatus,
    )

    assert status.ok
    assert status.user == reader
    assert status.read_only
    assert (await source.fetchval("SHOW server_version")).startswith(status.server_version)
    assert status.latency_ms >= 0


async def test_checking_a_registered_source_names_it_when_its_server_is_gone(
    catalog: FakeCatalog, source_dsn: str
) -> None:
    connection_id = catalog.add_source(login_for(source_dsn, database="dropped_db"), name="old_shop")

    with pytest.raises(SourceError) as raised:
        await catalog.rpc.call(
            catalog.topology.sources_check_registered,
            SourceRef(tenant_id=catalog.tenant_id, connection_id=connection_id),
            ConnectionStatus,
        )

    assert raised.value.message.startswith("source 'old_shop': database 'dropped_db' does not exist")


async def test_checking_a_source_of_another_tenant_is_not_found(catalog: FakeCatalog, source_dsn: str) -> None:
    connection_id = catalog.add_source(login_for(source_dsn))

    with pytest.raises(NotFound):
        await catalog.rpc.call(
            catalog.topology.sources_check_registered,
            SourceRef(tenant_id="someone_else", connection_id=connection_id),
            ConnectionStatus,
        )


# --- describing a table -------------------------------------------------------------------------


async def test_describing_a_table_shows_columns_keys_in_both_directions_and_indexes(
    catalog: FakeCatalog, shop: str
) -> None:
    detail = await describe(catalog, shop, "orders")

    assert (detail.table.schema_name, detail.table.name, detail.table.kind) == ("public", "orders", "table")
    assert detail.table.row_estimate == 4
    columns = {c.name: (c.type, c.nullable, c.arrow_type, c.mapped) for c in detail.table.columns}
    assert columns["region"] == ("text", False, "string", True)
    assert columns["total"] == ("numeric(12,2)", True, "decimal128(12, 2)", True)
    assert columns["tags"] == ("text[]", True, "list<item: string>", True)
    assert columns["client"] == ("inet", True, "string", True)
    assert detail.primary_key == ["region", "number"]
    assert [(k.name, k.columns, k.references_table, k.references_columns) for k in detail.foreign_keys] == [
        ("orders_customer_id_fkey", ["customer_id"], "public.customers", ["id"])
    ]
    assert [(k.name, k.table, k.columns, k.references_columns) for k in detail.referenced_by] == [
        ("items_of_order", "public.order_items", ["region", "number"], ["region", "number"])
    ]
    indexes = {i.name: i for i in detail.indexes}
    assert set(indexes) == {"orders_pkey", "orders_lower_note"}
    assert (indexes["orders_pkey"].columns, indexes["orders_pkey"].unique, indexes["orders_pkey"].primary) == (
        ["region", "number"],
        True,
        True,
    )
    assert indexes["orders_lower_note"].columns == ["lower(note)"]
    assert not indexes["orders_lower_note"].unique
    assert indexes["orders_lower_note"].definition == (
        "CREATE INDEX orders_lower_note ON public.orders USING btree (lower(note)) WHERE (note IS NOT NULL)"
    )


async def test_describing_a_table_samples_distinct_non_null_values_as_the_sync_would_store_them(
    catalog: FakeCatalog, shop: str
) -> None:
    detail = await describe(catalog, shop, "orders", sample_size=3)

    samples = detail.samples
    assert samples["region"] == ["eu", "us"]
    assert samples["number"] == [1, 2]
    assert samples["total"] == ["1.50", "10.00", "9.99"]  # exact decimal text, in text order
    assert samples["placed_at"] == ["2024-05-01T12:30:00+00:00", "2024-05-01T12:30:00.000001+00:00"]
    assert samples["lines"] == ["[]", '{"a": [1, 2], "b": 1}']
    assert samples["tags"] == [[], ["a", "b"]]
    assert samples["code"] == ["a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11"]
    assert samples["note"] == ["long " * 40 + "…", "short"]
    assert samples["raw"] == ["", "AP8="]
    assert samples["took"] == ["P-1M", "P1DT2H"]  # PostgreSQL's own ISO 8601 text
    assert samples["client"] == ["10.0.0.1", "::1"]  # inet as PostgreSQL shows it, as a sync reads it
    assert samples["score"] == [-0.25, 1.5, "NaN"]
    assert samples["customer_id"] == [1, 2]


async def test_long_sample_values_are_cut_short_and_marked(
    catalog: FakeCatalog, source: asyncpg.Connection, source_dsn: str
) -> None:
    await source.execute(
        "CREATE TABLE readings (series int[], label text);"
        "INSERT INTO readings SELECT ARRAY(SELECT generate_series(1, 1000)), repeat('é', 1000)"
    )
    detail = await describe(catalog, catalog.add_source(login_for(source_dsn)), "readings")

    assert detail.samples["series"] == [[*range(1, 201), "…"]]
    assert detail.samples["label"] == ["é" * 200 + "…"]


async def test_describing_a_table_with_no_samples_asked_reads_no_rows(catalog: FakeCatalog, shop: str) -> None:
    detail = await describe(catalog, shop, "customers", sample_size=0)

    assert detail.samples == {"id": [], "email": [], "mood": [], "since": []}
    assert detail.primary_key == ["id"]
    assert {i.name: i.unique for i in detail.indexes} == {"customers_pkey": True, "customers_email_key": True}
    assert [(k.table, k.columns) for k in detail.referenced_by] == [("public.orders", ["customer_id"])]


async def test_describing_a_view_shows_its_columns_and_samples_but_no_keys(catalog: FakeCatalog, shop: str) -> None:
    detail = await describe(catalog, shop, "public.big_orders")

    assert detail.table.kind == "view"
    assert detail.table.row_estimate == -1
    assert detail.primary_key == []
    assert detail.foreign_keys == []
    assert detail.indexes == []
    assert detail.samples["total"] == ["10.00", "9.99"]


async def test_describing_an_unknown_table_is_not_found_with_the_closest_names_first(
    catalog: FakeCatalog, shop: str
) -> None:
    with pytest.raises(NotFound) as raised:
        await describe(catalog, shop, "ordr_items")

    message = raised.value.message
    assert message.startswith("table public.ordr_items was not found in source 'shop'")
    assert message.index("public.order_items") < message.index("public.orders") < message.index("public.customers")


async def test_describing_a_table_the_user_may_not_read_says_what_to_grant(
    catalog: FakeCatalog, source: asyncpg.Connection, source_dsn: str
) -> None:
    reader = f"reader_{uuid.uuid4().hex[:8]}"
    await source.execute(f"CREATE ROLE {reader} LOGIN; CREATE TABLE salaries (amount int)")
    connection_id = catalog.add_source(login_for(source_dsn, user=reader))

    with pytest.raises(SourceError) as raised:
        await describe(catalog, connection_id, "salaries")

    assert f"GRANT SELECT ON public.salaries TO {reader}" in raised.value.message


async def test_a_sync_carries_the_tables_primary_key_in_key_order(catalog: FakeCatalog, shop: str) -> None:
    keyed = await catalog.extract(shop, "orders")
    unkeyed = await catalog.extract(shop, "order_items")

    assert isinstance(keyed, Extracted), keyed
    assert keyed.primary_key == ["region", "number"]
    assert isinstance(unkeyed, Extracted), unkeyed
    assert unkeyed.primary_key == []


# --- querying a source --------------------------------------------------------------------------


async def test_a_query_returns_json_values_by_the_same_rules_as_warehouse_results(
    catalog: FakeCatalog, shop: str
) -> None:
    result = await query(
        catalog,
        shop,
        """
        SELECT number, total, placed_at, placed_at::timestamp AS naive, lines, tags, code, raw, took, client,
               score, since, mood, 12345678901234567890::numeric AS big, ROW(1, 'x') AS pair, customers AS whole,
               ROW(2, interval '1 mon 2 days', 10.5)::stay AS stay,
               int4range(1, 5) AS span, ARRAY[[1, 2], [3, 4]] AS grid
        FROM orders JOIN customers ON customers.id = orders.customer_id
        WHERE region = 'eu' AND number = 1
        """,
    )

    assert [(c.name, c.type) for c in result.columns][:4] == [
        ("number", "int32"),
        ("total", "string"),  # a result carries no numeric(p,s); the value is the exact text either way
        ("placed_at", "timestamp[us, tz=UTC]"),
        ("naive", "timestamp[us]"),
    ]
    assert result.rows == [
        [
            1,
            "9.99",
            "2024-05-01T12:30:00+00:00",
            "2024-05-01T12:30:00",
            '{"a": [1, 2], "b": 1}',
            ["a", "b"],
            "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11",
            "AP8=",
            "P1DT2H",
            "10.0.0.1",
            "NaN",
            "2024-01-31",
            "happy",
            "12345678901234567890",
            [1, "x"],
            {"id": 1, "email": "a@example.com", "mood": "happy", "since": "2024-01-31"},
            {"nights": 2, "took": "P1M2D", "price": "10.50"},
            "[1,5)",
            [[1, 2], [3, 4]],
        ]
    ]
    assert result.row_count == 1
    assert not result.truncated


async def test_intervals_come_back_as_postgresqls_own_iso_8601_text_even_inside_composite_values(
    catalog: FakeCatalog, shop: str
) -> None:
    intervals = [
        "0",
        "1 year 2 months 3 days 04:05:06.789",
        "-1 mon",
        "-1 days -00:00:01",
        "1 hour -1 sec",
        "-1.5 sec",
        "0.000001 sec",
        "-0.000001 sec",
        "13 months",
        "-13 months 1 day",
        "100000 hours",
        "-2 years +3 mons -4 days",
        "1 day -25 hours",
        "23:59:59.999999",
        "-178000000 years",
        "178000000 years 23:59:59.999999",
    ]
    values = ", ".join(f"(interval '{text}')" for text in intervals)

    result = await query(
        catalog, shop, f"SELECT i, i::text AS text, ROW(1, i, 0)::stay AS stay FROM (VALUES {values}) AS v(i)"
    )

    assert [row[0] for row in result.rows] == [row[1] for row in result.rows]
    assert [row[2]["took"] for row in result.rows] == [row[1] for row in result.rows]


async def test_infinite_dates_come_back_as_the_values_a_sync_stores(catalog: FakeCatalog, shop: str) -> None:
    result = await query(catalog, shop, "SELECT since, 'infinity'::timestamptz AS forever FROM customers WHERE id = 2")

    assert result.rows == [["9999-12-31", "9999-12-31T23:59:59.999999+00:00"]]


async def test_table_values_and_explain_are_accepted(catalog: FakeCatalog, shop: str) -> None:
    table = await query(catalog, shop, "TABLE customers")
    values = await query(catalog, shop, "VALUES (1, 'one'), (2, 'two')")
    plan = await query(catalog, shop, "EXPLAIN (COSTS OFF) SELECT * FROM orders WHERE region = 'eu'")

    assert [c.name for c in table.columns] == ["id", "email", "mood", "since"]
    assert table.row_count == 2
    assert values.rows == [[1, "one"], [2, "two"]]
    assert plan.columns[0].name == "QUERY PLAN"
    assert any("orders" in row[0] for row in plan.rows)


async def test_a_query_with_more_rows_than_asked_is_cut_and_flagged(catalog: FakeCatalog, shop: str) -> None:
    capped = await query(catalog, shop, "SELECT generate_series(1, 1000000000) AS n", max_rows=7)
    exact = await query(catalog, shop, "SELECT generate_series(1, 7) AS n", max_rows=7)

    assert capped.rows == [[n] for n in range(1, 8)]
    assert capped.truncated
    assert exact.rows == capped.rows
    assert not exact.truncated


async def test_a_query_whose_rows_exceed_the_byte_limit_is_cut_and_flagged(catalog: FakeCatalog, shop: str) -> None:
    result = await query(catalog, shop, "SELECT repeat('x', 1000) AS filler FROM generate_series(1, 100)")

    assert result.truncated
    assert 0 < result.row_count < 100
    assert sum(len(row[0]) for row in result.rows) <= 64 * 1024


async def test_a_query_the_guard_refuses_never_reaches_the_catalog_or_the_source(catalog: FakeCatalog) -> None:
    with pytest.raises(InvalidInput) as raised:
        await query(catalog, "src_that_does_not_exist", "DELETE FROM orders")

    assert raised.value.message.startswith("DELETE statements are not allowed")


async def test_a_query_on_an_unknown_column_says_what_postgresql_said(catalog: FakeCatalog, shop: str) -> None:
    with pytest.raises(SourceError) as raised:
        await query(catalog, shop, "SELECT nope FROM orders")

    assert 'column "nope" does not exist' in raised.value.message
    assert raised.value.message.startswith("source 'shop'")


async def test_a_long_query_is_cancelled_at_the_timeout(catalog: FakeCatalog, shop: str) -> None:
    with pytest.raises(SourceError) as raised:
        await query(catalog, shop, "SELECT pg_sleep(30)")

    assert "ran longer than 2s and was cancelled" in raised.value.message


async def test_a_query_whose_caller_cancels_it_is_cancelled_at_the_server_before_its_timeout(
    catalog: FakeCatalog, shop: str
) -> None:
    call_id = f"call_{uuid.uuid4().hex}"
    request = QuerySource(tenant_id=catalog.tenant_id, connection_id=shop, sql="SELECT pg_sleep(30)", call_id=call_id)
    slow = asyncio.create_task(catalog.rpc.call(catalog.topology.source_query, request, QueryResult))
    # One cancel, sent as the edge sends it: whether the extractor took the request up yet or not, it stops.
    await catalog.broker.publish(CancelCall(call_id=call_id), catalog.topology.call_cancel(call_id))

    # Not the statement timeout's "ran longer than 2s": the caller's cancel stopped it, before or after it began.
    with pytest.raises(Cancelled) as cancelled:
        await slow
    assert cancelled.value.message.startswith("the source query was stopped: its caller")


async def test_a_query_whose_cancel_came_before_it_is_stopped_before_it_reaches_the_source(
    catalog: FakeCatalog, shop: str
) -> None:
    call_id = f"call_{uuid.uuid4().hex}"
    await catalog.broker.publish(CancelCall(call_id=call_id), catalog.topology.call_cancel(call_id))
    await catalog.broker.connection.flush()  # the cancel is at the server before the request is sent
    request = QuerySource(tenant_id=catalog.tenant_id, connection_id=shop, sql="SELECT pg_sleep(30)", call_id=call_id)

    with pytest.raises(Cancelled) as cancelled:
        await catalog.rpc.call(catalog.topology.source_query, request, QueryResult)

    # Not "was stopped: ..." after the statement began: the remembered cancel stopped it on arrival.
    assert cancelled.value.message == "the source query was stopped: its caller had cancelled it before it began"


# --- the database's walls, past the parser guard -------------------------------------------------


@pytest.fixture
async def victim(catalog: FakeCatalog, source: asyncpg.Connection, source_dsn: str) -> Credentials:
    """Credentials of a superuser on a source worth attacking."""
    await source.execute(SCHEMA)
    return catalog.opened[catalog.add_source(login_for(source_dsn), name="victim")]


ESCAPES = [
    "COMMIT; DROP TABLE accounts",
    "ROLLBACK; DROP TABLE accounts",
    "END; DROP TABLE accounts",
    "ABORT; DELETE FROM accounts",
    "COMMIT; SET default_transaction_read_only = off; DELETE FROM accounts",
    "SELECT 1; DELETE FROM accounts",
    "COMMIT",
    "ROLLBACK",
    "SET TRANSACTION READ WRITE",
    "BEGIN READ WRITE",
    "START TRANSACTION READ WRITE",
    "SET SESSION CHARACTERISTICS AS TRANSACTION READ WRITE",
    "SET default_transaction_read_only = off",
    "SELECT set_config('transaction_read_only', 'off', true)",
    "SELECT set_config('default_transaction_read_only', 'off', false), bump()",
    "DELETE FROM accounts",
    "DELETE FROM accounts RETURNING *",
    "UPDATE accounts SET balance = 0 RETURNING id",
    "INSERT INTO accounts (name, balance) VALUES ('x', 1) RETURNING id",
    "TRUNCATE accounts CASCADE",
    "DROP TABLE ledger",
    "WITH d AS (DELETE FROM accounts RETURNING *) SELECT count(*) FROM d",
    "SELECT * FROM accounts FOR UPDATE",
    "EXPLAIN ANALYZE DELETE FROM accounts",
    "SELECT nextval('counter')",
    "SELECT setval('counter', 1000)",
    "SELECT * INTO stolen FROM accounts",
    "CREATE TEMP TABLE stolen AS SELECT * FROM accounts",
    f"COPY (SELECT 1) TO PROGRAM 'touch {MARKER}'",
    f"COPY accounts TO '{MARKER}'",
    "DO $$ BEGIN DELETE FROM accounts; END $$",
    "CALL bump_proc()",
    "LOCK accounts",
    "VACUUM accounts",
    "SELECT bump()",
    "SELECT * FROM bumping",
    "SELECT run_sql('DROP TABLE accounts')",
    "SELECT next_counter()",
    "PREPARE p AS DELETE FROM accounts",
    "CREATE ROLE intruder SUPERUSER LOGIN",
    "ALTER SYSTEM SET statement_timeout = 0",
]


async def test_escapes_past_the_guard_are_refused_by_the_database_and_change_nothing(
    victim: Credentials, source: asyncpg.Connection, settings: ExtractorSettings
) -> None:
    MARKER.unlink(missing_ok=True)
    before = await fingerprint(source)

    ran = []
    for sql in ESCAPES:
        try:
            await query_source(victim, sql, 10, settings, calls=WALLS_ONLY)
        except LakegateError:
            continue
        ran.append(sql)

    assert ran == []
    await until_the_extractor_left(source, victim.login.address.database)
    assert await fingerprint(source) == before
    assert not MARKER.exists()


async def test_postgresql_refuses_to_prepare_more_than_one_statement(
    victim: Credentials, settings: ExtractorSettings
) -> None:
    with pytest.raises(InvalidInput) as raised:
        await query_source(victim, "SELECT 1; SELECT 2", 10, settings, calls=WALLS_ONLY)

    assert "cannot insert multiple commands into a prepared statement" in raised.value.message
    assert "send exactly one statement" in raised.value.message


async def test_a_statement_that_returns_no_rows_is_refused_before_it_runs(
    victim: Credentials, settings: ExtractorSettings
) -> None:
    MARKER.unlink(missing_ok=True)

    with pytest.raises(InvalidInput) as raised:
        await query_source(victim, f"COPY (SELECT 1) TO PROGRAM 'touch {MARKER}'", 10, settings, calls=WALLS_ONLY)

    assert "returns no columns, so it is not a query" in raised.value.message
    assert not MARKER.exists()


@pytest.mark.parametrize(
    "escape",
    [
        "SET TRANSACTION READ WRITE; DELETE FROM accounts",
        "BEGIN READ WRITE; DELETE FROM accounts",
        "SELECT set_config('transaction_read_only', 'off', true); DELETE FROM accounts",
        "COMMIT; DELETE FROM accounts",  # the next transaction is read-only by the session's default
        "END; BEGIN; DROP TABLE accounts",
    ],
)
async def test_the_read_only_transaction_holds_even_against_several_statements_sent_at_once(
    victim: Credentials, source: asyncpg.Connection, settings: ExtractorSettings, escape: str
) -> None:
    async with connect(victim.login, settings, session=exploration_session(settings)) as conn:
        with pytest.raises(asyncpg.PostgresError) as raised:
            async with read_only_transaction(conn):
                await conn.execute(escape)  # the simple protocol runs every statement of the string

    assert raised.value.sqlstate in {"25006", "25001"}
    assert await source.fetchval("SELECT count(*) FROM accounts") == 20
    assert await source.fetchval("SELECT to_regclass('accounts') IS NOT NULL")


async def test_what_postgresql_lets_a_read_only_transaction_do_anyway_is_rolled_back(
    victim: Credentials, source: asyncpg.Connection, settings: ExtractorSettings
) -> None:
    result = await query_source(victim, "SELECT make_large_object() AS made", 10, settings, calls=WALLS_ONLY)

    assert result.row_count == 1  # lo_create works in a read-only transaction ...
    assert await source.fetchval("SELECT count(*) FROM pg_largeobject_metadata") == 0  # ... and was rolled back


async def test_a_query_runs_read_only_with_every_limit_set_on_the_server(
    victim: Credentials, settings: ExtractorSettings
) -> None:
    result = await query_source(
        victim,
        """
        SELECT current_setting('transaction_read_only') AS read_only,
               current_setting('default_transaction_read_only') AS default_read_only,
               current_setting('transaction_isolation') AS isolation,
               current_setting('statement_timeout') AS statement_timeout,
               current_setting('lock_timeout') AS lock_timeout,
               current_setting('idle_in_transaction_session_timeout') AS idle_timeout,
               current_setting('standard_conforming_strings') AS standard_strings,
               current_setting('application_name') AS application
        """,
        10,
        settings,
        calls=WALLS_ONLY,
    )

    assert dict(zip([c.name for c in result.columns], result.rows[0], strict=True)) == {
        "read_only": "on",
        "default_read_only": "on",
        "isolation": "repeatable read",
        "statement_timeout": "2s",
        "lock_timeout": "5s",
        "idle_timeout": "12s",
        "standard_strings": "on",
        "application": "lakegate-extractor",
    }


async def test_a_query_waiting_for_a_lock_gives_up_at_the_lock_timeout(
    victim: Credentials, source: asyncpg.Connection, source_dsn: str, settings: ExtractorSettings
) -> None:
    holder = await asyncpg.connect(source_dsn)
    try:
        async with holder.transaction():
            await holder.execute("LOCK accounts IN ACCESS EXCLUSIVE MODE")
            quick = settings.model_copy(update={"query_lock_timeout": 0.2})
            with pytest.raises(LakegateError) as raised:
                await query_source(victim, "SELECT count(*) FROM accounts", 10, quick, calls=WALLS_ONLY)
    finally:
        await holder.close()

    assert raised.value.code == "conflict"
    assert raised.value.transient
    assert "waited more than 0.2s for a lock" in raised.value.message


async def test_describing_a_system_catalog_that_holds_credentials_is_refused(catalog: FakeCatalog, shop: str) -> None:
    with pytest.raises(InvalidInput) as raised:
        await describe(catalog, shop, "pg_catalog.pg_authid")

    assert "pg_catalog.pg_authid holds credentials" in raised.value.message


async def test_built_in_functions_that_only_read_pass_the_allow_list(catalog: FakeCatalog, shop: str) -> None:
    result = await query(
        catalog,
        shop,
        "SELECT (SELECT 1 FROM pg_sleep(0)) AS slept, random() < 2 AS drew, now() <= clock_timestamp() AS clocks, "
        "lower('A') || upper('b') AS cased, pg_catalog.length('abc') AS len, 2 * 3 + 1 AS sum, "
        "to_char(date '2024-01-02', 'YYYY') AS year, (SELECT count(*) FROM pg_catalog.pg_class) > 0 AS catalog",
    )

    assert result.rows == [[1, True, True, "aB", 3, 7, "2024", True]]
