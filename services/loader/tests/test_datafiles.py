"""Data files written by pyarrow and committed to Delta: what readers see, the statistics, and failures."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from deltalake import DeltaTable
from lakegate.common import datafiles
from lakegate.loader.warehouses import datafiles as loaderfiles
from lakegate.loader.warehouses import deltalog

SCHEMA = pa.schema(
    [
        pa.field("id", pa.int64(), nullable=False),
        pa.field("note", pa.string()),
        pa.field("tags", pa.list_(pa.int32())),
        pa.field("at", pa.timestamp("us")),
    ]
)


def batch(start: int, rows: int) -> pa.RecordBatch:
    ids = range(start, start + rows)
    return pa.record_batch(
        {
            "id": pa.array(ids, pa.int64()),
            "note": pa.array([None if i % 4 == 0 else f"note {i}" for i in ids]),
            "tags": pa.array([[i % 7] if i % 2 else None for i in ids], pa.list_(pa.int32())),
            "at": pa.array([i * 1_000_000 for i in ids], pa.int64()).view(pa.timestamp("us")),
        },
        SCHEMA,
    )


def reader(*batches: pa.RecordBatch) -> pa.RecordBatchReader:
    return pa.RecordBatchReader.from_batches(SCHEMA, iter(batches))


def parquet_files(path: Path) -> list[Path]:
    return sorted(path.glob("*.parquet"))


def test_rows_land_in_bounded_row_groups_and_files_with_their_counts(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(datafiles, "ROW_GROUP_ROWS", 1000)
    monkeypatch.setattr(datafiles, "FILE_BYTES", 20_000)
    batches = [batch(start, 700) for start in range(0, 7000, 700)]

    deltalog.write(tmp_path, reader(*batches), mode="overwrite", metadata={"lakegate.run_id": "r1"})

    table = DeltaTable(str(tmp_path))
    assert table.to_pyarrow_table().sort_by("id").equals(pa.Table.from_batches(batches, SCHEMA))
    files = parquet_files(tmp_path)
    assert len(files) > 1
    groups = [
        pq.read_metadata(f).row_group(g).num_rows for f in files for g in range(pq.read_metadata(f).num_row_groups)
    ]
    assert max(groups) == 1000
    assert sum(groups) == 7000
    added = deltalog.files(table)
    assert sum(added.column("num_records").to_pylist()) == 7000
    assert sum(added.column("null_count.note").to_pylist()) == 7000 // 4
    assert table.history()[0][deltalog.ROWS_KEY] == "7000"


def test_the_statistics_count_nulls_of_flat_columns_only(tmp_path: Path) -> None:
    with loaderfiles.written(tmp_path, reader(batch(0, 100))) as (actions, rows):
        (action,) = actions

    assert rows == 100
    assert json.loads(action.stats) == {"numRecords": 100, "nullCount": {"id": 0, "note": 25, "at": 0}}
    assert action.size == (tmp_path / action.path).stat().st_size


def test_a_failing_read_leaves_no_file_and_no_commit(tmp_path: Path) -> None:
    deltalog.write(tmp_path, reader(batch(0, 10)), mode="overwrite", metadata={"lakegate.run_id": "r1"})
    before = parquet_files(tmp_path)

    def broken() -> Iterator[pa.RecordBatch]:
        yield batch(100, 200_000)  # a whole row group and more: files are open when the read fails
        raise OSError("staging went away")

    with pytest.raises(OSError, match="staging went away"):
        deltalog.write(tmp_path, pa.RecordBatchReader.from_batches(SCHEMA, broken()), mode="overwrite", metadata={})

    assert parquet_files(tmp_path) == before
    assert DeltaTable(str(tmp_path)).version() == 0
    assert DeltaTable(str(tmp_path)).to_pyarrow_table().num_rows == 10


def test_a_failing_commit_removes_the_files_it_would_have_added(tmp_path: Path) -> None:
    seen: list[int] = []

    def commit_refused() -> None:
        with loaderfiles.written(tmp_path, reader(batch(0, 10))):
            seen.append(len(parquet_files(tmp_path)))
            raise RuntimeError("commit refused")

    with pytest.raises(RuntimeError, match="commit refused"):
        commit_refused()

    assert seen == [1]

    assert parquet_files(tmp_path) == []


def test_an_append_keeps_the_rows_there_and_an_overwrite_replaces_schema_and_rows(tmp_path: Path) -> None:
    deltalog.write(tmp_path, reader(batch(0, 10)), mode="overwrite", metadata={"lakegate.run_id": "r1"})
    deltalog.write(tmp_path, reader(batch(10, 5)), mode="append", metadata={"lakegate.run_id": "r2"})
    assert DeltaTable(str(tmp_path)).to_pyarrow_table().num_rows == 15
    assert deltalog.loads(tmp_path, "r2").commit == deltalog.Commit(1, 5, deltalog.committed_bytes(tmp_path, 1), {
        "lakegate.run_id": "r2", deltalog.ROWS_KEY: "5"})  # fmt: skip

    narrower = pa.table({"id": pa.array([1], pa.int64())})
    deltalog.write(tmp_path, narrower, mode="overwrite", metadata={"lakegate.run_id": "r3"})

    table = DeltaTable(str(tmp_path))
    assert table.to_pyarrow_table().to_pylist() == [{"id": 1}]
    assert pa.schema(table.schema().to_arrow()).names == ["id"]


def test_an_empty_overwrite_empties_the_table(tmp_path: Path) -> None:
    deltalog.write(tmp_path, reader(batch(0, 10)), mode="overwrite", metadata={"lakegate.run_id": "r1"})

    deltalog.write(tmp_path, reader(), mode="overwrite", metadata={"lakegate.run_id": "r2"})

    table = DeltaTable(str(tmp_path))
    assert (table.version(), table.to_pyarrow_table().num_rows) == (1, 0)
    assert table.history()[0][deltalog.ROWS_KEY] == "0"
