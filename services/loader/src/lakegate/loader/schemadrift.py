"""Schema drift: how a run's columns differ from its target table's, and what the load does about it.

Warehouse-neutral: both sides are Arrow schemas (each warehouse reads its table's schema as Arrow),
and the outcome is the table's schema after the load plus the `SchemaChange`s to report. Names are
matched without regard to case, as Databricks and DuckDB do; the table keeps its spelling.
Databricks tables take the same rules for which types hold which (`holds`) and the same refusal
(`incompatible`), though they widen no column (`warehouses/databricks/drift.py`).

    at the source, against the table     incremental / merge                               full
    a new column                         added: appended, NULL in older rows               the table is replaced
    a column that is gone                dropped: kept (nullable from now on), NULL in     by the run's columns
                                         new rows; reported once, not at every run         and types; every
    the same type (up to Arrow spelling) nothing                                           difference is
    a type the table's column holds      nothing: values widen to the table's type         reported
    a type that holds the table's        type_changed: the column is widened (int8 → int16
      (lossless)                         → int32 → int64, float32 → float64, int8/16/32 →
                                         float64, decimal(p,s) → decimal(p',s') with no
                                         fewer integer or fraction digits)
    anything else                        refused: `WarehouseError` naming the columns and
                                         the choices, before anything is written
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import pyarrow as pa
from lakegate.common.contracts.runs import SchemaChange
from lakegate.common.errors import WarehouseError

_UTC_NAMES = frozenset({"UTC", "utc", "Etc/UTC", "+00:00", "Z"})


@dataclass(frozen=True)
class Drift:
    """What a load does to its table's schema."""

    schema: pa.Schema
    changes: tuple[SchemaChange, ...]
    added: tuple[str, ...]
    rewrite: bool
    absent: tuple[str, ...]

    @property
    def evolves(self) -> bool:
        """The table gains columns (a schema merge on write)."""
        return bool(self.added)


def canonical(type_: pa.DataType) -> pa.DataType:
    """One spelling per type: large/view/fixed-size variants, child field names and UTC spellings folded."""
    if isinstance(type_, pa.BaseExtensionType):
        return canonical(type_.storage_type)
    if pa.types.is_dictionary(type_):
        return canonical(type_.value_type)
    if pa.types.is_large_string(type_) or pa.types.is_string_view(type_):
        return pa.string()
    if pa.types.is_large_binary(type_) or pa.types.is_binary_view(type_) or pa.types.is_fixed_size_binary(type_):
        return pa.binary()
    if pa.types.is_timestamp(type_) and type_.tz is not None and type_.tz in _UTC_NAMES:
        return pa.timestamp(type_.unit, tz="UTC")
    if pa.types.is_decimal(type_) and type_.precision <= 38:
        return pa.decimal128(type_.precision, type_.scale)
    if pa.types.is_list(type_) or pa.types.is_large_list(type_) or pa.types.is_fixed_size_list(type_):
        return pa.list_(canonical(type_.value_type))
    if pa.types.is_struct(type_):
        return pa.struct([pa.field(f.name, canonical(f.type)) for f in type_.fields])
    if pa.types.is_map(type_):
        return pa.map_(canonical(type_.key_type), canonical(type_.item_type))
    return type_


def _int_range(type_: pa.DataType) -> tuple[int, int]:
    bits = type_.bit_width
    if pa.types.is_signed_integer(type_):
        return -(2 ** (bits - 1)), 2 ** (bits - 1) - 1
    return 0, 2**bits - 1


def holds(wide: pa.DataType, narrow: pa.DataType) -> bool:
    """Whether every value of type `narrow` fits a column of type `wide` unchanged (both canonical)."""
    if wide == narrow or pa.types.is_null(narrow):
        return True
    if pa.types.is_integer(wide) and pa.types.is_integer(narrow):
        (wide_low, wide_high), (low, high) = _int_range(wide), _int_range(narrow)
        return wide_low <= low and high <= wide_high
    if pa.types.is_float64(wide):
        # A double holds every float and every integer of up to 32 bits exactly.
        return bool(pa.types.is_float32(narrow) or (pa.types.is_integer(narrow) and narrow.bit_width <= 32))
    if pa.types.is_decimal(wide) and pa.types.is_decimal(narrow):
        wide_digits, digits = wide.precision - wide.scale, narrow.precision - narrow.scale
        return bool(wide.scale >= narrow.scale and wide_digits >= digits)
    return False


