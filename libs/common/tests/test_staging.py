import os
import time
from pathlib import Path

import nats
import pyarrow as pa
import pytest
from lakegate.common.broker import ensure_streams
from lakegate.common.contracts.runs import StagedParts, TableRef
from lakegate.common.errors import TerminalError
from lakegate.common.settings import NatsSettings
from lakegate.common.staging import (
    STALE_AFTER,
    SWEEP_EVERY,
    DataFileStaging,
    JetStreamStaging,
    MemoryStaging,
    StagingStore,
    StaleSweep,
    encode_bounded,
)


def _batch(start: int, rows: int) -> pa.RecordBatch:
    return pa.record_batch(
        {
            "id": pa.array(range(start, start + rows), pa.int64()),
            "payload": pa.array([f"row {i} " + "x" * (i % 200) for i in range(start, start + rows)]),
        }
    )


async def _round_trip(store: StagingStore, run_id: str) -> list[pa.RecordBatch]:
    writer = await store.writer(run_id, "a1")
    for start in range(0, 30_000, 10_000):
        await writer.write(_batch(start, 10_000))
    staged = await writer.close()
    assert staged.parts >= 3
    return [batch async for batch in store.read(staged)]


async def test_memory_staging_returns_every_batch_in_order() -> None:
    batches = await _round_trip(MemoryStaging(max_part_bytes=64 * 1024), "run1")
    ids = pa.Table.from_batches(batches).column("id").to_pylist()
    assert ids == list(range(30_000))


async def test_jetstream_staging_returns_every_batch_in_order_and_deletes_the_run(
    nats_settings: NatsSettings,
) -> None:
    nc = await nats.connect(nats_settings.url)
    try:
        js = nc.jetstream()
        topology = nats_settings.topology
        await ensure_streams(js, topology)
        store = JetStreamStaging(js, topology, max_part_bytes=64 * 1024)
        batches = await _round_trip(store, "run1")
        assert pa.Table.from_batches(batches).column("id").to_pylist() == list(range(30_000))

        await store.delete("run1")
        info = await js.stream_info(topology.stage_stream.name, subjects_filter=topology.stage_all("run1"))
        assert not info.state.subjects
    finally:
        await nc.close()


def test_a_batch_too_large_for_one_part_is_split_in_halves() -> None:
    parts = encode_bounded(_batch(0, 4_000), max_bytes=16 * 1024)
    assert len(parts) > 1
    assert all(len(p) <= 16 * 1024 for p in parts)


def test_a_single_row_larger_than_a_part_is_a_terminal_error() -> None:
    row = pa.record_batch({"blob": pa.array([os.urandom(64 * 1024)], pa.binary())})
    with pytest.raises(TerminalError, match="staging limit"):
        encode_bounded(row, max_bytes=1024)


async def test_data_file_staging_writes_parquet_files_that_read_back_in_order_and_deletes_the_run(
    tmp_path: Path,
) -> None:
    store = DataFileStaging(MemoryStaging(), tmp_path)
    target = TableRef(catalog="tenant_t", schema_name="bronze", name="orders")
    writer = await store.file_writer("run1", "a1", _batch(0, 1).schema, target)
    for start in range(0, 30_000, 10_000):
        await writer.write(_batch(start, 10_000))
    staged = await writer.close()

    assert (staged.store, staged.location, staged.parts) == ("datafiles", "run1/a1", len(staged.files))
    paths = store.data_files([staged])
    assert paths is not None
    assert all(path.is_file() for path in paths)
    batches = [batch async for batch in store.read(staged)]
    assert pa.Table.from_batches(batches).column("id").to_pylist() == list(range(30_000))
    assert store.data_files([staged, StagedParts(store="memory", location="run1/a2", parts=0, bytes=0)]) is None

    await store.delete("run1")
    assert not (tmp_path / "run1").exists()


@pytest.mark.parametrize(
    ("location", "files"),
    [("../elsewhere/a1", []), ("run1/..", []), ("run1/a1", ["../../etc/passwd"]), ("run1/a1", ["x.parquet"])],
)
def test_data_file_staging_refuses_a_location_or_file_name_outside_its_directory(
    tmp_path: Path, location: str, files: list[str]
) -> None:
    store = DataFileStaging(MemoryStaging(), tmp_path)
    staged = StagedParts(store="datafiles", location=location, parts=len(files), bytes=0, files=files)

    with pytest.raises(TerminalError):
        store.data_files([staged])


def _abandoned(root: Path, run_id: str) -> Path:
    """A run's staged directory nobody has touched for longer than STALE_AFTER."""
    directory = root / run_id / "a1"
    directory.mkdir(parents=True)
    long_ago = time.time() - STALE_AFTER - 60
    os.utime(directory.parent, (long_ago, long_ago))
    return directory.parent


def _names(root: Path) -> list[str]:
    return sorted(entry.name for entry in root.iterdir())


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


async def test_runs_abandoned_for_a_day_are_swept_at_a_processs_first_attempt_and_fresh_ones_kept(
    tmp_path: Path,
) -> None:
    abandoned, fresh = _abandoned(tmp_path, "old"), tmp_path / "fresh"
    fresh.mkdir()
    store = DataFileStaging(MemoryStaging(), tmp_path)
    target = TableRef(catalog="tenant_t", schema_name="bronze", name="orders")

    await store.file_writer("run1", "a1", _batch(0, 1).schema, target)

    assert not abandoned.exists()
    assert fresh.is_dir()
    assert (tmp_path / "run1" / "a1").is_dir()


async def test_the_stores_of_one_process_sweep_the_staging_root_once_an_hour_not_at_every_attempt(
    tmp_path: Path,
) -> None:
    clock = FakeClock()
    sweep = StaleSweep(clock=clock)
    target = TableRef(catalog="tenant_t", schema_name="bronze", name="orders")
    schema = _batch(0, 1).schema
    # The extractor makes a store per run and shares one sweep between them.
    await DataFileStaging(MemoryStaging(), tmp_path, sweep).file_writer("run1", "a1", schema, target)
    left = _abandoned(tmp_path, "old")

    clock.now += SWEEP_EVERY - 1
    await DataFileStaging(MemoryStaging(), tmp_path, sweep).file_writer("run2", "a1", schema, target)
    kept_within_the_hour = left.exists()
    clock.now += 1
    await DataFileStaging(MemoryStaging(), tmp_path, sweep).file_writer("run3", "a1", schema, target)

    assert kept_within_the_hour
    assert not left.exists()
    assert _names(tmp_path) == ["run1", "run2", "run3"]
