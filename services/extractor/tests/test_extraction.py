"""Extractions through the real entry point: `cmd.extract` in, staged parts and run steps out."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator

import asyncpg
import pyarrow as pa
import pytest
from lakegate.common.contracts.runs import Extracted, Extracting, ExtractTable, Failed, Progress
from lakegate.common.settings import NatsSettings
from lakegate.common.subjects import RunStep
from lakegate.extractor.app import ExtractorState, serve
from lakegate.extractor.config import ExtractorSettings
from nats.aio.msg import Msg

from .conftest import FakeCatalog, eventually, harness_settings, login_for

BATCH_BYTES = 256 * 1024
PART_BYTES = 64 * 1024


@pytest.fixture
def settings(nats_settings: NatsSettings) -> ExtractorSettings:
    """Small batches, so that a few thousand rows (or a few hundred wide ones) make several parts."""
    return harness_settings(
        nats_settings,
        batch_rows=1000,
        batch_bytes=BATCH_BYTES,
        max_part_bytes=PART_BYTES,
        progress_interval=0.01,
    )


async def test_a_table_larger_than_one_batch_is_staged_in_several_parts_complete_and_in_order(
    catalog: FakeCatalog, source: asyncpg.Connection, source_dsn: str
) -> None:
    await source.execute(
        "CREATE TABLE events AS SELECT g AS id, md5(g::text) AS digest, now() - g * interval '1 minute' AS at "
        "FROM generate_series(1, 5500) g"
    )
    outcome = await catalog.extract(catalog.add_source(login_for(source_dsn)), "events")

    assert isinstance(outcome, Extracted), outcome
    assert outcome.row_count == 5500
    assert outcome.staged.parts >= 6
    batches = await catalog.staged_batches(outcome)
    assert len(batches) == outcome.staged.parts
    assert all(batch.num_rows <= 1000 for batch in batches)
    table = pa.Table.from_batches(batches)
    want = await source.fetch("SELECT id, digest, at FROM events")  # the order CREATE TABLE AS wrote
    assert table.column("id").to_pylist() == [row["id"] for row in want]
    assert table.column("digest").to_pylist() == [row["digest"] for row in want]
    assert table.column("at").to_pylist() == [row["at"] for row in want]


async def test_wide_rows_are_cut_into_batches_of_about_the_configured_bytes(
    catalog: FakeCatalog, source: asyncpg.Connection, source_dsn: str
) -> None:
    await source.execute(
        "CREATE TABLE pages AS SELECT g AS id, repeat(md5(g::text), 32) AS body FROM generate_series(1, 900) g"
    )
    outcome = await catalog.extract(catalog.add_source(login_for(source_dsn)), "pages")

    assert isinstance(outcome, Extracted), outcome
    batches = await catalog.staged_batches(outcome)
    assert len(batches) >= 3  # 900 rows of ~1 KB in 256 KB batches
    assert all(batch.nbytes <= BATCH_BYTES * 1.1 for batch in batches)
    assert pa.Table.from_batches(batches).column("id").to_pylist() == list(range(1, 901))


async def test_a_row_larger_than_a_staged_part_fails_the_run_and_the_extractor_carries_on(
    catalog: FakeCatalog, source: asyncpg.Connection, source_dsn: str
) -> None:
    # 320 KB of random bytes per row cannot be compressed into a 64 KB part.
    await source.execute(
        "CREATE TABLE blobs AS SELECT n AS id, (SELECT decode(string_agg(replace(gen_random_uuid()::text, '-', ''),"
        " ''), 'hex') FROM generate_series(1, 20000) WHERE n > 0) AS data FROM generate_series(1, 20) n;"
        "CREATE TABLE small AS SELECT 1 AS id"
    )
    connection_id = catalog.add_source(login_for(source_dsn))

    outcome = await catalog.extract(connection_id, "blobs")
    assert isinstance(outcome, Failed), outcome
    assert f"more than the {PART_BYTES}-byte staging limit" in outcome.error.message

    after = await catalog.extract(connection_id, "small")
    assert isinstance(after, Extracted), after
    assert after.row_count == 1


async def test_an_empty_table_is_a_valid_extraction_with_its_schema_and_no_parts(
    catalog: FakeCatalog, source: asyncpg.Connection, source_dsn: str
) -> None:
    await source.execute("CREATE TABLE nothing (id bigint NOT NULL, amount numeric(12,2))")
    outcome = await catalog.extract(catalog.add_source(login_for(source_dsn)), "nothing")

    assert isinstance(outcome, Extracted), outcome
    assert outcome.row_count == 0
    assert outcome.staged.parts == 0
    assert [(c.name, c.arrow_type) for c in outcome.columns] == [("id", "int64"), ("amount", "decimal128(12, 2)")]
    assert outcome.arrow_schema


async def test_an_unknown_table_fails_the_run_naming_the_table_and_the_tables_there(
    catalog: FakeCatalog, source: asyncpg.Connection, source_dsn: str
) -> None:
    await source.execute("CREATE TABLE orders (id int); CREATE TABLE customers (id int)")
    outcome = await catalog.extract(catalog.add_source(login_for(source_dsn), name="shop"), "Orders")

    assert isinstance(outcome, Failed), outcome
    assert outcome.step == "extract"
    assert outcome.error.code == "not_found"
    assert not outcome.error.transient
    message = outcome.error.message
    assert "table public.Orders was not found in source 'shop'" in message
    assert "case-sensitive" in message
    assert message.index("public.orders") < message.index("public.customers")  # the likely one first


async def test_the_extraction_reads_in_a_repeatable_read_read_only_transaction(
    catalog: FakeCatalog, source: asyncpg.Connection, source_dsn: str
) -> None:
    # The database itself reports the transaction that reads this view.
    await source.execute(
        "CREATE VIEW whoami AS SELECT current_setting('transaction_isolation') AS isolation, "
        "current_setting('transaction_read_only') AS read_only, current_setting('IntervalStyle') AS interval_style"
    )
    outcome = await catalog.extract(catalog.add_source(login_for(source_dsn)), "whoami")

    assert isinstance(outcome, Extracted), outcome
    rows = pa.Table.from_batches(await catalog.staged_batches(outcome)).to_pylist()
    assert rows == [{"isolation": "repeatable read", "read_only": "on", "interval_style": "iso_8601"}]


async def test_a_view_whose_function_writes_fails_and_the_write_never_happens(
    catalog: FakeCatalog, source: asyncpg.Connection, source_dsn: str
) -> None:
    await source.execute(
        """
        CREATE TABLE audit (seen_at timestamptz);
        CREATE TABLE orders (id int);
        INSERT INTO orders VALUES (1), (2);
        CREATE FUNCTION remember() RETURNS int LANGUAGE plpgsql VOLATILE AS
            $$ BEGIN INSERT INTO audit VALUES (now()); RETURN 1; END $$;
        CREATE VIEW watched_orders AS SELECT id, remember() AS marker FROM orders;
        """
    )
    outcome = await catalog.extract(catalog.add_source(login_for(source_dsn)), "watched_orders")

    assert isinstance(outcome, Failed), outcome
    assert outcome.error.code == "source_error"
    assert "read-only transaction" in outcome.error.message
    assert "public.watched_orders" in outcome.error.message
    assert await source.fetchval("SELECT count(*) FROM audit") == 0


async def test_a_user_without_select_privilege_fails_the_run_saying_what_to_grant(
    catalog: FakeCatalog, source: asyncpg.Connection, source_dsn: str
) -> None:
    reader = f"reader_{uuid.uuid4().hex[:8]}"
    await source.execute(f"CREATE ROLE {reader} LOGIN; CREATE TABLE secret (id int); INSERT INTO secret VALUES (1)")
    outcome = await catalog.extract(catalog.add_source(login_for(source_dsn, user=reader)), "secret")

    assert isinstance(outcome, Failed), outcome
    assert outcome.error.code == "source_error"
    assert f"user '{reader}' may not read table public.secret" in outcome.error.message
    assert f"GRANT SELECT ON public.secret TO {reader}" in outcome.error.message


async def test_names_that_need_quoting_are_read_exactly(
    catalog: FakeCatalog, source: asyncpg.Connection, source_dsn: str
) -> None:
    table = '"Sales Dept"."Order ""Items"""'
    await source.execute(
        'CREATE SCHEMA "Sales Dept";'
        f'CREATE TABLE {table} ("Id" int, "select" text, "a""b; DROP TABLE x" text, "{{c}}" int);'
        f"INSERT INTO {table} VALUES (1, 'from', 'ok', 2)"
    )
    outcome = await catalog.extract(catalog.add_source(login_for(source_dsn)), 'Order "Items"', schema="Sales Dept")

    assert isinstance(outcome, Extracted), outcome
    rows = pa.Table.from_batches(await catalog.staged_batches(outcome)).to_pylist()
    assert rows == [{"Id": 1, "select": "from", 'a"b; DROP TABLE x': "ok", "{c}": 2}]


