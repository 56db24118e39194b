"""Schema drift, decided from two Arrow schemas alone: what a load adds, keeps, widens or refuses."""

from __future__ import annotations

import pyarrow as pa
import pytest
from lakegate.common.contracts.runs import SchemaChange
from lakegate.common.errors import WarehouseError
from lakegate.loader.schemadrift import align, canonical, holds, plan_drift

TABLE = pa.schema(
    [
        pa.field("id", pa.int64(), nullable=False),
        pa.field("qty", pa.int32()),
        pa.field("price", pa.decimal128(10, 2)),
        pa.field("note", pa.string()),
    ]
)


def test_a_new_table_takes_the_incoming_schema_and_reports_nothing() -> None:
    drift = plan_drift(None, TABLE, table="t", replace=False)

    assert drift.schema == TABLE
    assert (drift.changes, drift.rewrite) == ((), False)


def test_a_column_new_at_the_source_is_appended_nullable_and_reported_as_added() -> None:
    incoming = TABLE.append(pa.field("email", pa.string(), nullable=False))

    drift = plan_drift(TABLE, incoming, table="t", replace=False)

    assert drift.schema.names == ["id", "qty", "price", "note", "email"]
    assert drift.schema.field("email").nullable
    assert drift.changes == (SchemaChange(column="email", change="added", after="string"),)
    assert (drift.added, drift.evolves, drift.rewrite) == (("email",), True, False)


def test_a_column_gone_from_the_source_stays_and_is_reported_once() -> None:
    incoming = pa.schema([f for f in TABLE if f.name != "note"])

    first = plan_drift(TABLE, incoming, table="t", replace=False)
    again = plan_drift(first.schema, incoming, table="t", replace=False, absent_before=first.absent)

    assert first.schema.names == TABLE.names
    assert first.changes == (SchemaChange(column="note", change="dropped", before="string"),)
    assert first.absent == ("note",)
    assert again.changes == ()
    assert again.absent == ("note",)


def test_a_dropped_not_null_column_becomes_nullable_which_needs_a_rewrite() -> None:
    incoming = pa.schema([f for f in TABLE if f.name != "id"])

    drift = plan_drift(TABLE, incoming, table="t", replace=False)

    assert drift.schema.field("id").nullable
    assert drift.rewrite


@pytest.mark.parametrize(
    ("column", "wider"),
    [("qty", pa.int64()), ("price", pa.decimal128(12, 2)), ("price", pa.decimal128(14, 4)), ("qty", pa.float64())],
)
def test_a_lossless_widening_changes_the_column_type_and_rewrites_the_table(column: str, wider: pa.DataType) -> None:
    incoming = pa.schema([pa.field(f.name, wider) if f.name == column else f for f in TABLE])

    drift = plan_drift(TABLE, incoming, table="t", replace=False)

    assert drift.schema.field(column).type == wider
    assert drift.rewrite
    assert drift.changes == (
        SchemaChange(column=column, change="type_changed", before=str(TABLE.field(column).type), after=str(wider)),
    )


def test_a_narrower_source_type_keeps_the_table_type_and_is_not_a_change() -> None:
    incoming = pa.schema([pa.field("qty", pa.int16()) if f.name == "qty" else f for f in TABLE])

    drift = plan_drift(TABLE, incoming, table="t", replace=False)

    assert drift.schema.field("qty").type == pa.int32()
    assert (drift.changes, drift.rewrite) == ((), False)


@pytest.mark.parametrize(
    ("column", "other"),
    [("note", pa.int64()), ("qty", pa.timestamp("us")), ("price", pa.decimal128(10, 3)), ("qty", pa.string())],
)
def test_an_incompatible_type_change_is_refused_naming_the_column_types_and_choices(
    column: str, other: pa.DataType
) -> None:
    incoming = pa.schema([pa.field(f.name, other) if f.name == column else f for f in TABLE])

    with pytest.raises(WarehouseError) as raised:
        plan_drift(TABLE, incoming, table="tenant_a.bronze.shop_orders", replace=False)

    message = raised.value.message
    assert f"column {column!r} was {TABLE.field(column).type} and is now {other}" in message
    assert "tenant_a.bronze.shop_orders" in message
    assert "full sync" in message
    assert "cast" in message


def test_a_full_sync_replaces_the_schema_and_reports_every_difference() -> None:
    incoming = pa.schema(
        [pa.field("id", pa.int64(), nullable=False), pa.field("qty", pa.string()), pa.field("email", pa.string())]
    )

    drift = plan_drift(TABLE, incoming, table="t", replace=True)

    assert drift.schema == incoming
    assert set(drift.changes) == {
        SchemaChange(column="email", change="added", after="string"),
        SchemaChange(column="price", change="dropped", before="decimal128(10, 2)"),
        SchemaChange(column="note", change="dropped", before="string"),
        SchemaChange(column="qty", change="type_changed", before="int32", after="string"),
    }


def test_names_match_without_regard_to_case_and_the_table_keeps_its_spelling() -> None:
    incoming = pa.schema([pa.field(f.name.upper(), f.type, nullable=f.nullable) for f in TABLE])

    drift = plan_drift(TABLE, incoming, table="t", replace=False)
    batch = pa.RecordBatch.from_pylist([{"ID": 1, "QTY": 2, "PRICE": None, "NOTE": "x"}], schema=incoming)

    assert drift.schema.names == TABLE.names
    assert drift.changes == ()
    assert align(batch, drift.schema).to_pylist() == [{"id": 1, "qty": 2, "price": None, "note": "x"}]


def test_spellings_of_one_type_are_the_same_type() -> None:
    assert canonical(pa.large_string()) == canonical(pa.string_view()) == pa.string()
    assert canonical(pa.binary(16)) == pa.binary()
    assert canonical(pa.list_(pa.field("element", pa.int64()))) == canonical(pa.large_list(pa.int64()))
    assert canonical(pa.timestamp("us", tz="+00:00")) == pa.timestamp("us", tz="UTC")
    assert holds(pa.int64(), pa.int32())
    assert not holds(pa.int32(), pa.int64())
    assert not holds(pa.float64(), pa.int64())


def test_align_reorders_widens_and_fills_missing_columns_with_null() -> None:
    batch = pa.record_batch(
        {"note": pa.array(["a"]), "id": pa.array([7], pa.int64()), "qty": pa.array([3], pa.int16())}
    )

    aligned = align(batch, TABLE)

    assert aligned.schema == TABLE
    assert aligned.to_pylist() == [{"id": 7, "qty": 3, "price": None, "note": "a"}]
