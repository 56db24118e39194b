"""Large tables: split into ranges, read by several replicas in one exported snapshot, staged as one extraction."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import asyncpg
import pyarrow as pa
import pytest
from lakegate.common.contracts.runs import (
    Cursor,
    Extracted,
    ExtractRange,
    ExtractTable,
    Failed,
    RangeExtracted,
    RangeFailed,
    StagedParts,
)
from lakegate.common.settings import NatsSettings
from lakegate.common.subjects import RunStep
from lakegate.extractor.app import ExtractorState, serve
from lakegate.extractor.config import ExtractorSettings
from nats.aio.msg import Msg

from .conftest import FakeCatalog, eventually, harness_settings, login_for

BATCH_ROWS = 1000
BATCH_BYTES = 256 * 1024


@pytest.fixture
def settings(nats_settings: NatsSettings) -> ExtractorSettings:
    """Tables above 256 KiB are read in 4 ranges, in batches far smaller than the tables."""
    return harness_settings(
        nats_settings,
        batch_rows=BATCH_ROWS,
        batch_bytes=BATCH_BYTES,
        max_part_bytes=BATCH_BYTES,
        progress_interval=0.01,
        parallel_min_bytes=256 * 1024,
        parallel_ranges=4,
        parallel_min_readers=1,  # split even with one replica, to test the ranges on one
    )


@pytest.fixture
async def second_extractor(settings: ExtractorSettings) -> AsyncIterator[ExtractorState]:
    async with serve(settings) as state:
        yield state


def resident_peak_kib() -> int:
    """This process's peak resident memory since the last `reset_resident_peak`."""
    status = Path("/proc/self/status").read_text()
    return int(next(line for line in status.splitlines() if line.startswith("VmHWM:")).split()[1])


def reset_resident_peak() -> None:
    Path("/proc/self/clear_refs").write_text("5")


async def test_a_large_table_is_read_in_ranges_shared_by_two_replicas_exactly_once_in_bounded_memory(
    catalog: FakeCatalog,
    extractor: ExtractorState,
    second_extractor: ExtractorState,
    source: asyncpg.Connection,
    source_dsn: str,
) -> None:
    rows = 150_000
    # About 1 KB a row, 150 MB in all: some six hundred times the batch size.
    await source.execute(
        f"CREATE TABLE events AS SELECT g AS id, repeat(md5(g::text), 30) AS body FROM generate_series(1, {rows}) g;"
        "ANALYZE events"
    )
    connection_id = catalog.add_source(login_for(source_dsn))
    reset_resident_peak()
    before = resident_peak_kib()

    outcome = await catalog.extract(connection_id, "events")

    growth_mib = (resident_peak_kib() - before) / 1024
    assert isinstance(outcome, Extracted), outcome
    assert len(outcome.ranges) == 3
    assert outcome.row_count == rows
    shared = [
        [index for run_id, index in state.ranges.staged if run_id == outcome.run_id]
        for state in (extractor, second_extractor)
    ]
    assert all(shared), shared  # each replica read some of the ranges
    assert sorted(shared[0] + shared[1]) == [0, 1, 2, 3]
    # Two replicas read two ranges at a time; each holds a few batches of 256 KiB, not the 150 MB table.
    assert growth_mib < 40, f"resident memory grew by {growth_mib:.0f} MiB"

    batches = await catalog.staged_batches(outcome)
    assert all(batch.num_rows <= BATCH_ROWS and batch.nbytes <= BATCH_BYTES * 1.1 for batch in batches)
    table = pa.Table.from_batches(batches)
    ids = table.column("id").to_pylist()
    assert len(ids) == rows
    assert sorted(ids) == list(range(1, rows + 1))  # no row twice, none missing
    assert table.column("body").to_pylist()[:1] == [
        await source.fetchval("SELECT body FROM events WHERE id = $1", ids[0])
    ]


