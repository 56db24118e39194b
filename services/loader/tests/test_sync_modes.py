"""Incremental and merge loads, schema drift, ranges and cancellation, through the real loader over NATS."""

from __future__ import annotations

import asyncio
import datetime as dt
import functools
from collections.abc import Callable, Coroutine, Sequence
from decimal import Decimal
from typing import TYPE_CHECKING, Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from deltalake import DeltaTable
from lakegate.common.contracts.runs import Failed, Loaded, Progress, SchemaChange, SyncMode, TableRef
from lakegate.common.contracts.warehouse import QueryResult
from lakegate.loader.app import LoaderState
from nats.aio.msg import Msg

if TYPE_CHECKING:
    from conftest import Extractor

Query = Callable[..., Coroutine[Any, Any, QueryResult]]

ORDERS = pa.schema(
    [
        pa.field("id", pa.int64(), nullable=False),
        pa.field("name", pa.string()),
        pa.field("version", pa.int64()),
    ]
)


def orders(*rows: tuple[int, str | None, int | None], schema: pa.Schema = ORDERS) -> pa.RecordBatch:
    return pa.RecordBatch.from_pylist([dict(zip(schema.names, row, strict=True)) for row in rows], schema=schema)


def history(loader: LoaderState, target: TableRef) -> list[dict[str, Any]]:
    return DeltaTable(str(loader.warehouse.table_path(target))).history()


def commits_of(loader: LoaderState, target: TableRef, run_id: str) -> int:
    return sum(1 for entry in history(loader, target) if entry.get("lakegate.run_id") == run_id)


async def table_rows(query: Query, name: str) -> list[list[Any]]:
    return (await query(f"SELECT * FROM {name} ORDER BY id")).rows


async def test_an_incremental_sync_appends_its_rows_in_one_new_version(
    loader: LoaderState, extractor: Extractor, query: Query
) -> None:
    target = extractor.target("orders")
    await extractor.sync(target, [orders((1, "a", 1), (2, "b", 1))])

    extracted, loaded = await extractor.sync(
        target, [orders((3, "c", 2)), orders((4, "d", 3))], "incremental", cursor="version"
    )

    assert (loaded.row_count, loaded.table_version, loaded.schema_changes) == (2, 1, [])
    assert loaded.bytes > 0
    assert await table_rows(query, "orders") == [[1, "a", 1], [2, "b", 1], [3, "c", 2], [4, "d", 3]]
    newest = history(loader, target)[0]
    assert (newest["operation"], newest["lakegate.run_id"], newest["lakegate.mode"]) == (
        "WRITE",
        extracted.run_id,
        "incremental",
    )


@pytest.mark.parametrize("mode", ["incremental", "merge"])
async def test_the_first_incremental_or_merge_run_creates_the_table(
    mode: SyncMode, loader: LoaderState, extractor: Extractor, query: Query
) -> None:
    target = extractor.target(f"fresh_{mode}")

    _, loaded = await extractor.sync(target, [orders((1, "a", 1), (2, "b", 1))], mode, primary_key=["id"])

    assert (loaded.row_count, loaded.table_version) == (2, 0)
    assert await table_rows(query, f"fresh_{mode}") == [[1, "a", 1], [2, "b", 1]]


async def test_a_merge_updates_matched_keys_and_inserts_new_ones_in_one_commit(
    loader: LoaderState, extractor: Extractor, query: Query
) -> None:
    target = extractor.target("customers")
    await extractor.sync(target, [orders((1, "ada", 1), (2, "grace", 1), (3, "alan", 1))])

    extracted, loaded = await extractor.sync(
        target, [orders((2, "grace hopper", 2), (4, "edsger", 2))], "merge", primary_key=["id"], cursor="version"
    )

    assert (loaded.row_count, loaded.table_version) == (2, 1)
    assert await table_rows(query, "customers") == [
        [1, "ada", 1],
        [2, "grace hopper", 2],
        [3, "alan", 1],
        [4, "edsger", 2],
    ]
    newest = history(loader, target)[0]
    assert (newest["lakegate.mode"], newest["lakegate.run_id"]) == ("merge", extracted.run_id)


