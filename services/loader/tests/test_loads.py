"""Loads: staged parts in, one atomic Delta commit out, and the run's steps reported on the way."""

from __future__ import annotations

import asyncio
import base64
import datetime as dt
from collections.abc import Callable, Coroutine
from decimal import Decimal
from typing import TYPE_CHECKING, Any

import pyarrow as pa
import pytest
from deltalake import DeltaTable
from lakegate.common.contracts.runs import Failed, Loaded, Loading
from lakegate.common.contracts.warehouse import QueryResult
from lakegate.loader.app import LoaderState

if TYPE_CHECKING:
    from conftest import Extractor

Query = Callable[..., Coroutine[Any, Any, QueryResult]]
UTC = dt.UTC

MIXED = pa.schema(
    [
        pa.field("id", pa.int64(), nullable=False),
        pa.field("amount", pa.decimal128(38, 10)),
        pa.field("seen_at", pa.timestamp("us")),
        pa.field("paid_at", pa.timestamp("us", tz="UTC")),
        pa.field("label", pa.string()),
        pa.field("payload", pa.binary()),
        pa.field("tags", pa.list_(pa.string())),
        pa.field("score", pa.float64()),
    ]
)

#: Rows as (Arrow value, JSON value the query handler must return), column by column.
MIXED_ROWS: list[dict[str, tuple[Any, Any]]] = [
    {
        "id": (1, 1),
        "amount": (Decimal("1234567890123456789012345678.0123456789"), "1234567890123456789012345678.0123456789"),
        "seen_at": (dt.datetime(1, 1, 1), "0001-01-01T00:00:00"),
        "paid_at": (dt.datetime(1, 1, 1, tzinfo=UTC), "0001-01-01T00:00:00+00:00"),
        "label": ("Zürich — 東京 🚀", "Zürich — 東京 🚀"),
        "payload": (b"\x00\xff\x10", "AP8Q"),
        "tags": (["a", "b"], ["a", "b"]),
        "score": (1.5, 1.5),
    },
    {
        "id": (2, 2),
        "amount": (Decimal("-0.0000000001"), "-0.0000000001"),
        "seen_at": (dt.datetime(9999, 12, 31, 23, 59, 59, 999999), "9999-12-31T23:59:59.999999"),
        "paid_at": (dt.datetime(9999, 12, 31, 23, 59, 59, 999999, tzinfo=UTC), "9999-12-31T23:59:59.999999+00:00"),
        "label": ("", ""),
        "payload": (b"", ""),
        "tags": ([], []),
        "score": (float("nan"), "NaN"),
    },
    {
        "id": (3, 3),
        "amount": (None, None),
        "seen_at": (None, None),
        "paid_at": (None, None),
        "label": (None, None),
        "payload": (None, None),
        "tags": (None, None),
        "score": (float("-inf"), "-Infinity"),
    },
    {
        "id": (4, 4),
        "amount": (Decimal("0E-10"), "0.0000000000"),
        "seen_at": (dt.datetime(2024, 2, 29, 12, 30, 0, 1), "2024-02-29T12:30:00.000001"),
        "paid_at": (dt.datetime(2024, 2, 29, 23, 30, tzinfo=UTC), "2024-02-29T23:30:00+00:00"),
        "label": ("line\nbreak 'quoted' \"double\"", "line\nbreak 'quoted' \"double\""),
        "payload": (bytes(range(256)), base64.b64encode(bytes(range(256))).decode("ascii")),
        "tags": ([None, "x"], [None, "x"]),
        "score": (float("inf"), "Infinity"),
    },
]


def mixed_batch(rows: list[dict[str, tuple[Any, Any]]]) -> pa.RecordBatch:
    return pa.RecordBatch.from_pylist([{k: v[0] for k, v in row.items()} for row in rows], schema=MIXED)


def ints(name: str, values: list[int]) -> pa.RecordBatch:
    return pa.record_batch({name: pa.array(values, pa.int64())})


def delta(loader: LoaderState, extractor: Extractor, name: str) -> DeltaTable:
    return DeltaTable(str(loader.warehouse.table_path(extractor.target(name))))


async def test_a_load_of_several_mixed_parts_lands_as_one_delta_version_that_queries_back_exactly(
    loader: LoaderState, extractor: Extractor, query: Query
) -> None:
    target = extractor.target("shop_orders")
    batches = [mixed_batch(MIXED_ROWS[:1]), mixed_batch(MIXED_ROWS[1:3]), mixed_batch(MIXED_ROWS[3:])]
    run_id = extractor.new_run_id()
    steps = await extractor.watch(run_id)
    staged = await extractor.stage(run_id, batches)
    assert staged.parts == 3

    await extractor.announce(extractor.extracted(run_id, target, MIXED, staged, row_count=4))
    loaded = await steps.next(Loaded)

    assert isinstance(steps.seen[0], Loading)
    assert (loaded.row_count, loaded.table_version, loaded.target) == (4, 0, target)
    assert loaded.bytes > 0
    table = delta(loader, extractor, "shop_orders")
    history = table.history()
    assert table.version() == 0
    assert [entry["lakegate.run_id"] for entry in history] == [run_id]

    result = await query("SELECT * FROM shop_orders ORDER BY id")
    assert [c.name for c in result.columns] == MIXED.names
    assert result.columns[1].type == "decimal128(38, 10)"
    assert (result.row_count, result.truncated) == (4, False)
    assert result.rows == [[json_value for _, json_value in row.values()] for row in MIXED_ROWS]