def plan_drift(
    existing: pa.Schema | None,
    incoming: pa.Schema,
    *,
    table: str,
    replace: bool,
    absent_before: Iterable[str] = (),
) -> Drift:
    """The table's schema after loading `incoming` into `existing` (None: no table yet), and what changed.

    `replace` (a full sync) makes the table exactly `incoming`. Otherwise a type that cannot be
    widened fails with a `WarehouseError` naming every such column, before anything is written.
    """
    if existing is None:
        return Drift(incoming, (), (), rewrite=False, absent=())
    if replace:
        return Drift(incoming, _differences(existing, incoming), (), rewrite=False, absent=())
    arriving = {field.name.lower(): field for field in incoming}
    known = {field.name.lower() for field in existing}
    already_absent = {name.lower() for name in absent_before}
    fields: list[pa.Field] = []
    changes: list[SchemaChange] = []
    refused: list[tuple[str, pa.DataType, pa.DataType]] = []
    rewrite = False
    for field in existing:
        key = field.name.lower()
        new = arriving.get(key)
        if new is None:
            if key not in already_absent:
                changes.append(SchemaChange(column=field.name, change="dropped", before=str(field.type)))
            rewrite = rewrite or not field.nullable
            fields.append(field.with_nullable(True))
            continue
        if key in already_absent:
            changes.append(SchemaChange(column=field.name, change="added", after=str(new.type)))
        nullable = field.nullable or new.nullable
        rewrite = rewrite or nullable != field.nullable
        old_type, new_type = canonical(field.type), canonical(new.type)
        if holds(old_type, new_type):
            fields.append(field.with_nullable(nullable))
        elif holds(new_type, old_type):
            changes.append(
                SchemaChange(column=field.name, change="type_changed", before=str(field.type), after=str(new.type))
            )
            fields.append(pa.field(field.name, new.type, nullable=nullable))
            rewrite = True
        else:
            refused.append((field.name, field.type, new.type))
    if refused:
        raise incompatible(table, refused)
    added = [field for field in incoming if field.name.lower() not in known]
    for field in added:
        changes.append(SchemaChange(column=field.name, change="added", after=str(field.type)))
        # Rows already in the table have no value here.
        fields.append(field.with_nullable(True))
    absent = tuple(field.name for field in existing if field.name.lower() not in arriving)
    return Drift(pa.schema(fields), tuple(changes), tuple(f.name for f in added), rewrite, absent)


def incompatible(table: str, columns: Sequence[tuple[str, pa.DataType, pa.DataType]]) -> WarehouseError:
    """The refusal of type changes a table cannot take: each column's old and new type, and the choices."""
    listed = "; ".join(f"column {name!r} was {old} and is now {new}" for name, old, new in columns)
    return WarehouseError(
        f"the source changed column types of {table} in ways the table cannot take without losing data: "
        f"{listed}. Nothing was loaded. Either run a full sync to replace the table with the new types, or cast "
        "the columns back to their old types at the source (for example, sync a view that casts them)"
    )


def _differences(existing: pa.Schema, incoming: pa.Schema) -> tuple[SchemaChange, ...]:
    """Everything a replacement changes: columns added, dropped, and types that differ."""
    before = {field.name.lower(): field for field in existing}
    after = {field.name.lower(): field for field in incoming}
    changes = [
        SchemaChange(column=field.name, change="added", after=str(field.type))
        for field in incoming
        if field.name.lower() not in before
    ]
    changes += [
        SchemaChange(column=field.name, change="dropped", before=str(field.type))
        for field in existing
        if field.name.lower() not in after
    ]
    changes += [
        SchemaChange(column=field.name, change="type_changed", before=str(old.type), after=str(field.type))
        for field in incoming
        if (old := before.get(field.name.lower())) is not None and canonical(old.type) != canonical(field.type)
    ]
    return tuple(changes)


def align(batch: pa.RecordBatch, schema: pa.Schema) -> pa.RecordBatch:
    """`batch` with `schema`'s columns in its order (names matched without regard to case): missing ones
    NULL, narrower ones widened."""
    positions = {name.lower(): index for index, name in enumerate(batch.schema.names)}
    columns: list[pa.Array] = []
    for field in schema:
        index = positions.get(field.name.lower(), -1)
        if index < 0:
            columns.append(pa.nulls(batch.num_rows, field.type))
            continue
        column = batch.column(index)
        columns.append(column if column.type == field.type else column.cast(field.type, safe=True))
    return pa.RecordBatch.from_arrays(columns, schema=schema)