EDGES = pa.schema(
    [
        pa.field("id", pa.int64(), nullable=False),
        pa.field("changed_at", pa.timestamp("us", tz="UTC")),
        pa.field("amount", pa.decimal128(38, 10)),
        pa.field("seen_at", pa.timestamp("us")),
        pa.field("payload", pa.binary()),
        pa.field("tags", pa.list_(pa.string())),
        pa.field("score", pa.float64()),
    ]
)


async def test_values_keep_every_digit_and_instant_through_a_merges_spool(extractor: Extractor, query: Query) -> None:
    target = extractor.target("edges")
    early = dt.datetime(1, 1, 1, tzinfo=dt.UTC)
    late = dt.datetime(9999, 12, 31, 23, 59, 59, 999999, tzinfo=dt.UTC)
    first = {"id": 1, "changed_at": early, "amount": Decimal("1.0000000001"), "seen_at": dt.datetime(1, 1, 1),
             "payload": b"\x00", "tags": ["a"], "score": 1.0}  # fmt: skip
    second = {"id": 1, "changed_at": late, "amount": Decimal("1234567890123456789012345678.0123456789"),
              "seen_at": dt.datetime(9999, 12, 31, 23, 59, 59, 999999), "payload": b"\xff\x10",
              "tags": [None, "x"], "score": float("nan")}  # fmt: skip
    other = {"id": 2, "changed_at": None, "amount": None, "seen_at": None, "payload": None, "tags": None, "score": None}
    await extractor.sync(
        target, [pa.RecordBatch.from_pylist([first, other], EDGES)], "merge", primary_key=["id"], cursor="changed_at"
    )

    await extractor.sync(
        target, [pa.RecordBatch.from_pylist([second], EDGES)], "merge", primary_key=["id"], cursor="changed_at"
    )

    assert (await query("SELECT * FROM edges ORDER BY id")).rows == [
        [
            1,
            "9999-12-31T23:59:59.999999+00:00",
            "1234567890123456789012345678.0123456789",
            "9999-12-31T23:59:59.999999",
            "/xA=",
            [None, "x"],
            "NaN",
        ],
        [2, None, None, None, None, None, None],
    ]


async def test_duplicates_of_a_key_in_one_run_keep_the_greatest_cursor_and_then_the_last_staged(
    extractor: Extractor, query: Query
) -> None:
    target = extractor.target("dupes")
    parts = [
        orders((1, "one at 5", 5), (2, "two first", 3), (3, "three null", None)),
        orders((1, "one at 9", 9), (2, "two second", 3), (3, "three at 1", 1)),
        orders((1, "one at 7", 7), (2, "two older", 2), (3, "three null again", None)),
    ]

    _, loaded = await extractor.sync(target, parts, "merge", primary_key=["id"], cursor="version")

    assert loaded.row_count == 3
    assert await table_rows(query, "dupes") == [[1, "one at 9", 9], [2, "two second", 3], [3, "three at 1", 1]]


async def test_without_a_cursor_the_last_staged_row_of_a_key_wins(extractor: Extractor, query: Query) -> None:
    target = extractor.target("no_cursor")

    await extractor.sync(target, [orders((1, "first", 9)), orders((1, "last", 1))], "merge", primary_key=["id"])

    assert await table_rows(query, "no_cursor") == [[1, "last", 1]]


async def test_a_stored_row_with_a_newer_cursor_is_not_replaced_by_an_older_one(
    extractor: Extractor, query: Query
) -> None:
    target = extractor.target("stale")
    await extractor.sync(target, [orders((1, "new", 10), (2, "unknown", None))], "merge", primary_key=["id"])

    await extractor.sync(
        target, [orders((1, "old", 4), (2, "known", 1), (3, "added", 4))], "merge", primary_key=["id"], cursor="version"
    )

    assert await table_rows(query, "stale") == [[1, "new", 10], [2, "known", 1], [3, "added", 4]]


