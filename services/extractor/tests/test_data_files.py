"""Full syncs by an extractor that shares the local lakehouse's filesystem: staged as the table's own data files."""

from __future__ import annotations

from pathlib import Path

import asyncpg
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from lakegate.common.contracts.runs import Extracted
from lakegate.common.settings import NatsSettings
from lakegate.common.staging import DATA_FILES_DIR
from lakegate.extractor.config import ExtractorSettings

from .conftest import FakeCatalog, harness_settings, login_for


@pytest.fixture
def settings(nats_settings: NatsSettings, tmp_path: Path) -> ExtractorSettings:
    """Tables above 256 KiB are read in 3 ranges; every full sync is staged under `tmp_path/_staging`."""
    return harness_settings(
        nats_settings,
        batch_rows=1000,
        batch_bytes=256 * 1024,
        parallel_min_bytes=256 * 1024,
        parallel_ranges=3,
        parallel_min_readers=1,  # split even with one replica, to test the ranges on one
        lakehouse_dir=tmp_path,
    )


def staged_files(outcome: Extracted, lakehouse: Path) -> list[Path]:
    return [
        lakehouse / DATA_FILES_DIR / s.location / name for s in [outcome.staged, *outcome.ranges] for name in s.files
    ]


@pytest.mark.parametrize("rows", [10, 20_000], ids=["one stream", "in ranges"])
async def test_a_full_sync_is_staged_as_parquet_data_files_holding_every_row_in_the_lakehouse_types(
    rows: int, catalog: FakeCatalog, source: asyncpg.Connection, source_dsn: str, tmp_path: Path
) -> None:
    await source.execute(
        "CREATE TABLE orders AS SELECT g::bigint AS id, repeat(md5(g::text), 2) AS note, "
        "timestamptz '2024-01-01 00:00:00+00' + g * interval '1 second' AS at, g::int2 AS small "
        f"FROM generate_series(1, {rows}) g; ANALYZE orders"
    )
    connection_id = catalog.add_source(login_for(source_dsn))

    outcome = await catalog.extract(connection_id, "orders")

    assert isinstance(outcome, Extracted), outcome
    assert len(outcome.ranges) == (2 if rows > 10 else 0)
    assert {s.store for s in [outcome.staged, *outcome.ranges]} == {"datafiles"}
    assert await catalog.staged_part_count(outcome.run_id) == 0  # nothing went through JetStream
    paths = staged_files(outcome, tmp_path)
    table = pa.concat_tables([pq.read_table(path) for path in paths])
    assert table.num_rows == outcome.row_count == rows
    assert sorted(table.column("id").to_pylist()) == list(range(1, rows + 1))
    assert str(table.schema.field("at").type) == "timestamp[us, tz=UTC]"
    first = table.filter(pa.compute.equal(table.column("id"), 1)).to_pylist()[0]
    assert first["note"] == await source.fetchval("SELECT note FROM orders WHERE id = 1")
    assert sum(s.bytes for s in [outcome.staged, *outcome.ranges]) == sum(path.stat().st_size for path in paths)


async def test_an_incremental_sync_is_still_staged_as_parts(
    catalog: FakeCatalog, source: asyncpg.Connection, source_dsn: str, tmp_path: Path
) -> None:
    await source.execute("CREATE TABLE visits AS SELECT g::bigint AS id FROM generate_series(1, 10) g")
    connection_id = catalog.add_source(login_for(source_dsn))

    outcome = await catalog.extract(connection_id, "visits", mode="incremental", cursor_column="id")

    assert isinstance(outcome, Extracted), outcome
    assert outcome.staged.store == "jetstream"
    assert (await catalog.staged_table(outcome)).column("id").to_pylist() == list(range(1, 11))
    assert not (tmp_path / DATA_FILES_DIR / outcome.run_id).exists()
