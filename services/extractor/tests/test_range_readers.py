"""A large table is split into ranges only when several replicas are ready to read them (`parallel_min_readers`)."""

from __future__ import annotations

from collections.abc import AsyncIterator

import asyncpg
import pytest
from lakegate.common.contracts.runs import Extracted
from lakegate.common.settings import NatsSettings
from lakegate.extractor.app import ExtractorState, serve
from lakegate.extractor.config import ExtractorSettings
from lakegate.extractor.coordination import ready_range_readers

from .conftest import FakeCatalog, eventually, harness_settings, login_for

ROWS = 20_000


@pytest.fixture
def settings(nats_settings: NatsSettings) -> ExtractorSettings:
    """Tables above 256 KiB are large; how many replicas a split needs is left at its default."""
    return harness_settings(nats_settings, batch_rows=1000, parallel_min_bytes=256 * 1024, parallel_ranges=4)


@pytest.fixture
async def large_table(source: asyncpg.Connection) -> str:
    """About 2.6 MB: ten times what counts as large here."""
    await source.execute(
        f"CREATE TABLE events AS SELECT g AS id, repeat(md5(g::text), 4) AS body FROM generate_series(1, {ROWS}) g;"
        "ANALYZE events"
    )
    return "events"


async def test_by_default_a_lone_replica_reads_a_large_table_as_one_stream(
    catalog: FakeCatalog, extractor: ExtractorState, source_dsn: str, large_table: str
) -> None:
    assert await ready_range_readers(extractor.runtime) == 1  # its own free range slot

    outcome = await catalog.extract(catalog.add_source(login_for(source_dsn)), large_table)

    assert isinstance(outcome, Extracted), outcome
    assert outcome.ranges == []
    assert extractor.ranges.staged == []
    assert outcome.row_count == ROWS
    ids = (await catalog.staged_table(outcome)).column("id").to_pylist()
    assert sorted(ids) == list(range(1, ROWS + 1))


@pytest.fixture
async def second_extractor(settings: ExtractorSettings) -> AsyncIterator[ExtractorState]:
    async with serve(settings) as state:
        yield state


async def test_two_ready_replicas_split_a_large_table_and_share_its_ranges(
    catalog: FakeCatalog,
    extractor: ExtractorState,
    second_extractor: ExtractorState,
    source_dsn: str,
    large_table: str,
) -> None:
    async def both_ready() -> bool:  # each replica's pull request reaches JetStream on its own; nothing announces it
        return await ready_range_readers(extractor.runtime) >= 2

    await eventually(both_ready, "both replicas waiting for ranges")

    outcome = await catalog.extract(catalog.add_source(login_for(source_dsn)), large_table)

    assert isinstance(outcome, Extracted), outcome
    assert len(outcome.ranges) == 3  # four ranges: the first is `staged`, the rest `ranges`
    assert outcome.row_count == ROWS
    read = sorted(index for state in (extractor, second_extractor) for _, index in state.ranges.staged)
    assert read == [0, 1, 2, 3]
    ids = (await catalog.staged_table(outcome)).column("id").to_pylist()
    assert sorted(ids) == list(range(1, ROWS + 1))