async def test_columns_spelled_in_another_case_at_the_source_match_the_tables_columns(
    extractor: Extractor, query: Query
) -> None:
    target = extractor.target("cased")
    await extractor.sync(target, [orders((1, "a", 1))])
    upper = pa.schema([pa.field(f.name.upper(), f.type, nullable=f.nullable) for f in ORDERS])

    _, loaded = await extractor.sync(
        target, [orders((1, "b", 2), schema=upper)], "merge", primary_key=["ID"], cursor="VERSION"
    )

    assert loaded.schema_changes == []
    assert await table_rows(query, "cased") == [[1, "b", 2]]


async def test_a_merge_without_a_primary_key_fails_naming_the_table_and_the_choices(
    loader: LoaderState, extractor: Extractor, query: Query
) -> None:
    target = extractor.target("keyless")
    await extractor.sync(target, [orders((1, "a", 1))])

    extracted, steps = await extractor.start(target, [orders((1, "b", 2))], "merge")
    failed = await steps.next(Failed)

    assert failed.error.code == "invalid_input"
    assert str(target) in failed.error.message
    assert "primary key" in failed.error.message
    assert "full or incremental" in failed.error.message
    assert commits_of(loader, target, extracted.run_id) == 0
    assert await table_rows(query, "keyless") == [[1, "a", 1]]


async def test_a_merge_over_a_data_file_it_cannot_read_fails_on_the_first_delivery_saying_to_sync_in_full(
    loader: LoaderState, extractor: Extractor, query: Query
) -> None:
    target = extractor.target("unreadable")
    await extractor.sync(target, [orders((1, "a", 1), (2, "b", 1))])
    (stored,) = DeltaTable(str(loader.warehouse.table_path(target))).file_uris()
    # A file whose key column holds text no integer cast accepts: the same on every delivery.
    pq.write_table(pa.table({"id": ["x", "y"], "name": ["a", "b"], "version": [1, 1]}), stored)

    extracted, steps = await extractor.start(
        target, [orders((2, "b2", 2))], "merge", primary_key=["id"], cursor="version"
    )
    failed = await steps.next(Failed)

    assert failed.error.code == "warehouse_error"
    assert not failed.error.transient
    assert "gave up" not in failed.error.message, "ended on its first delivery, not after the retries"
    assert str(target) in failed.error.message
    assert "full sync" in failed.error.message
    assert commits_of(loader, target, extracted.run_id) == 0


@pytest.mark.parametrize("mode", ["incremental", "merge"])
async def test_a_redelivered_incremental_or_merge_load_commits_nothing_twice(
    mode: SyncMode, loader: LoaderState, extractor: Extractor, query: Query
) -> None:
    target = extractor.target(f"again_{mode}")
    await extractor.sync(target, [orders((1, "a", 1))])
    run_id = extractor.new_run_id()
    steps = await extractor.watch(run_id)
    batches = [orders((1, "a2", 2), (2, "b", 2))]
    staged = await extractor.stage(run_id, batches)
    extracted = extractor.extracted(run_id, target, ORDERS, staged, 2, mode, primary_key=["id"], cursor="version")

    await extractor.announce(extracted, delivery="1")
    first = await steps.next(Loaded)
    await extractor.announce(extracted, delivery="2")
    second = await steps.next(Loaded)

    assert first == second
    assert first.table_version == 1
    assert commits_of(loader, target, run_id) == 1
    assert DeltaTable(str(loader.warehouse.table_path(target))).version() == 1
    expected = [[1, "a", 1], [1, "a2", 2], [2, "b", 2]] if mode == "incremental" else [[1, "a2", 2], [2, "b", 2]]
    assert sorted(await table_rows(query, f"again_{mode}")) == expected


