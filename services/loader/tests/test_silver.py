"""Bronze → silver: a spec checked against the bronze schema, built as one statement, written in one commit."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Coroutine
from decimal import Decimal
from typing import TYPE_CHECKING, Any

import pyarrow as pa
import pytest
from deltalake import DeltaTable
from lakegate.common.contracts.transforms import (
    Cast,
    Dedupe,
    DropNull,
    FillNull,
    Filter,
    Rename,
    SilverSpec,
    TransformResult,
    TransformToSilver,
    Trim,
)
from lakegate.common.contracts.warehouse import QueryResult
from lakegate.common.errors import InvalidInput, NotFound, WarehouseError
from lakegate.loader.app import LoaderState

if TYPE_CHECKING:
    from conftest import Extractor, LineageReader

Ask = Callable[..., Coroutine[Any, Any, Any]]
Query = Callable[..., Coroutine[Any, Any, QueryResult]]

CUSTOMERS = pa.RecordBatch.from_pylist(
    [
        {"id": 1, "name": "  Ada ", "city": "Paris", "score": "10", "updated_at": dt.datetime(2024, 1, 1)},
        {"id": 1, "name": "Ada", "city": "Lyon", "score": "12", "updated_at": dt.datetime(2024, 3, 1)},
        {"id": 2, "name": "", "city": None, "score": "x", "updated_at": dt.datetime(2024, 2, 1)},
        {"id": 3, "name": "Cy", "city": "Rome", "score": "7", "updated_at": None},
        {"id": 3, "name": "Cy", "city": "Rome", "score": "7", "updated_at": None},
    ],
    schema=pa.schema(
        [
            pa.field("id", pa.int64()),
            pa.field("name", pa.string()),
            pa.field("city", pa.string()),
            pa.field("score", pa.string()),
            pa.field("updated_at", pa.timestamp("us")),
        ]
    ),
)


async def transform(
    ask: Ask, loader: LoaderState, tenant_id: str, spec: SilverSpec | None, table: str = "customers"
) -> TransformResult:
    request = TransformToSilver(tenant_id=tenant_id, bronze_table=table, spec=spec)
    result: TransformResult = await ask(loader.runtime.topology.warehouse_transform, request, TransformResult)
    return result


async def test_without_a_spec_types_are_kept_and_exact_duplicates_removed(
    loader: LoaderState, extractor: Extractor, ask: Ask, query: Query, tenant_id: str
) -> None:
    await extractor.sync(extractor.target("customers"), [CUSTOMERS])

    result = await transform(ask, loader, tenant_id, None)

    assert (result.rows_in, result.rows_out) == (5, 4)
    assert result.target == extractor.target("customers", layer="silver")
    assert result.sql == f"SELECT DISTINCT * FROM `{result.source.catalog}`.`bronze`.`customers` AS customers"
    assert [(c.name, c.source_type, c.arrow_type) for c in result.columns] == [
        ("id", "bigint", "int64"),
        ("name", "string", "string"),
        ("city", "string", "string"),
        ("score", "string", "string"),
        ("updated_at", "timestamp_ntz", "timestamp[us]"),
    ]
    counted = await query("SELECT count(*) FROM silver.customers")
    assert counted.rows == [[4]]


async def test_every_step_applies_in_order_and_the_sql_says_what_was_done(
    loader: LoaderState, extractor: Extractor, ask: Ask, query: Query, tenant_id: str
) -> None:
    await extractor.sync(extractor.target("customers"), [CUSTOMERS])
    spec = SilverSpec(
        target_name="clients",
        steps=[
            Trim(columns=["name"], empty_as_null=True),
            Rename(column="name", to="full_name"),
            Cast(column="score", to="int", on_error="null"),
            FillNull(column="city", value="unknown"),
            Dedupe(keys=["id"], latest_by="updated_at"),
            Filter(column="score", op=">=", value=7),
            DropNull(columns=["full_name"]),
        ],
    )

    result = await transform(ask, loader, tenant_id, spec)

    rows = await query("SELECT id, full_name, city, score FROM silver.clients ORDER BY id")
    assert rows.rows == [[1, "Ada", "Lyon", 12], [3, "Cy", "Rome", 7]]
    assert (result.rows_in, result.rows_out) == (5, 2)
    assert [(c.name, c.source_type, c.arrow_type) for c in result.columns] == [
        ("id", "bigint", "int64"),
        ("full_name", "string", "string"),
        ("city", "string", "string"),
        ("score", "string", "int32"),
        ("updated_at", "timestamp_ntz", "timestamp[us]"),
    ]
    assert "TRY_CAST(`score` AS INT)" in result.sql
    assert "QUALIFY ROW_NUMBER() OVER (PARTITION BY `id` ORDER BY `updated_at` DESC" in result.sql
    assert result.sql.startswith("WITH s0_trim AS (SELECT `id`, NULLIF(TRIM(`name`), '') AS `name`")
    # The returned SQL is what a Databricks user would run; the lakehouse runs it too, as a query.
    again = await query(result.sql, max_rows=10)
    assert sorted(again.rows) == sorted((await query("SELECT * FROM silver.clients", max_rows=10)).rows)


async def test_literal_values_are_typed_by_their_column(
    loader: LoaderState, extractor: Extractor, ask: Ask, query: Query, tenant_id: str
) -> None:
    batch = pa.RecordBatch.from_pylist(
        [
            {"d": dt.date(2024, 1, 1), "amount": Decimal("1.50"), "ok": True, "t": "b"},
            {"d": dt.date(2024, 6, 1), "amount": None, "ok": False, "t": "a"},
            {"d": None, "amount": Decimal("9.99"), "ok": None, "t": "c"},
        ],
        schema=pa.schema(
            [("d", pa.date32()), ("amount", pa.decimal128(10, 2)), ("ok", pa.bool_()), ("t", pa.string())]
        ),
    )
    await extractor.sync(extractor.target("typed"), [batch])
    spec = SilverSpec(
        steps=[
            FillNull(column="amount", value="0.00"),
            FillNull(column="ok", value=False),
            Filter(column="d", op="not_in", value=["2024-06-01"]),
            Filter(column="t", op="like", value="%"),
            Cast(column="amount", to="decimal(12,3)"),
        ]
    )

    result = await transform(ask, loader, tenant_id, spec, table="bronze.typed")

    rows = await query("SELECT d, amount, ok, t FROM silver.typed ORDER BY t")
    assert rows.rows == [["2024-01-01", "1.500", True, "b"]]
    assert result.columns[1].arrow_type == "decimal128(12, 3)"


@pytest.mark.parametrize(
    ("steps", "message"),
    [
        ([Rename(column="nope", to="x")], "steps[0] (rename): column 'nope' does not exist; columns: id, name, city"),
        ([Rename(column="name", to="city")], "steps[0] (rename): cannot rename 'name' to 'city': column 'city' exists"),
        ([Rename(column="name", to="1st")], "steps[0] (rename): new name '1st' is not valid"),
        ([Trim(), Cast(column="id", to="varchar")], "steps[1] (cast): 'varchar' is not a type a cast may target"),
        ([Cast(column="id", to="decimal(40,2)")], "steps[0] (cast): 'decimal(40,2)' is not a type a cast may target"),
        ([Dedupe(keys=[])], "steps[0] (dedupe): dedupe needs `keys`"),
        ([Dedupe(keys=["id"], latest_by="when")], "steps[0] (dedupe): column 'when' does not exist"),
        ([Trim(columns=["id"])], "steps[0] (trim): column 'id' is bigint; trim works on strings"),
        ([FillNull(column="id", value="abc")], "steps[0] (fill_null): value 'abc' does not fit column 'id' (bigint)"),
        ([FillNull(column="id", value=True)], "booleans go only with boolean columns"),
        ([Filter(column="id", op="in", value=[])], "steps[0] (filter): `in` needs a non-empty list of values"),
        ([Filter(column="id", op="is_null", value=1)], "steps[0] (filter): `is_null` takes no value"),
        ([Filter(column="id", op="like", value="1%")], "`like` needs a string column"),
        ([DropNull(columns=[])], "steps[0] (drop_null): `columns` is empty"),
        ([Rename(column="name", to="n"), DropNull(columns=["name"])], "steps[1] (drop_null): column 'name' does not"),
    ],
)
async def test_a_spec_that_does_not_fit_the_bronze_table_is_refused_naming_step_and_column(
    steps: list[Any], message: str, loader: LoaderState, extractor: Extractor, ask: Ask, tenant_id: str
) -> None:
    batch = pa.record_batch({"id": pa.array([1], pa.int64()), "name": ["a"], "city": ["b"]})
    await extractor.sync(extractor.target("customers"), [batch])

    with pytest.raises(InvalidInput) as refused:
        await transform(ask, loader, tenant_id, SilverSpec(steps=steps))

    assert message in str(refused.value)
    assert not (loader.settings.lakehouse / extractor.target("x").catalog / "silver").exists()


async def test_only_bronze_tables_of_the_own_catalog_can_be_transformed(
    loader: LoaderState, extractor: Extractor, ask: Ask, tenant_id: str
) -> None:
    await extractor.sync(extractor.target("customers"), [CUSTOMERS])

    with pytest.raises(InvalidInput, match="reads bronze tables"):
        await transform(ask, loader, tenant_id, None, table="silver.customers")
    with pytest.raises(InvalidInput, match="is not yours"):
        await transform(ask, loader, tenant_id, None, table="tenant_other.bronze.customers")
    with pytest.raises(NotFound, match="tables in bronze: customers"):
        await transform(ask, loader, tenant_id, None, table="custommers")


async def test_a_failing_transform_leaves_the_previous_silver_version(
    loader: LoaderState, extractor: Extractor, ask: Ask, query: Query, tenant_id: str
) -> None:
    await extractor.sync(extractor.target("customers"), [CUSTOMERS])
    first = await transform(ask, loader, tenant_id, None)
    path = loader.settings.lakehouse / first.target.catalog / "silver" / "customers"
    files_before = sorted(p.name for p in path.rglob("*"))

    with pytest.raises(WarehouseError, match="Could not convert string 'x'"):
        await transform(ask, loader, tenant_id, SilverSpec(steps=[Cast(column="score", to="int")]))

    assert DeltaTable(str(path)).version() == first.table_version
    assert sorted(p.name for p in path.rglob("*")) == files_before
    assert (await query("SELECT count(*) FROM silver.customers")).rows == [[4]]


async def test_a_transform_replaces_silver_and_records_its_lineage(
    loader: LoaderState, extractor: Extractor, ask: Ask, lineage: LineageReader, tenant_id: str
) -> None:
    await extractor.sync(extractor.target("customers"), [CUSTOMERS])

    first = await transform(ask, loader, tenant_id, None)
    second = await transform(ask, loader, tenant_id, SilverSpec(steps=[DropNull(columns=["city"])]))
    records = await lineage.records(2)

    assert (first.table_version, second.table_version, second.rows_out) == (0, 1, 4)
    record, message_id = records[1]
    assert record.kind == "silver"
    assert record.target == second.target
    assert record.upstream == [second.source]
    assert record.definition == second.sql
    assert record.row_count == 4
    assert message_id == f"dataset.{second.target}.v1"