async def test_a_transient_failure_is_retried_and_the_retry_stages_parts_of_its_own(
    catalog: FakeCatalog, source: asyncpg.Connection, source_dsn: str
) -> None:
    await source.execute("CREATE TABLE retried AS SELECT g AS id FROM generate_series(1, 10) g")
    connection_id = catalog.add_source(login_for(source_dsn))
    catalog.unavailable_for = 1

    outcome = await catalog.extract(connection_id, "retried")

    assert isinstance(outcome, Extracted), outcome
    assert outcome.staged.location == catalog.topology.stage(outcome.run_id, "a2")
    assert pa.Table.from_batches(await catalog.staged_batches(outcome)).column("id").to_pylist() == list(range(1, 11))


async def test_a_source_the_catalog_does_not_know_fails_the_run(catalog: FakeCatalog) -> None:
    outcome = await catalog.extract("src_gone", "orders")

    assert isinstance(outcome, Failed), outcome
    assert outcome.error.code == "not_found"
    assert "src_gone" in outcome.error.message


async def test_the_extractor_announces_the_attempt_and_reports_progress(
    catalog: FakeCatalog, source: asyncpg.Connection, source_dsn: str
) -> None:
    await source.execute("CREATE TABLE ticks AS SELECT g AS id FROM generate_series(1, 3000) g")
    progress: list[int] = []
    all_rows = asyncio.Event()

    async def on_progress(msg: Msg) -> None:
        progress.append(Progress.model_validate_json(msg.data).rows)
        if progress[-1] == 3000:
            all_rows.set()

    nc = catalog.broker.connection
    subscription = await nc.subscribe(catalog.topology.progress("*"), cb=on_progress)
    try:
        outcome = await catalog.extract(catalog.add_source(login_for(source_dsn)), "ticks")
        await asyncio.wait_for(all_rows.wait(), 10)
    finally:
        await subscription.unsubscribe()

    assert isinstance(outcome, Extracted), outcome
    assert progress == sorted(progress)
    js = nc.jetstream()
    raw = await js.get_last_msg(
        catalog.topology.run_stream.name, catalog.topology.run_step(outcome.run_id, RunStep.EXTRACTING)
    )
    assert raw.data is not None
    assert Extracting.model_validate_json(raw.data).attempt == "a1"