@pytest.mark.parametrize("mode", ["incremental", "merge"])
async def test_a_run_with_no_new_rows_commits_nothing(
    mode: SyncMode, loader: LoaderState, extractor: Extractor
) -> None:
    target = extractor.target(f"quiet_{mode}")
    await extractor.sync(target, [orders((1, "a", 1))])

    _, loaded = await extractor.sync(target, [orders()], mode, primary_key=["id"], cursor="version")

    assert (loaded.row_count, loaded.bytes, loaded.table_version) == (0, 0, 0)
    assert len(history(loader, target)) == 1


@pytest.mark.parametrize("mode", ["incremental", "merge"])
async def test_a_column_added_at_the_source_joins_the_table_null_in_older_rows(
    mode: SyncMode, extractor: Extractor, query: Query
) -> None:
    target = extractor.target(f"grown_{mode}")
    await extractor.sync(target, [orders((1, "a", 1))])
    wider = ORDERS.append(pa.field("email", pa.string()))

    _, loaded = await extractor.sync(
        target, [orders((2, "b", 2, "b@example.com"), schema=wider)], mode, primary_key=["id"], cursor="version"
    )

    assert loaded.schema_changes == [SchemaChange(column="email", change="added", after="string")]
    assert await table_rows(query, f"grown_{mode}") == [[1, "a", 1, None], [2, "b", 2, "b@example.com"]]


async def test_full_then_a_merge_adding_a_column_then_merge_incremental_and_merge_again_keep_every_row(
    extractor: Extractor, query: Query
) -> None:
    target = extractor.target("chained")
    wider = ORDERS.append(pa.field("email", pa.string()))
    await extractor.sync(target, [orders((1, "a", 1), (2, "b", 1), (3, "c", 1))])
    sync = functools.partial(extractor.sync, target, primary_key=["id"], cursor="version")

    await sync([orders((2, "b2", 2, "b@x"), (4, "d", 2, None), schema=wider)], "merge")  # delta-rs writes string_view
    await sync([orders((2, "b3", 3, "b3@x"), (1, "a2", 3, "a@x"), schema=wider)], "merge")
    await sync([orders((5, "e", 4, "e@x"), schema=wider)], "incremental")
    _, loaded = await sync([orders((4, "d2", 5, "d@x"), (5, "e2", 5, None), (6, "f", 5, "f@x"), schema=wider)], "merge")

    assert loaded.row_count == 3
    assert await table_rows(query, "chained") == [
        [1, "a2", 3, "a@x"],
        [2, "b3", 3, "b3@x"],
        [3, "c", 1, None],
        [4, "d2", 5, "d@x"],
        [5, "e2", 5, None],
        [6, "f", 5, "f@x"],
    ]


def keys_of(ids: Sequence[int], chunk: int = 40) -> list[pa.RecordBatch]:
    """The source's primary keys, staged in several parts as the extractor would."""
    column = pa.array(list(ids), pa.int64())
    schema = pa.schema([pa.field("id", pa.int64(), nullable=False)])
    return [pa.RecordBatch.from_arrays([column[i : i + chunk]], schema=schema) for i in range(0, len(ids), chunk)]


@pytest.mark.parametrize("adds_column", [False, True])
async def test_a_merge_with_detect_deletes_removes_the_rows_deleted_at_the_source_in_its_one_commit(
    adds_column: bool, loader: LoaderState, extractor: Extractor, query: Query
) -> None:
    target = extractor.target(f"deletes_{int(adds_column)}")
    await extractor.sync(target, [orders(*((n, f"n{n}", 1) for n in range(1, 201)))])
    deleted = {7, 19, 33, 50, 64, 100, 128, 150, 177, 200}
    remaining = [n for n in range(1, 202) if n not in deleted]
    schema = ORDERS.append(pa.field("email", pa.string())) if adds_column else ORDERS
    changed = [(3, "n3b", 2, "x")[: len(schema)], (201, "new", 2, None)[: len(schema)]]

    extracted, loaded = await extractor.sync(
        target,
        [orders(*changed, schema=schema)],  # type: ignore[arg-type]
        "merge",
        primary_key=["id"],
        cursor="version",
        source_keys=keys_of(remaining),
    )

    rows = await table_rows(query, target.name)
    assert [row[0] for row in rows] == remaining
    assert rows[2][:3] == [3, "n3b", 2]
    assert rows[-1][:3] == [201, "new", 2]
    assert loaded.row_count == 2
    assert loaded.deleted_rows == 10
    assert commits_of(loader, target, extracted.run_id) == 1
    assert history(loader, target)[0]["lakegate.deleted"] == "10"