async def test_every_range_reads_the_snapshot_the_coordinator_took_whatever_changes_after(
    catalog: FakeCatalog,
    second_extractor: ExtractorState,
    source: asyncpg.Connection,
    source_dsn: str,
) -> None:
    await source.execute(
        "CREATE TABLE accounts AS SELECT g AS id, 100 AS balance, md5(g::text) AS pad FROM generate_series(1, 20000) g;"
        "ANALYZE accounts"
    )
    connection_id = catalog.add_source(login_for(source_dsn))
    database = source_dsn.rsplit("/", 1)[1]
    writer = await asyncpg.connect(source_dsn)
    try:
        # The lock keeps the ranges from reading (the coordinator needs no lock on the table to plan them)...
        transaction = writer.transaction()
        await transaction.start()
        await writer.execute("LOCK TABLE accounts IN ACCESS EXCLUSIVE MODE")
        run = await catalog.start(connection_id, "accounts")

        async def ranges_waiting() -> bool:
            waiting = await source.fetchval(
                "SELECT count(*) FROM pg_stat_activity WHERE datname = $1 AND application_name = 'lakegate-extractor'"
                " AND wait_event_type = 'Lock'",
                database,
            )
            return bool(waiting >= 2)

        await eventually(ranges_waiting, "two ranges waiting for the table")
        # ...while the table changes under them, after the snapshot was taken.
        await writer.execute(
            "DELETE FROM accounts WHERE id % 2 = 0; UPDATE accounts SET balance = 0;"
            "INSERT INTO accounts SELECT g, 7, 'new' FROM generate_series(20001, 30000) g"
        )
        await transaction.commit()
        outcome = await asyncio.wait_for(run.outcome, 60)
    finally:
        await writer.close()

    assert isinstance(outcome, Extracted), outcome
    assert len(outcome.ranges) == 3
    table = await catalog.staged_table(outcome)
    assert sorted(table.column("id").to_pylist()) == list(range(1, 20001))
    assert set(table.column("balance").to_pylist()) == {100}


async def test_an_incremental_run_of_a_large_table_reads_only_new_rows_in_every_range_and_keeps_the_greatest_cursor(
    catalog: FakeCatalog, second_extractor: ExtractorState, source: asyncpg.Connection, source_dsn: str
) -> None:
    await source.execute(
        "CREATE TABLE readings AS SELECT g AS id, md5(g::text) AS pad,"
        " '2024-01-01+00'::timestamptz + (g % 1000) * interval '1 minute' AS updated_at"
        " FROM generate_series(1, 20000) g;"
        # New since the stored cursor: rows spread over the whole table, so over every range.
        "UPDATE readings SET updated_at = '2024-06-01+00'::timestamptz + id * interval '1 second' WHERE id % 1000 = 7;"
        "ANALYZE readings"
    )
    since = Cursor(column="updated_at", value="2024-05-01T00:00:00+00:00", source_type="timestamp with time zone")

    outcome = await catalog.extract(
        catalog.add_source(login_for(source_dsn)), "readings", mode="incremental", since=since
    )

    assert isinstance(outcome, Extracted), outcome
    assert len(outcome.ranges) == 3
    assert sorted((await catalog.staged_table(outcome)).column("id").to_pylist()) == list(range(7, 20000, 1000))
    assert outcome.cursor is not None
    assert outcome.cursor.model_copy(update={"snapshot": None}) == Cursor(
        column="updated_at", value="2024-06-01T05:16:47+00:00", source_type="timestamp with time zone"
    )  # 2024-06-01 + 19007 seconds


async def test_a_merge_with_detect_deletes_of_a_large_table_stages_every_key_of_its_snapshot_besides_the_new_rows(
    catalog: FakeCatalog, second_extractor: ExtractorState, source: asyncpg.Connection, source_dsn: str
) -> None:
    await source.execute(
        "CREATE TABLE readings (id bigint PRIMARY KEY, pad text, updated_at timestamptz);"
        "INSERT INTO readings SELECT g, md5(g::text), '2024-01-01+00'::timestamptz + (g % 1000) * interval '1 minute'"
        " FROM generate_series(1, 20000) g;"
        "UPDATE readings SET updated_at = '2024-06-01+00' WHERE id % 1000 = 7;"
        "DELETE FROM readings WHERE id % 1000 = 9;"
        "ANALYZE readings"
    )
    since = Cursor(column="updated_at", value="2024-05-01T00:00:00+00:00", source_type="timestamp with time zone")

    outcome = await catalog.extract(
        catalog.add_source(login_for(source_dsn)), "readings", mode="merge", since=since, detect_deletes=True
    )

    assert isinstance(outcome, Extracted), outcome
    assert len(outcome.ranges) == 3
    assert sorted((await catalog.staged_table(outcome)).column("id").to_pylist()) == list(range(7, 20000, 1000))
    keys = await catalog.staged_keys(outcome)
    assert keys.column_names == ["id"]
    assert sorted(keys.column("id").to_pylist()) == [n for n in range(1, 20001) if n % 1000 != 9]