@pytest.fixture
async def second_extractor(settings: ExtractorSettings) -> AsyncIterator[ExtractorState]:
    async with serve(settings) as state:
        yield state


async def test_two_replicas_form_one_consumer_group_and_finish_every_run_without_redelivery(
    catalog: FakeCatalog, second_extractor: ExtractorState, source: asyncpg.Connection, source_dsn: str
) -> None:
    await source.execute("CREATE TABLE items AS SELECT g AS id FROM generate_series(1, 100) g")
    connection_id = catalog.add_source(login_for(source_dsn))

    outcomes = await asyncio.gather(*(catalog.extract(connection_id, "items") for _ in range(4)))

    assert all(isinstance(o, Extracted) and o.row_count == 100 for o in outcomes)
    consumer = await catalog.broker.connection.jetstream().consumer_info(
        catalog.topology.cmd_stream.name, catalog.topology.durable("extractor")
    )
    assert consumer.num_redelivered == 0


async def test_a_redelivered_command_of_a_run_that_already_reported_its_extraction_is_acknowledged_unread(
    catalog: FakeCatalog, source: asyncpg.Connection, source_dsn: str
) -> None:
    await source.execute("CREATE TABLE items AS SELECT g AS id FROM generate_series(1, 10) g")
    connection_id = catalog.add_source(login_for(source_dsn))
    first = await catalog.extract(connection_id, "items")
    assert isinstance(first, Extracted), first
    steps_before = await catalog.steps(first.run_id, RunStep.EXTRACTING)

    # The same command again, as JetStream redelivers it when an acknowledgement was lost.
    command = ExtractTable(
        tenant_id=catalog.tenant_id,
        run_id=first.run_id,
        connection_id=connection_id,
        source_schema="public",
        source_table="items",
        target=first.target,
        sync_mode="full",
    )
    await catalog.broker.publish(command, catalog.topology.cmd_extract, stream=catalog.topology.cmd_stream.name)

    async def acknowledged() -> bool:
        return await catalog.commands_waiting() == 0

    await eventually(acknowledged, "the repeated command acknowledged")
    assert await catalog.steps(first.run_id, RunStep.EXTRACTING) == steps_before
    assert len(await catalog.steps(first.run_id, RunStep.EXTRACTED)) == 1


@pytest.mark.parametrize("table", ["pg_authid", "pg_shadow", "pg_user_mapping", "PG_AUTHID"])
async def test_a_system_catalog_holding_credentials_is_never_synced(
    catalog: FakeCatalog, source_dsn: str, table: str
) -> None:
    outcome = await catalog.extract(catalog.add_source(login_for(source_dsn)), table, "pg_catalog")

    assert isinstance(outcome, Failed), outcome
    assert outcome.error.code == "invalid_input"
    assert not outcome.error.transient
    assert f"table pg_catalog.{table} holds credentials" in outcome.error.message
