"""Listing and describing the tenant's tables, from the Delta log."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import TYPE_CHECKING

import pyarrow as pa
import pytest
from lakegate.common.contracts.transforms import PreviewTable
from lakegate.common.contracts.warehouse import DescribeTable, ListTables, QueryResult, TableDescription, TableList
from lakegate.common.errors import InvalidInput, NotFound
from lakegate.loader.app import LoaderState

if TYPE_CHECKING:
    from conftest import Extractor


async def list_tables(loader: LoaderState, tenant_id: str, layer: str) -> TableList:
    rt = loader.runtime
    return await rt.rpc.call(rt.topology.warehouse_tables_list, ListTables(tenant_id=tenant_id, layer=layer), TableList)


async def describe(loader: LoaderState, tenant_id: str, name: str) -> TableDescription:
    rt = loader.runtime
    request = DescribeTable(tenant_id=tenant_id, table_name=name)
    return await rt.rpc.call(rt.topology.warehouse_tables_describe, request, TableDescription)


async def test_tables_of_a_layer_are_listed_with_rows_size_and_version(
    loader: LoaderState, extractor: Extractor, tenant_id: str
) -> None:
    await extractor.sync(extractor.target("b_orders"), [pa.record_batch({"n": pa.array(range(5), pa.int64())})])
    await extractor.sync(extractor.target("a_users"), [pa.record_batch({"n": pa.array([1], pa.int64())})])
    await extractor.sync(extractor.target("a_users"), [pa.record_batch({"n": pa.array([1, 2], pa.int64())})])
    await extractor.sync(extractor.target("kept", layer="silver"), [pa.record_batch({"n": pa.array([1])})])

    bronze = await list_tables(loader, tenant_id, "bronze")
    gold = await list_tables(loader, tenant_id, "gold")

    assert [(t.ref.name, t.layer, t.row_count, t.table_version) for t in bronze.tables] == [
        ("a_users", "bronze", 2, 1),
        ("b_orders", "bronze", 5, 0),
    ]
    assert all(t.size_bytes > 0 for t in bronze.tables)
    assert gold.tables == []


async def test_an_unknown_layer_is_refused_with_the_layers_that_exist(loader: LoaderState, tenant_id: str) -> None:
    with pytest.raises(InvalidInput, match="layer 'platinum' does not exist: use bronze, silver or gold"):
        await list_tables(loader, tenant_id, "platinum")


async def test_a_description_has_columns_counts_version_and_the_last_run_id(
    loader: LoaderState, extractor: Extractor, tenant_id: str
) -> None:
    batch = pa.RecordBatch.from_pylist(
        [{"id": 1, "price": None}], schema=pa.schema([pa.field("id", pa.int64(), nullable=False),
                                                      pa.field("price", pa.decimal128(12, 2))])
    )  # fmt: skip
    extracted, _ = await extractor.sync(extractor.target("priced"), [batch])

    for name in ("priced", "bronze.priced", f"{extractor.target('priced').catalog}.bronze.priced"):
        description = await describe(loader, tenant_id, name)
        assert description.ref == extractor.target("priced")
        assert [(c.name, c.type, c.nullable) for c in description.columns] == [
            ("id", "int64", False),
            ("price", "decimal128(12, 2)", True),
        ]
        assert (description.row_count, description.table_version) == (1, 0)
        assert description.size_bytes > 0
        assert description.properties["lakegate.run_id"] == extracted.run_id
        assert description.properties["delta.lastOperation"] == "CREATE TABLE"  # a later load: "WRITE"


async def test_describing_a_missing_table_lists_the_tables_of_its_layer(
    loader: LoaderState, extractor: Extractor, tenant_id: str
) -> None:
    await extractor.sync(extractor.target("orders"), [pa.record_batch({"n": pa.array([1])})])

    with pytest.raises(NotFound, match="does not exist; tables in bronze: orders"):
        await describe(loader, tenant_id, "order")


@pytest.mark.parametrize("name", ["tenant_other.bronze.orders", "../../etc", "a.b.c.d", "bronze."])
async def test_a_name_outside_the_own_catalog_cannot_be_described(
    name: str, loader: LoaderState, tenant_id: str
) -> None:
    with pytest.raises(InvalidInput):
        await describe(loader, tenant_id, name)


async def test_listings_come_in_pages_with_the_next_offset(
    loader: LoaderState, extractor: Extractor, tenant_id: str
) -> None:
    for name in ("a", "b", "c", "d", "e"):
        await extractor.sync(extractor.target(name), [pa.record_batch({"n": pa.array([1])})])
    rt = loader.runtime

    async def page(offset: int) -> TableList:
        request = ListTables(tenant_id=tenant_id, layer="bronze", offset=offset, limit=2)
        return await rt.rpc.call(rt.topology.warehouse_tables_list, request, TableList)

    pages = [await page(0), await page(2), await page(4)]

    assert [[t.ref.name for t in p.tables] for p in pages] == [["a", "b"], ["c", "d"], ["e"]]
    assert [p.next_offset for p in pages] == [2, 4, None]
    assert (await page(10)).tables == []


async def test_a_description_with_stats_has_nulls_distincts_and_json_min_max_per_column(
    loader: LoaderState, extractor: Extractor, tenant_id: str
) -> None:
    batch = pa.RecordBatch.from_pylist(
        [
            {"id": 1, "price": Decimal("1.50"), "at": dt.datetime(2024, 1, 1, tzinfo=dt.UTC), "tags": ["x"], "s": "b"},
            {"id": 2, "price": None, "at": dt.datetime(2024, 5, 1, tzinfo=dt.UTC), "tags": None, "s": "a"},
            {"id": 2, "price": Decimal("-3.25"), "at": None, "tags": [], "s": None},
        ],
        schema=pa.schema(
            [
                ("id", pa.int64()),
                ("price", pa.decimal128(12, 2)),
                ("at", pa.timestamp("us", tz="UTC")),
                ("tags", pa.list_(pa.string())),
                ("s", pa.string()),
            ]
        ),
    )
    await extractor.sync(extractor.target("stats"), [batch])
    rt = loader.runtime

    request = DescribeTable(tenant_id=tenant_id, table_name="stats", with_stats=True)
    described = await rt.rpc.call(rt.topology.warehouse_tables_describe, request, TableDescription)
    plain = await rt.rpc.call(
        rt.topology.warehouse_tables_describe,
        DescribeTable(tenant_id=tenant_id, table_name="stats", with_stats=False),
        TableDescription,
    )

    assert [(c.name, c.null_count, c.distinct_estimate, c.min, c.max) for c in described.columns] == [
        ("id", 0, 2, 1, 2),
        ("price", 1, 2, "-3.25", "1.50"),
        ("at", 1, 2, "2024-01-01T00:00:00+00:00", "2024-05-01T00:00:00+00:00"),
        ("tags", 1, None, None, None),
        ("s", 1, 2, "a", "b"),
    ]
    assert described.row_count == 3
    assert all(c.null_count is None and c.min is None for c in plain.columns)


async def test_a_preview_returns_the_first_rows_of_a_table(
    loader: LoaderState, extractor: Extractor, tenant_id: str
) -> None:
    await extractor.sync(extractor.target("orders"), [pa.record_batch({"n": pa.array(range(30), pa.int64())})])
    rt = loader.runtime

    async def preview(name: str, limit: int) -> QueryResult:
        request = PreviewTable(tenant_id=tenant_id, table_name=name, limit=limit)
        return await rt.rpc.call(rt.topology.warehouse_tables_preview, request, QueryResult)

    few = await preview("orders", 5)
    every = await preview("bronze.orders", 100)

    assert (few.rows, few.truncated) == ([[0], [1], [2], [3], [4]], True)
    assert (every.row_count, every.truncated) == (30, False)
    with pytest.raises(NotFound, match="tables in bronze: orders"):
        await preview("ordres", 5)
    with pytest.raises(InvalidInput, match="is not yours"):
        await preview("tenant_other.bronze.orders", 5)
