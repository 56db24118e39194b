"""One extractor replica extracts several tables at once, never holding more connections to a source than allowed."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable

import asyncpg
import pytest
from lakegate.common.contracts.runs import Extracted
from lakegate.common.settings import NatsSettings
from lakegate.common.subjects import RunStep
from lakegate.devstack.pytest_plugin import CreateDatabase
from lakegate.extractor.config import ExtractorSettings
from lakegate.extractor.connections import SourceConnections

from .conftest import OUTCOME_TIMEOUT, FakeCatalog, StartedRun, eventually, harness_settings, login_for
from .hostile_source import sessions_of_the_extractor

#: Connections one replica may hold to one source in these tests: two tables read at once.
SOURCE_CONNECTIONS = 4


@pytest.fixture
def settings(nats_settings: NatsSettings) -> ExtractorSettings:
    return harness_settings(
        nats_settings,
        max_concurrent_runs=4,
        source_connections=SOURCE_CONNECTIONS,
    )


@contextlib.asynccontextmanager
async def tables_locked(dsn: str, *tables: str) -> AsyncIterator[None]:
    """Hold ACCESS EXCLUSIVE locks on `tables` for the block: a read of them waits at the source until it ends."""
    conn = await asyncpg.connect(dsn)
    try:
        async with conn.transaction():
            await conn.execute(f"LOCK TABLE {', '.join(tables)} IN ACCESS EXCLUSIVE MODE")
            yield
    finally:
        await conn.close()


@contextlib.asynccontextmanager
async def most_sessions(dsn: str) -> AsyncIterator[list[int]]:
    """The most sessions the extractor had open on `dsn`'s database at once while the block ran (sampled)."""
    seen = [0]
    conn = await asyncpg.connect(dsn)
    database = dsn.rsplit("/", 1)[1]

    async def sample() -> None:
        while True:
            seen[0] = max(seen[0], len(await sessions_of_the_extractor(conn, database)))
            await asyncio.sleep(0.01)  # PostgreSQL announces no new session: sample pg_stat_activity

    task = asyncio.create_task(sample())
    try:
        yield seen
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        await conn.close()


async def extracting(catalog: FakeCatalog, run: StartedRun) -> bool:
    return bool(await catalog.steps(run.run_id, RunStep.EXTRACTING))


async def test_two_tables_of_one_call_are_extracted_at_the_same_time_by_one_replica(
    catalog: FakeCatalog, source: asyncpg.Connection, source_dsn: str
) -> None:
    await source.execute(
        "CREATE TABLE first AS SELECT g AS id FROM generate_series(1, 1000) g;"
        "CREATE TABLE second AS SELECT g AS id FROM generate_series(1, 2000) g"
    )
    connection_id = catalog.add_source(login_for(source_dsn))

    async with tables_locked(source_dsn, "first", "second"):
        runs = [await catalog.start(connection_id, "first"), await catalog.start(connection_id, "second")]

        async def both_extracting() -> bool:
            return all([await extracting(catalog, run) for run in runs])

        # Both reads are under way (and wait on the lock) before either has finished.
        await eventually(both_extracting, "both runs extracting")
        assert not any(run.outcome.done() for run in runs)

    outcomes = [await asyncio.wait_for(run.outcome, OUTCOME_TIMEOUT) for run in runs]
    assert [o.row_count if isinstance(o, Extracted) else o for o in outcomes] == [1000, 2000]


async def test_a_source_never_gets_more_connections_than_its_limit_while_other_sources_go_on(
    catalog: FakeCatalog, source: asyncpg.Connection, source_dsn: str, create_database: CreateDatabase
) -> None:
    tables = ["t1", "t2", "t3"]
    await source.execute(";".join(f"CREATE TABLE {t} AS SELECT g AS id FROM generate_series(1, 500) g" for t in tables))
    connection_id = catalog.add_source(login_for(source_dsn))
    other_dsn = await create_database("other")
    other = await asyncpg.connect(other_dsn)
    try:
        await other.execute("CREATE TABLE elsewhere AS SELECT g AS id FROM generate_series(1, 10) g")
    finally:
        await other.close()
    other_id = catalog.add_source(login_for(other_dsn), name="other")
    database = source_dsn.rsplit("/", 1)[1]

    async with most_sessions(source_dsn) as seen:
        async with tables_locked(source_dsn, *tables):
            runs = [await catalog.start(connection_id, table) for table in tables]

            async def two_reads_waiting() -> bool:
                return len(await sessions_of_the_extractor(source, database)) == SOURCE_CONNECTIONS

            await eventually(two_reads_waiting, "two reads holding the source's connections")
            # Taken after the third table (the consumer hands commands out in order), and on another
            # source: it runs at once, while the third waits for a place on its own source.
            elsewhere = await catalog.start(other_id, "elsewhere")
            done = await asyncio.wait_for(elsewhere.outcome, OUTCOME_TIMEOUT)
            assert isinstance(done, Extracted), done
            assert done.row_count == 10
            started = [await extracting(catalog, run) for run in runs]
            assert sorted(started) == [False, True, True], started
        outcomes = [await asyncio.wait_for(run.outcome, OUTCOME_TIMEOUT) for run in runs]

    assert all(isinstance(o, Extracted) and o.row_count == 500 for o in outcomes), outcomes
    assert 0 < seen[0] <= SOURCE_CONNECTIONS, seen


async def test_a_coordinator_waiting_for_its_ranges_lends_its_readers_place_so_a_range_can_be_read() -> None:
    pool = SourceConnections(3)
    async with pool.hold("t/src") as coordinator:
        assert pool.in_use("t/src") == 2
        # A range needs two: it gets them beside the coordinator's snapshot session.
        async with coordinator.lend(1), asyncio.timeout(5), pool.hold("t/src"):
            assert pool.in_use("t/src") == 3
        assert pool.in_use("t/src") == 2
    assert pool.in_use("t/src") == 0


async def test_a_run_that_stops_while_waiting_for_its_source_leaves_the_places_to_the_next() -> None:
    pool = SourceConnections(4)
    first, second = pool.hold("t/src"), pool.hold("t/src")
    await first.__aenter__()
    await second.__aenter__()
    waiting = asyncio.create_task(_hold_once(pool))
    after = asyncio.create_task(_hold_once(pool))
    await eventually(_queued(pool, 2), "both waiting for a place")
    waiting.cancel()
    await first.__aexit__(None, None, None)
    async with asyncio.timeout(5):
        await after  # the cancelled waiter's turn went to the next one
    await second.__aexit__(None, None, None)
    assert pool.in_use("t/src") == 0


async def _hold_once(pool: SourceConnections) -> None:
    async with pool.hold("t/src"):
        pass


def _queued(pool: SourceConnections, count: int) -> Callable[[], Awaitable[bool]]:
    async def check() -> bool:
        return pool.waiting("t/src") == count

    return check