async def test_a_second_delivery_of_the_same_run_commits_nothing_and_still_reports_loaded(
    loader: LoaderState, extractor: Extractor
) -> None:
    target = extractor.target("events")
    run_id = extractor.new_run_id()
    steps = await extractor.watch(run_id)
    staged = await extractor.stage(run_id, [ints("n", [1, 2, 3])])
    extracted = extractor.extracted(run_id, target, ints("n", []).schema, staged, row_count=3)

    await extractor.announce(extracted, delivery="1")
    first = await steps.next(Loaded)
    await extractor.announce(extracted, delivery="2")
    second = await steps.next(Loaded)

    assert first.table_version == second.table_version == 0
    assert (first.row_count, first.bytes) == (second.row_count, second.bytes)
    assert delta(loader, extractor, "events").version() == 0


async def test_a_full_sync_replaces_the_previous_contents_in_one_new_version(
    loader: LoaderState, extractor: Extractor, query: Query
) -> None:
    target = extractor.target("customers")
    await extractor.sync(target, [ints("n", [1, 2, 3])])
    second_batch = pa.record_batch({"name": pa.array(["ada", "grace"]), "n": pa.array([10, 20], pa.int64())})
    extracted, loaded = await extractor.sync(target, [second_batch])

    assert loaded.table_version == 1
    result = await query("SELECT name, n FROM bronze.customers ORDER BY n")
    assert result.rows == [["ada", 10], ["grace", 20]]
    history = delta(loader, extractor, "customers").history()
    assert history[0]["lakegate.run_id"] == extracted.run_id


async def test_staged_parts_are_deleted_once_the_run_is_committed(extractor: Extractor) -> None:
    acks = await extractor.acks()
    extracted, _ = await extractor.sync(extractor.target("deleted_parts"), [ints("n", [1]), ints("n", [2])])

    assert await asyncio.wait_for(acks.get(), 10) == b"+ACK"
    assert await extractor.staged_messages(extracted.run_id) == 0


@pytest.mark.parametrize("damage", ["a part is missing", "a part is not Arrow", "a part has another schema"])
async def test_a_load_with_damaged_parts_fails_and_leaves_the_previous_version_intact(
    damage: str, loader: LoaderState, extractor: Extractor, query: Query
) -> None:
    target = extractor.target("ledger")
    await extractor.sync(target, [ints("n", [1, 2])])
    run_id = extractor.new_run_id()
    steps = await extractor.watch(run_id)
    writer = await extractor.staging.writer(run_id, "a1")
    await writer.write(ints("n", [7]))  # part 0 is good: the Delta writer has started when the damage shows
    if damage == "a part is missing":
        await writer.write(ints("n", [8]))
        await writer.write(ints("n", [9]))
        staged = await writer.close()
        stream = extractor.topology.stage_stream.name
        last = await extractor.js.get_last_msg(stream, staged.location)
        assert last.seq is not None
        await extractor.js.delete_msg(stream, last.seq - 1)  # part 1 of 0, 1, 2
    elif damage == "a part is not Arrow":
        staged = (await writer.close()).model_copy(update={"parts": 2})
        await extractor.put_raw_part(staged.location, 1, b"definitely not arrow ipc")
    else:
        await writer.write(pa.record_batch({"n": pa.array(["text"])}))
        staged = await writer.close()
    parts = staged.parts

    await extractor.announce(extractor.extracted(run_id, target, ints("n", []).schema, staged, row_count=parts))
    failed = await steps.next(Failed)

    assert failed.step == "load"
    assert run_id in failed.error.message
    assert "start the sync again" in failed.error.message
    assert delta(loader, extractor, "ledger").version() == 0
    assert (await query("SELECT n FROM ledger ORDER BY n")).rows == [[1], [2]]


async def test_a_load_whose_row_count_disagrees_with_the_extraction_commits_nothing(
    loader: LoaderState, extractor: Extractor
) -> None:
    target = extractor.target("short")
    run_id = extractor.new_run_id()
    steps = await extractor.watch(run_id)
    staged = await extractor.stage(run_id, [ints("n", [1, 2])])

    await extractor.announce(extractor.extracted(run_id, target, ints("n", []).schema, staged, row_count=5))
    failed = await steps.next(Failed)

    assert "2 rows" in failed.error.message
    assert "5 were extracted" in failed.error.message
    assert not DeltaTable.is_deltatable(str(loader.warehouse.table_path(target)))


async def test_a_run_aimed_at_another_tenants_catalog_is_refused(extractor: Extractor) -> None:
    run_id = extractor.new_run_id()
    steps = await extractor.watch(run_id)
    staged = await extractor.stage(run_id, [ints("n", [1])])
    elsewhere = extractor.target("stolen").model_copy(update={"catalog": "tenant_someone_else"})

    await extractor.announce(extractor.extracted(run_id, elsewhere, ints("n", []).schema, staged, 1))
    failed = await steps.next(Failed)

    assert failed.error.code == "permission_denied"


async def test_extension_types_are_stored_as_their_plain_storage_type(
    loader: LoaderState, extractor: Extractor, query: Query
) -> None:
    raw = bytes(range(16))
    ids = pa.ExtensionArray.from_storage(pa.uuid(), pa.array([raw], pa.binary(16)))
    docs = pa.ExtensionArray.from_storage(pa.json_(), pa.array(['{"a": 1}']))
    batch = pa.record_batch({"id": ids, "doc": docs})

    await extractor.sync(extractor.target("typed"), [batch])

    fields = delta(loader, extractor, "typed").schema().fields
    assert [f.metadata for f in fields] == [{}, {}]
    result = await query("SELECT id, doc FROM typed")
    assert result.rows == [["AAECAwQFBgcICQoLDA0ODw==", '{"a": 1}']]
