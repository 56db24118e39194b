"""Cancelled runs: the extractor stops reading, deletes what it staged, publishes nothing more, and carries on."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import asyncpg
import pytest
from lakegate.common.contracts.runs import Extracted, ExtractTable, Progress
from lakegate.common.settings import NatsSettings
from lakegate.common.subjects import RunStep
from lakegate.extractor.app import ExtractorState, serve
from lakegate.extractor.config import ExtractorSettings
from nats.aio.msg import Msg

from .conftest import FakeCatalog, eventually, harness_settings, login_for
from .hostile_source import sessions_of_the_extractor, until_the_extractor_left


@pytest.fixture
def settings(nats_settings: NatsSettings) -> ExtractorSettings:
    return harness_settings(
        nats_settings,
        batch_rows=1000,
        batch_bytes=64 * 1024,
        max_part_bytes=64 * 1024,
        progress_interval=0.01,
        parallel_min_bytes=256 * 1024,
        parallel_ranges=4,
        parallel_min_readers=1,  # split even with one replica, to test the ranges on one
    )


@pytest.fixture
async def second_extractor(settings: ExtractorSettings) -> AsyncIterator[ExtractorState]:
    async with serve(settings) as state:
        yield state


async def nothing_published(catalog: FakeCatalog, run_id: str) -> None:
    for step in (RunStep.EXTRACTED, RunStep.FAILED, RunStep.RANGE):
        assert await catalog.steps(run_id, step) == [], step


async def test_a_run_cancelled_mid_read_stops_deletes_its_staged_parts_and_publishes_nothing_more(
    catalog: FakeCatalog, source: asyncpg.Connection, source_dsn: str
) -> None:
    # A view that yields some twenty thousand rows a second: the read is still going when the cancel comes.
    await source.execute(
        "CREATE FUNCTION slow(int) RETURNS int LANGUAGE sql VOLATILE AS"
        " $$ SELECT $1 FROM pg_sleep(CASE WHEN $1 % 20 = 0 THEN 0.001 ELSE 0 END) $$;"
        "CREATE VIEW trickle AS SELECT slow(g) AS id FROM generate_series(1, 10000000) g;"
        "CREATE TABLE after AS SELECT 1 AS id"
    )
    connection_id = catalog.add_source(login_for(source_dsn))
    read_some = asyncio.Event()

    async def on_progress(msg: Msg) -> None:
        if Progress.model_validate_json(msg.data).rows >= 1000:
            read_some.set()

    nc = catalog.broker.connection
    subscription = await nc.subscribe(catalog.topology.progress("*"), cb=on_progress)
    try:
        run = await catalog.start(connection_id, "trickle")
        await asyncio.wait_for(read_some.wait(), 30)
    finally:
        await subscription.unsubscribe()
    assert await catalog.staged_part_count(run.run_id) > 0

    await catalog.cancel(run.run_id)

    async def settled() -> bool:
        return await catalog.commands_waiting() == 0 and await catalog.staged_part_count(run.run_id) == 0

    await eventually(settled, "the command acknowledged and the staged parts deleted")
    await until_the_extractor_left(source, source_dsn.rsplit("/", 1)[1])
    await nothing_published(catalog, run.run_id)
    assert not run.outcome.done()
    after = await catalog.extract(connection_id, "after")
    assert isinstance(after, Extracted), after


async def test_a_run_cancelled_before_the_extractor_took_it_is_acknowledged_and_never_read(
    catalog: FakeCatalog, source: asyncpg.Connection, source_dsn: str
) -> None:
    await source.execute("CREATE TABLE items AS SELECT g AS id FROM generate_series(1, 10) g")
    connection_id = catalog.add_source(login_for(source_dsn))
    run_id = catalog.record(connection_id, "items")
    await catalog.cancel(run_id)  # nobody listens yet: the extractor learns it from the catalog's record

    await catalog.send(
        ExtractTable(
            tenant_id=catalog.tenant_id,
            run_id=run_id,
            connection_id=connection_id,
            source_schema="public",
            source_table="items",
            target=catalog.runs[run_id].target,
            sync_mode="full",
        )
    )

    async def acknowledged() -> bool:
        return await catalog.commands_waiting() == 0

    await eventually(acknowledged, "the command acknowledged")
    assert await catalog.steps(run_id, RunStep.EXTRACTING) == []
    await nothing_published(catalog, run_id)


async def test_cancelling_a_parallel_extraction_stops_the_coordinator_and_every_range(
    catalog: FakeCatalog,
    second_extractor: ExtractorState,
    source: asyncpg.Connection,
    source_dsn: str,
) -> None:
    await source.execute(
        "CREATE TABLE events AS SELECT g AS id, md5(g::text) AS pad FROM generate_series(1, 20000) g; ANALYZE events"
    )
    connection_id = catalog.add_source(login_for(source_dsn))
    database = source_dsn.rsplit("/", 1)[1]
    locker = await asyncpg.connect(source_dsn)
    try:
        # The ranges wait for this lock, so they are mid-read when the cancel comes.
        transaction = locker.transaction()
        await transaction.start()
        await locker.execute("LOCK TABLE events IN ACCESS EXCLUSIVE MODE")
        run = await catalog.start(connection_id, "events")

        async def ranges_waiting() -> bool:
            sessions = await sessions_of_the_extractor(source, database)
            blocked = await source.fetchval(
                "SELECT count(*) FROM pg_stat_activity WHERE datname = $1 AND wait_event_type = 'Lock'", database
            )
            return bool(sessions) and blocked >= 2

        await eventually(ranges_waiting, "two ranges waiting for the table")
        await catalog.cancel(run.run_id)

        async def settled() -> bool:
            # The two waiting ranges are stopped, the two queued ones are dropped, the coordinator has let go.
            return await catalog.commands_waiting() == 0 and not await sessions_of_the_extractor(source, database)

        await eventually(settled, "every command acknowledged and every source session closed")
        await transaction.rollback()
    finally:
        await locker.close()

    assert await catalog.staged_part_count(run.run_id) == 0
    await nothing_published(catalog, run.run_id)
    assert not run.outcome.done()
