"""Loads of runs the extractor staged as the lakehouse's own data files: moved into the table, one commit."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Coroutine, Sequence
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pyarrow as pa
import pytest
from deltalake import DeltaTable
from lakegate.common.contracts.runs import Failed, Loaded, StagedParts, SyncMode, TableRef
from lakegate.common.contracts.warehouse import QueryResult
from lakegate.common.staging import DATA_FILES_DIR, DataFileStaging
from lakegate.loader.app import LoaderState

if TYPE_CHECKING:
    from conftest import Extractor

Query = Callable[..., Coroutine[Any, Any, QueryResult]]
MIXED = pa.schema(
    [
        pa.field("id", pa.int64(), nullable=False),
        pa.field("amount", pa.decimal128(12, 2)),
        pa.field("paid_at", pa.timestamp("us", tz="UTC")),
        pa.field("label", pa.string()),
        pa.field("tags", pa.list_(pa.string())),
    ]
)
#: Rows as (Arrow value, JSON value a query returns), column by column.
MIXED_ROWS: list[dict[str, tuple[Any, Any]]] = [
    {
        "id": (1, 1),
        "amount": (Decimal("1234567890.12"), "1234567890.12"),
        "paid_at": (dt.datetime(1, 1, 1, tzinfo=dt.UTC), "0001-01-01T00:00:00+00:00"),
        "label": ("Zürich — 東京 🚀", "Zürich — 東京 🚀"),
        "tags": (["a", "b"], ["a", "b"]),
    },
    {
        "id": (2, 2),
        "amount": (Decimal("-0.01"), "-0.01"),
        "paid_at": (dt.datetime(9999, 12, 31, 23, 59, 59, 999999, tzinfo=dt.UTC), "9999-12-31T23:59:59.999999+00:00"),
        "label": ("", ""),
        "tags": ([], []),
    },
    {"id": (3, 3), "amount": (None, None), "paid_at": (None, None), "label": (None, None), "tags": (None, None)},
    {
        "id": (4, 4),
        "amount": (Decimal("0.00"), "0.00"),
        "paid_at": (dt.datetime(2024, 2, 29, 23, 30, tzinfo=dt.UTC), "2024-02-29T23:30:00+00:00"),
        "label": ("line\nbreak 'quoted'", "line\nbreak 'quoted'"),
        "tags": ([None, "x"], [None, "x"]),
    },
]


def mixed_batch(rows: list[dict[str, tuple[Any, Any]]]) -> pa.RecordBatch:
    return pa.RecordBatch.from_pylist([{k: v[0] for k, v in row.items()} for row in rows], schema=MIXED)


def ints(name: str, values: list[int]) -> pa.RecordBatch:
    return pa.record_batch({name: pa.array(values, pa.int64())})


def file_staging(loader: LoaderState, extractor: Extractor) -> DataFileStaging:
    """The staging an extractor that shares the loader's lakehouse uses."""
    return DataFileStaging(extractor.staging, loader.settings.lakehouse / DATA_FILES_DIR)


async def stage_files(
    staging: DataFileStaging, run_id: str, attempt: str, target: TableRef, batches: Sequence[pa.RecordBatch]
) -> StagedParts:
    writer = await staging.file_writer(run_id, attempt, batches[0].schema, target)
    for batch in batches:
        await writer.write(batch)
    return await writer.close()


def parquet_names(path: Path) -> set[str]:
    return {file.name for file in path.glob("*.parquet")}


async def test_staged_data_files_become_the_table_in_one_commit_without_being_rewritten(
    loader: LoaderState, extractor: Extractor, query: Query
) -> None:
    target = extractor.target("filed_orders")
    staging = file_staging(loader, extractor)
    run_id = extractor.new_run_id()
    steps = await extractor.watch(run_id)
    # Two part sets, as a parallel extraction stages them: the run's own and one range's.
    first = await stage_files(
        staging, run_id, "a1", target, [mixed_batch(MIXED_ROWS[:1]), mixed_batch(MIXED_ROWS[1:2])]
    )
    second = await stage_files(staging, run_id, "a1r0a1", target, [mixed_batch(MIXED_ROWS[2:])])
    assert first.store == second.store == "datafiles"

    extracted = extractor.extracted(run_id, target, MIXED, first, row_count=4, ranges=[second])
    await extractor.announce(extracted)
    loaded = await steps.next(Loaded)

    assert (loaded.row_count, loaded.table_version) == (4, 0)
    path = loader.warehouse.table_path(target)
    table = DeltaTable(str(path))
    assert [entry["lakegate.run_id"] for entry in table.history()] == [run_id]
    # The very files the extractor wrote are the table's: nothing was decoded and written again.
    assert parquet_names(path) == set(first.files) | set(second.files)
    assert {Path(uri).name for uri in table.file_uris()} == set(first.files) | set(second.files)
    assert loaded.bytes == first.bytes + second.bytes
    result = await query("SELECT * FROM filed_orders ORDER BY id")
    assert result.rows == [[json_value for _, json_value in row.values()] for row in MIXED_ROWS]
    assert not (staging.root / run_id).exists()


