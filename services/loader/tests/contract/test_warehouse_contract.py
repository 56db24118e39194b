"""The warehouse contract: what every warehouse (local lakehouse, Databricks) does, tested the same way.

Run on a real Databricks workspace by setting its variables (see `conftest.py`); otherwise the
`databricks` cases are skipped and say which variables to set.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import AsyncIterator
from decimal import Decimal
from typing import TYPE_CHECKING

import pyarrow as pa
import pytest
from lakegate.common.contracts.runs import SyncMode, TableRef
from lakegate.common.errors import InvalidInput, NotFound, Unsupported
from lakegate.loader.silver import plan_silver, silver_target
from lakegate.loader.sqlguard import check_select, render_databricks
from lakegate.loader.warehouses.base import LoadPlan

if TYPE_CHECKING:
    from conftest import Subject

UTC = dt.UTC
SCHEMA = pa.schema(
    [
        pa.field("id", pa.int64(), nullable=False),
        pa.field("amount", pa.decimal128(38, 10)),
        pa.field("seen_at", pa.timestamp("us")),
        pa.field("paid_at", pa.timestamp("us", tz="UTC")),
        pa.field("label", pa.string()),
        pa.field("payload", pa.binary()),
        pa.field("born", pa.date32()),
        pa.field("ok", pa.bool_()),
        pa.field("score", pa.float64()),
    ]
)


def order(key: int, label: str, hour: int = 10) -> dict[str, object]:
    return {
        "id": key,
        "amount": Decimal("1234567890123456789012345678.0123456789") if key == 1 else Decimal("-0.5"),
        "seen_at": dt.datetime(2024, 2, 29, 12, 30, 0, 1),
        "paid_at": dt.datetime(2024, 5, 1, hour, tzinfo=UTC),
        "label": label,
        "payload": b"\x00\xff",
        "born": dt.date(1, 1, 1),
        "ok": key % 2 == 0,
        "score": float("nan") if key == 2 else 1.5,
    }


EXPECTED_ONE = [
    1, "1234567890123456789012345678.0123456789", "2024-02-29T12:30:00.000001", "2024-05-01T10:00:00+00:00",
    "one", "AP8=", "0001-01-01", False, 1.5,
]  # fmt: skip


async def stream(*rows: dict[str, object]) -> AsyncIterator[pa.RecordBatch]:
    yield pa.RecordBatch.from_pylist(list(rows), schema=SCHEMA)


def ref(subject: Subject, name: str = "orders", layer: str = "bronze") -> TableRef:
    return TableRef(catalog=subject.catalog, schema_name=layer, name=name)


def plan(subject: Subject, run_id: str, mode: SyncMode = "full") -> LoadPlan:
    return LoadPlan(ref(subject), SCHEMA, mode, run_id, keys=("id",), cursor="paid_at")


async def rows(subject: Subject, sql: str = "SELECT id, label FROM orders ORDER BY id") -> list[list[object]]:
    return (await subject.warehouse.query(subject.catalog, sql, 100, 60.0)).rows


async def load_or_skip(subject: Subject, load_plan: LoadPlan, *data: dict[str, object]) -> None:
    try:
        await subject.warehouse.load(load_plan, stream(*data))
    except Unsupported as exc:
        pytest.skip(f"{subject.name} does not support {load_plan.mode} loads yet: {exc}")


async def test_a_full_load_queries_back_every_value_exactly(subject: Subject) -> None:
    result = await subject.warehouse.load(plan(subject, "run1"), stream(order(1, "one"), order(2, "two")))

    assert (result.row_count, result.already_committed) == (2, False)
    assert (await rows(subject, "SELECT * FROM orders WHERE id = 1"))[0] == EXPECTED_ONE
    assert await rows(subject, "SELECT score FROM bronze.orders WHERE id = 2") == [["NaN"]]


async def test_a_redelivered_load_commits_nothing_twice(subject: Subject) -> None:
    first = await subject.warehouse.load(plan(subject, "run1"), stream(order(1, "one")))
    again = await subject.warehouse.load(plan(subject, "run1"), stream(order(1, "one")))

    assert again.already_committed
    assert (again.row_count, again.version) == (1, first.version)
    assert await rows(subject) == [[1, "one"]]


async def test_a_full_load_replaces_what_was_there(subject: Subject) -> None:
    await subject.warehouse.load(plan(subject, "run1"), stream(order(1, "one"), order(2, "two")))
    await subject.warehouse.load(plan(subject, "run2"), stream(order(3, "three")))

    assert await rows(subject) == [[3, "three"]]


async def test_an_incremental_load_appends_and_a_merge_upserts_on_the_key(subject: Subject) -> None:
    await load_or_skip(subject, plan(subject, "run1", "incremental"), order(1, "one"))
    await load_or_skip(subject, plan(subject, "run2", "incremental"), order(2, "two"))
    assert await rows(subject) == [[1, "one"], [2, "two"]]

    await load_or_skip(subject, plan(subject, "run3", "merge"), order(2, "two, later", hour=11), order(3, "three"))
    assert await rows(subject) == [[1, "one"], [2, "two, later"], [3, "three"]]


async def test_listing_and_describing_report_rows_columns_and_the_run(subject: Subject) -> None:
    await subject.warehouse.load(plan(subject, "run1"), stream(order(1, "one"), order(2, "two")))

    listed = await subject.warehouse.list_tables(subject.catalog, "bronze")
    described = await subject.warehouse.describe(subject.catalog, "orders", with_stats=True)

    assert [(t.ref.name, t.row_count, t.kind) for t in listed.tables] == [("orders", 2, "table")]
    assert described.row_count == 2
    assert [c.name for c in described.columns] == SCHEMA.names
    assert (described.columns[0].min, described.columns[0].max) == (1, 2)
    assert described.properties["lakegate.run_id"] == "run1"


async def test_show_tables_and_describe_answer_through_the_query_path(subject: Subject) -> None:
    await subject.warehouse.load(plan(subject, "run1"), stream(order(1, "one")))

    assert await rows(subject, "SHOW TABLES") == [["bronze", "orders", False]]
    described = await rows(subject, "DESCRIBE orders")
    assert [r[0] for r in described] == SCHEMA.names


async def test_a_silver_table_and_a_gold_view_build_on_bronze(subject: Subject) -> None:
    await subject.warehouse.load(plan(subject, "run1"), stream(order(1, "one"), order(1, "one"), order(2, "two")))
    bronze = ref(subject)
    schema, count = await subject.warehouse.table_schema(bronze)
    assert count == 3

    silver = plan_silver(bronze, schema, None)
    written = await subject.warehouse.create_table_as(silver_target(bronze, None), silver.query, note={})
    assert written.row_count == 2

    view = check_select(
        "SELECT label, COUNT(*) AS n FROM silver.orders GROUP BY label",
        subject.catalog,
        lambda layer: subject.warehouse.tables_in(subject.catalog, layer),
    )
    definition = render_databricks(view.statement)
    await subject.warehouse.create_view(ref(subject, "labels", "gold"), view, definition=definition)
    assert await rows(subject, "SELECT label, n FROM gold.labels ORDER BY label") == [["one", 1], ["two", 1]]
    preview = await subject.warehouse.preview(subject.catalog, "gold.labels", 1)
    assert (preview.row_count, preview.truncated) == (1, True)


async def test_replacing_a_table_with_uploaded_data_commits_it_whole(subject: Subject) -> None:
    data = pa.table({"city": ["Zürich", "東京"], "people": pa.array([1, 2], pa.int64())})

    written = await subject.warehouse.replace_table(ref(subject, "cities"), data, note={"lakegate.operation": "upload"})

    assert written.row_count == 2
    assert await rows(subject, "SELECT city FROM cities ORDER BY people") == [["Zürich"], ["東京"]]


async def test_the_guard_keeps_queries_inside_the_tenant(subject: Subject) -> None:
    await subject.warehouse.load(plan(subject, "run1"), stream(order(1, "one")))

    with pytest.raises(InvalidInput, match="is not yours"):
        await rows(subject, "SELECT * FROM tenant_someone_else.bronze.orders")
    with pytest.raises(NotFound, match="tables in bronze: orders"):
        await rows(subject, "SELECT * FROM nothing_here")