async def test_a_partitioned_table_is_split_on_its_integer_primary_key_between_sampled_boundaries(
    catalog: FakeCatalog, second_extractor: ExtractorState, source: asyncpg.Connection, source_dsn: str
) -> None:
    await source.execute(
        "CREATE TABLE measures (id bigint PRIMARY KEY, pad text) PARTITION BY RANGE (id);"
        "CREATE TABLE measures_low PARTITION OF measures FOR VALUES FROM (MINVALUE) TO (5000);"
        "CREATE TABLE measures_high PARTITION OF measures FOR VALUES FROM (5000) TO (MAXVALUE);"
        "INSERT INTO measures SELECT g * 3, md5(g::text) FROM generate_series(1, 20000) g;"
        "ANALYZE measures"
    )
    outcome = await catalog.extract(
        catalog.add_source(login_for(source_dsn)), "measures", mode="merge", cursor_column="id"
    )

    assert isinstance(outcome, Extracted), outcome
    assert len(outcome.ranges) >= 2
    assert outcome.primary_key == ["id"]
    ids = (await catalog.staged_table(outcome)).column("id").to_pylist()
    assert sorted(ids) == [g * 3 for g in range(1, 20001)]


async def test_a_range_that_fails_fails_the_run_naming_the_range_and_the_column(
    catalog: FakeCatalog, second_extractor: ExtractorState, source: asyncpg.Connection, source_dsn: str
) -> None:
    # The last row, in the last blocks, holds a NaN that a decimal cannot.
    await source.execute(
        "CREATE TABLE prices AS SELECT g AS id, (g % 100)::numeric(8,2) AS price, md5(g::text) AS pad"
        " FROM generate_series(1, 20000) g;"
        "ALTER TABLE prices ALTER COLUMN price TYPE numeric(8,2);"
        "INSERT INTO prices VALUES (20001, 'NaN', 'x'); ANALYZE prices"
    )
    outcome = await catalog.extract(catalog.add_source(login_for(source_dsn)), "prices")

    assert isinstance(outcome, Failed), outcome
    assert outcome.error.code == "source_error"
    assert "range 4 of 4 of public.prices failed: column price (numeric(8,2)) of public.prices" in outcome.error.message

    async def nothing_left() -> bool:
        settled = await catalog.commands_waiting() == 0  # every range taken, and dropped or finished
        return settled and await catalog.staged_part_count(outcome.run_id) == 0

    await eventually(nothing_left, "every range to end and the run's staged parts to be deleted")


async def ranges_reported(catalog: FakeCatalog, run_id: str) -> list[RangeExtracted | RangeFailed]:
    found: list[RangeExtracted | RangeFailed] = []
    for data in await catalog.steps(run_id, RunStep.RANGE):
        try:
            found.append(RangeExtracted.model_validate_json(data))
        except ValueError:
            found.append(RangeFailed.model_validate_json(data))
    return found


async def send_range(
    catalog: FakeCatalog, run_id: str, connection_id: str, *, snapshot: str, index: int, predicate: str
) -> None:
    """Publish range `index` of 2 of the `items` table, attempt a1, as a coordinator would."""
    order = ExtractRange(
        tenant_id=catalog.tenant_id,
        run_id=run_id,
        connection_id=connection_id,
        source_schema="public",
        source_table="items",
        snapshot=snapshot,
        index=index,
        count=2,
        predicate=predicate,
        attempt="a1",
    )
    await catalog.broker.publish(
        order,
        catalog.topology.cmd_extract_range,
        stream=catalog.topology.cmd_stream.name,
        headers={"Nats-Msg-Id": f"{order.run_id}.range.{order.index}.{order.attempt}"},
    )