async def test_a_redelivered_run_of_data_files_commits_nothing_twice(loader: LoaderState, extractor: Extractor) -> None:
    target = extractor.target("filed_events")
    staging = file_staging(loader, extractor)
    run_id = extractor.new_run_id()
    steps = await extractor.watch(run_id)
    staged = await stage_files(staging, run_id, "a1", target, [ints("n", [1, 2, 3])])
    extracted = extractor.extracted(run_id, target, ints("n", []).schema, staged, row_count=3)

    await extractor.announce(extracted, delivery="1")
    first = await steps.next(Loaded)
    await extractor.announce(extracted, delivery="2")
    second = await steps.next(Loaded)

    assert first.table_version == second.table_version == 0
    assert (first.row_count, first.bytes) == (second.row_count, second.bytes) == (3, staged.bytes)
    table = DeltaTable(str(loader.warehouse.table_path(target)))
    assert table.version() == 0
    assert table.to_pyarrow_table().column("n").to_pylist() == [1, 2, 3]


@pytest.mark.parametrize("damage", ["a staged file is gone", "the files hold fewer rows than were extracted"])
async def test_a_run_of_data_files_that_cannot_commit_leaves_the_table_as_it_was(
    damage: str, loader: LoaderState, extractor: Extractor, query: Query
) -> None:
    target = extractor.target("filed_ledger")
    await extractor.sync(target, [ints("n", [1, 2])])
    path = loader.warehouse.table_path(target)
    before = parquet_names(path)
    staging = file_staging(loader, extractor)
    run_id = extractor.new_run_id()
    steps = await extractor.watch(run_id)
    staged = await stage_files(staging, run_id, "a1", target, [ints("n", [7, 8])])
    rows = 2
    if damage == "a staged file is gone":
        later = await stage_files(staging, run_id, "a1r0a1", target, [ints("n", [9])])
        (staging.root / later.location / later.files[0]).unlink()
        ranges, rows = [later], 3
    else:
        ranges, rows = [], 5

    await extractor.announce(extractor.extracted(run_id, target, ints("n", []).schema, staged, rows, ranges=ranges))
    failed = await steps.next(Failed)

    assert failed.step == "load"
    assert "start the sync again" in failed.error.message
    assert DeltaTable(str(path)).version() == 0
    assert (await query("SELECT n FROM filed_ledger ORDER BY n")).rows == [[1], [2]]
    assert parquet_names(path) == before  # no file of the failed run is left in the table's directory
    assert not (staging.root / run_id).exists()


@pytest.mark.parametrize("mode", ["incremental", "merge"])
async def test_data_files_of_a_run_that_must_align_with_the_table_are_loaded_as_rows(
    mode: SyncMode, loader: LoaderState, extractor: Extractor, query: Query
) -> None:
    target = extractor.target(f"filed_{mode}")
    await extractor.sync(target, [ints("n", [1, 2])], mode, primary_key=("n",))
    staging = file_staging(loader, extractor)
    run_id = extractor.new_run_id()
    steps = await extractor.watch(run_id)
    batch = pa.record_batch({"n": pa.array([2, 3], pa.int64()), "label": pa.array(["b", "c"])})
    staged = await stage_files(staging, run_id, "a1", target, [batch])

    extracted = extractor.extracted(run_id, target, batch.schema, staged, 2, mode, primary_key=("n",))
    await extractor.announce(extracted)
    loaded = await steps.next(Loaded)

    assert loaded.table_version == 1
    result = await query(f"SELECT n, label FROM filed_{mode} ORDER BY n, label")
    expected = [[1, None], [2, None], [2, "b"], [3, "c"]] if mode == "incremental" else [[1, None], [2, "b"], [3, "c"]]
    assert result.rows == expected


async def test_staged_data_files_hold_the_types_the_lakehouse_takes(loader: LoaderState, extractor: Extractor) -> None:
    target = extractor.target("filed_types")
    staging = file_staging(loader, extractor)
    run_id = extractor.new_run_id()
    steps = await extractor.watch(run_id)
    batch = pa.record_batch(
        {
            "small": pa.array([1], pa.uint32()),
            "at": pa.array([1_000_000], pa.timestamp("us", tz="+00:00")),
            "day": pa.array([86_400_000], pa.date64()),
        }
    )
    staged = await stage_files(staging, run_id, "a1", target, [batch])

    await extractor.announce(extractor.extracted(run_id, target, batch.schema, staged, 1))
    await steps.next(Loaded)

    schema = pa.schema(DeltaTable(str(loader.warehouse.table_path(target))).schema().to_arrow())
    assert [str(f.type) for f in schema] == ["int64", "timestamp[us, tz=UTC]", "date32[day]"]
