"""Listing and describing the tenant's tables, from the Delta log."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pyarrow as pa
import pytest
from lakegate.common.contracts.warehouse import DescribeTable, ListTables, TableDescription, TableList
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

    assert [(t.ref.name, t.layer, t.row_count, t.version) for t in bronze.tables] == [
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
        assert (description.row_count, description.version) == (1, 0)
        assert description.size_bytes > 0
        assert description.properties["lakegate.run_id"] == extracted.run_id
        assert description.properties["delta.lastOperation"] == "WRITE"


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