async def test_a_merge_without_detect_deletes_keeps_rows_deleted_at_the_source(
    extractor: Extractor, query: Query
) -> None:
    target = extractor.target("kept")
    await extractor.sync(target, [orders(*((n, f"n{n}", 1) for n in range(1, 21)))])

    _, loaded = await extractor.sync(target, [orders((3, "n3b", 2))], "merge", primary_key=["id"], cursor="version")

    assert [row[0] for row in await table_rows(query, "kept")] == list(range(1, 21))
    assert loaded.deleted_rows is None


async def test_a_merge_with_detect_deletes_and_no_changed_rows_still_removes_the_deleted_ones(
    extractor: Extractor, query: Query
) -> None:
    target = extractor.target("only_deletes")
    await extractor.sync(target, [orders(*((n, f"n{n}", 1) for n in range(1, 21)))])

    _, loaded = await extractor.sync(
        target, [orders()], "merge", primary_key=["id"], cursor="version", source_keys=keys_of(range(1, 11))
    )
    _, again = await extractor.sync(
        target, [orders()], "merge", primary_key=["id"], cursor="version", source_keys=keys_of(range(1, 11))
    )

    assert [row[0] for row in await table_rows(query, "only_deletes")] == list(range(1, 11))
    assert (loaded.row_count, loaded.deleted_rows) == (0, 10)
    assert (again.row_count, again.deleted_rows) == (0, 0), "nothing left to delete, and nothing committed"


async def test_a_merge_with_detect_deletes_that_creates_the_table_deleted_nothing(
    extractor: Extractor, query: Query
) -> None:
    target = extractor.target("new_with_deletes")

    _, loaded = await extractor.sync(
        target, [orders((1, "a", 1))], "merge", primary_key=["id"], cursor="version", source_keys=keys_of([1])
    )

    assert [row[0] for row in await table_rows(query, "new_with_deletes")] == [1]
    assert loaded.deleted_rows == 0


@pytest.mark.parametrize("mode", ["incremental", "merge"])
async def test_a_column_dropped_at_the_source_stays_null_in_new_rows_and_is_reported_once(
    mode: SyncMode, loader: LoaderState, extractor: Extractor, query: Query
) -> None:
    name = f"shrunk_{mode}"
    target = extractor.target(name)
    with_status = ORDERS.append(pa.field("status", pa.string(), nullable=False))
    await extractor.sync(target, [orders((1, "a", 1, "open"), schema=with_status)])

    _, first = await extractor.sync(target, [orders((2, "b", 2))], mode, primary_key=["id"], cursor="version")
    _, second = await extractor.sync(target, [orders((3, "c", 3))], mode, primary_key=["id"], cursor="version")

    assert first.schema_changes == [SchemaChange(column="status", change="dropped", before="string")]
    assert second.schema_changes == []
    assert await table_rows(query, name) == [[1, "a", 1, "open"], [2, "b", 2, None], [3, "c", 3, None]]
    status = DeltaTable(str(loader.warehouse.table_path(target))).schema().fields[-1]
    assert (status.name, status.nullable) == ("status", True)