async def test_a_range_whose_snapshot_has_ended_is_dropped_without_failing_the_run(
    catalog: FakeCatalog, source: asyncpg.Connection, source_dsn: str
) -> None:
    await source.execute("CREATE TABLE items AS SELECT g AS id FROM generate_series(1, 10) g")
    connection_id = catalog.add_source(login_for(source_dsn))
    run_id = catalog.record(connection_id, "items")
    # A snapshot id of the right shape whose exporting transaction is long gone.
    async with source.transaction(isolation="repeatable_read", readonly=True):
        ended = await source.fetchval("SELECT pg_export_snapshot()")
    consumer = catalog.topology.durable("extractor_ranges")
    terminated = asyncio.Event()

    async def on_terminated(_msg: Msg) -> None:
        terminated.set()

    nc = catalog.broker.connection
    advisory = f"$JS.EVENT.ADVISORY.CONSUMER.MSG_TERMINATED.{catalog.topology.cmd_stream.name}.{consumer}"
    subscription = await nc.subscribe(advisory, cb=on_terminated)
    try:
        await send_range(
            catalog, run_id, connection_id, snapshot=ended, index=0, predicate="ctid < '(1,0)'::pg_catalog.tid"
        )
        await asyncio.wait_for(terminated.wait(), 30)
    finally:
        await subscription.unsubscribe()

    assert await ranges_reported(catalog, run_id) == []
    assert await catalog.steps(run_id, RunStep.FAILED) == []
    assert await catalog.commands_waiting() == 0


async def test_a_range_with_a_predicate_lakegate_did_not_build_is_refused_and_the_refusal_reported(
    catalog: FakeCatalog, source: asyncpg.Connection, source_dsn: str
) -> None:
    await source.execute("CREATE TABLE items AS SELECT g AS id FROM generate_series(1, 10) g")
    connection_id = catalog.add_source(login_for(source_dsn))
    run_id = catalog.record(connection_id, "items")
    holder = await asyncpg.connect(source_dsn)
    try:
        async with holder.transaction(isolation="repeatable_read", readonly=True):
            snapshot = await holder.fetchval("SELECT pg_export_snapshot()")
            forged = "ctid < '(1,0)'::pg_catalog.tid OR true) UNION SELECT 1 --"
            await send_range(catalog, run_id, connection_id, snapshot=snapshot, index=1, predicate=forged)

            async def reported() -> bool:
                return bool(await ranges_reported(catalog, run_id))

            await eventually(reported, "the range's report")
    finally:
        await holder.close()

    [report] = await ranges_reported(catalog, run_id)
    assert isinstance(report, RangeFailed)
    assert (report.index, report.attempt, report.error.code) == (1, "a1", "invalid_input")
    assert "is not one lakegate builds; refusing to run it" in report.error.message


async def test_reports_of_an_earlier_attempt_of_the_run_are_not_mixed_into_this_one(
    catalog: FakeCatalog, second_extractor: ExtractorState, source: asyncpg.Connection, source_dsn: str
) -> None:
    await source.execute(
        "CREATE TABLE events AS SELECT g AS id, md5(g::text) AS pad FROM generate_series(1, 20000) g; ANALYZE events"
    )
    connection_id = catalog.add_source(login_for(source_dsn))
    run_id = catalog.record(connection_id, "events")
    # What a coordinator that died left behind: a range staged in its own (other) snapshot.
    stale = RangeExtracted(
        tenant_id=catalog.tenant_id,
        run_id=run_id,
        index=0,
        row_count=12345,
        staged=StagedParts(location=catalog.topology.stage(run_id, "a7r0a1"), parts=0, bytes=0),
        attempt="a7",
    )
    js = catalog.broker.connection.jetstream()
    await js.publish(catalog.topology.run_step(run_id, RunStep.RANGE), stale.model_dump_json().encode())
    outcome = await catalog.outcome(run_id)
    await catalog.send(catalog_command(catalog, run_id, connection_id, "events"))

    extracted = await asyncio.wait_for(outcome, 60)
    assert isinstance(extracted, Extracted), extracted
    assert extracted.row_count == 20000
    assert extracted.staged.location == catalog.topology.stage(run_id, "a1r0a1")


def catalog_command(catalog: FakeCatalog, run_id: str, connection_id: str, table: str) -> ExtractTable:
    return ExtractTable(
        tenant_id=catalog.tenant_id,
        run_id=run_id,
        connection_id=connection_id,
        source_schema="public",
        source_table=table,
        target=catalog.runs[run_id].target,
        sync_mode="full",
    )