@pytest.mark.parametrize("mode", ["incremental", "merge"])
async def test_a_widened_column_is_widened_in_the_table_within_the_runs_single_commit(
    mode: SyncMode, loader: LoaderState, extractor: Extractor, query: Query
) -> None:
    name = f"widened_{mode}"
    target = extractor.target(name)
    narrow = pa.schema([pa.field("id", pa.int64(), nullable=False), pa.field("qty", pa.int32())])
    wide = pa.schema([pa.field("id", pa.int64(), nullable=False), pa.field("qty", pa.int64())])
    await extractor.sync(target, [pa.RecordBatch.from_pylist([{"id": 1, "qty": 5}, {"id": 2, "qty": 6}], narrow)])

    extracted, loaded = await extractor.sync(
        target,
        [pa.RecordBatch.from_pylist([{"id": 2, "qty": 2**40}, {"id": 3, "qty": -(2**40)}], wide)],
        mode,
        primary_key=["id"],
    )

    assert loaded.schema_changes == [SchemaChange(column="qty", change="type_changed", before="int32", after="int64")]
    assert loaded.row_count == 2
    assert (await query(f"DESCRIBE {name}")).rows[1][:2] == ["qty", "bigint"]
    expected = (
        [[1, 5], [2, 6], [2, 2**40], [3, -(2**40)]] if mode == "incremental" else [[1, 5], [2, 2**40], [3, -(2**40)]]
    )
    assert (await query(f"SELECT id, qty FROM {name} ORDER BY id, qty")).rows == expected
    assert commits_of(loader, target, extracted.run_id) == 1
    assert DeltaTable(str(loader.warehouse.table_path(target))).version() == 1


@pytest.mark.parametrize("mode", ["incremental", "merge"])
async def test_an_incompatible_type_change_fails_the_run_naming_the_column_and_changes_nothing(
    mode: SyncMode, loader: LoaderState, extractor: Extractor, query: Query
) -> None:
    name = f"retyped_{mode}"
    target = extractor.target(name)
    await extractor.sync(target, [orders((1, "a", 1))])
    numeric_name = pa.schema([pa.field("id", pa.int64(), nullable=False), pa.field("name", pa.int64())])

    _, steps = await extractor.start(
        target, [pa.RecordBatch.from_pylist([{"id": 2, "name": 7}], numeric_name)], mode, primary_key=["id"]
    )
    failed = await steps.next(Failed)

    assert failed.error.code == "warehouse_error"
    assert "column 'name' was string and is now int64" in failed.error.message
    assert "full sync" in failed.error.message
    assert len(history(loader, target)) == 1
    assert await table_rows(query, name) == [[1, "a", 1]]


async def test_a_full_sync_replaces_the_tables_types_and_columns_and_reports_the_differences(
    extractor: Extractor, query: Query
) -> None:
    target = extractor.target("replaced")
    await extractor.sync(target, [orders((1, "a", 1))])
    other = pa.schema([pa.field("id", pa.int64(), nullable=False), pa.field("name", pa.int64())])

    _, loaded = await extractor.sync(target, [pa.RecordBatch.from_pylist([{"id": 2, "name": 7}], other)])

    assert set(loaded.schema_changes) == {
        SchemaChange(column="name", change="type_changed", before="string", after="int64"),
        SchemaChange(column="version", change="dropped", before="int64"),
    }
    assert await table_rows(query, "replaced") == [[2, 7]]


async def test_the_ranges_of_a_parallel_extraction_land_in_one_commit_in_order(
    loader: LoaderState, extractor: Extractor, query: Query
) -> None:
    target = extractor.target("ranged")
    run_id = extractor.new_run_id()
    steps = await extractor.watch(run_id)
    acks = await extractor.acks()
    staged = await extractor.stage(run_id, [orders((1, "a", 1))], attempt="a1")
    ranges = [
        await extractor.stage(run_id, [orders((2, "b", 1)), orders((3, "c", 1))], attempt="r0"),
        await extractor.stage(run_id, [orders((4, "d", 1))], attempt="r1"),
    ]

    await extractor.announce(extractor.extracted(run_id, target, ORDERS, staged, 4, ranges=ranges))
    loaded = await steps.next(Loaded)

    assert (loaded.row_count, loaded.table_version) == (4, 0)
    assert [row[0] for row in await table_rows(query, "ranged")] == [1, 2, 3, 4]
    assert commits_of(loader, target, run_id) == 1
    assert await asyncio.wait_for(acks.get(), 10) == b"+ACK"
    assert await extractor.staged_messages(run_id) == 0


async def test_a_range_with_missing_rows_fails_the_whole_run_and_commits_nothing(
    loader: LoaderState, extractor: Extractor
) -> None:
    target = extractor.target("ranged_short")
    run_id = extractor.new_run_id()
    steps = await extractor.watch(run_id)
    staged = await extractor.stage(run_id, [orders((1, "a", 1))], attempt="a1")
    short = await extractor.stage(run_id, [orders((2, "b", 1))], attempt="r0")

    await extractor.announce(extractor.extracted(run_id, target, ORDERS, staged, 3, ranges=[short]))
    failed = await steps.next(Failed)

    assert "2 rows" in failed.error.message
    assert not DeltaTable.is_deltatable(str(loader.warehouse.table_path(target)))


async def watch_progress(extractor: Extractor, run_id: str) -> asyncio.Queue[Progress]:
    found: asyncio.Queue[Progress] = asyncio.Queue()

    async def on_progress(msg: Msg) -> None:
        await found.put(Progress.model_validate_json(msg.data))

    await extractor.nc.subscribe(extractor.topology.progress(run_id), cb=on_progress)
    await extractor.nc.flush()
    return found


async def rows_reach(progress: asyncio.Queue[Progress], rows: int, timeout: float = 20.0) -> None:
    async with asyncio.timeout(timeout):
        while (await progress.get()).rows < rows:
            pass


async def test_loading_reports_progress_as_parts_are_read(extractor: Extractor) -> None:
    target = extractor.target("progressing")
    run_id = extractor.new_run_id()
    progress = await watch_progress(extractor, run_id)
    steps = await extractor.watch(run_id)
    staged = await extractor.stage(run_id, [orders((1, "a", 1)), orders((2, "b", 1), (3, "c", 1))])

    await extractor.announce(extractor.extracted(run_id, target, ORDERS, staged, 3))
    await steps.next(Loaded)

    seen = [progress.get_nowait() for _ in range(progress.qsize())]
    assert [(p.step, p.rows) for p in seen] == [("loading", 1), ("loading", 3)]


@pytest.mark.parametrize("mode", ["full", "merge"])
async def test_a_run_cancelled_while_loading_commits_nothing_reports_no_failure_and_drops_its_parts(
    mode: SyncMode, loader: LoaderState, extractor: Extractor, query: Query
) -> None:
    name = f"cancelled_{mode}"
    target = extractor.target(name)
    acks = await extractor.acks()
    await extractor.sync(target, [orders((1, "kept", 1))])
    assert await asyncio.wait_for(acks.get(), 10) == b"+ACK"
    run_id = extractor.new_run_id()
    steps = await extractor.watch(run_id)
    progress = await watch_progress(extractor, run_id)
    writer = await extractor.staging.writer(run_id, "a1")
    await writer.write(orders((2, "b", 1)))
    await writer.write(orders((3, "c", 1)))
    # Three parts are announced but two are staged: the load waits for the third when the cancel comes.
    staged = (await writer.close()).model_copy(update={"parts": 3})

    await extractor.announce(extractor.extracted(run_id, target, ORDERS, staged, 3, mode, primary_key=["id"]))
    await rows_reach(progress, 2)
    await extractor.nc.publish(extractor.topology.cancel(run_id), b"")

    assert await asyncio.wait_for(acks.get(), 10) == b"+TERM"
    await extractor.nc.flush()
    assert not any(isinstance(step, Failed) for step in steps.drain())
    assert await extractor.staged_messages(run_id) == 0
    assert commits_of(loader, target, run_id) == 0
    assert len(history(loader, target)) == 1
    assert await table_rows(query, name) == [[1, "kept", 1]]
    assert not (loader.settings.lakehouse / "_scratch" / run_id).exists()
