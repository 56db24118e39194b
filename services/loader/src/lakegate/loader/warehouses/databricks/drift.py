"""Schema drift between a run's columns and the table it lands in.

    at the source, compared with the table        incremental / merge                full
    a new column                                  ALTER TABLE ... ADD COLUMNS        the table is replaced
    a column that is gone                         kept; NULL in the new rows         the table is replaced
    a type the table's column holds exactly       kept (INSERT widens it)            the table is replaced
    (int → bigint, float → double, a decimal
    with no fewer integer or fraction digits)
    any other type change                         refused, naming the column and     the table is replaced
                                                  the choices; nothing changes

Names are compared without regard to case, as Databricks does.
"""

from __future__ import annotations

from dataclasses import dataclass

import pyarrow as pa
from lakegate.common.contracts.runs import SchemaChange, TableRef
from lakegate.common.errors import InvalidInput

_INTEGERS = (pa.int8(), pa.int16(), pa.int32(), pa.int64())


def _normal(type_: pa.DataType) -> pa.DataType:
    """Types as the warehouse reports them: any time zone is UTC, large and small variants alike."""
    if pa.types.is_timestamp(type_):
        return pa.timestamp("us", tz="UTC" if type_.tz is not None else None)
    if pa.types.is_large_string(type_):
        return pa.string()
    if pa.types.is_large_binary(type_):
        return pa.binary()
    return type_


def holds(table: pa.DataType, source: pa.DataType) -> bool:
    """True when a column of type `table` takes every value of type `source` exactly."""
    table, source = _normal(table), _normal(source)
    if table == source or pa.types.is_null(source):
        return True
    if table in _INTEGERS and source in _INTEGERS:
        return _INTEGERS.index(table) >= _INTEGERS.index(source)
    if pa.types.is_float64(table) and (pa.types.is_float32(source) or source in _INTEGERS[:3]):
        return True
    if pa.types.is_decimal(table) and pa.types.is_decimal(source):
        return bool(table.scale >= source.scale and table.precision - table.scale >= source.precision - source.scale)
    return False


@dataclass(frozen=True)
class Drift:
    """How a run's columns differ from its table's."""

    added: tuple[pa.Field, ...]
    dropped: tuple[pa.Field, ...]
    retyped: tuple[tuple[pa.Field, pa.Field], ...]  # (table's, source's)

    def changes(self) -> list[SchemaChange]:
        """As reported on the run."""
        found = [SchemaChange(column=f.name, change="added", after=str(f.type)) for f in self.added]
        found += [SchemaChange(column=f.name, change="dropped", before=str(f.type)) for f in self.dropped]
        found += [
            SchemaChange(column=s.name, change="type_changed", before=str(t.type), after=str(s.type))
            for t, s in self.retyped
        ]
        return found

    def incompatible(self) -> list[tuple[pa.Field, pa.Field]]:
        """Type changes the table cannot take without losing data."""
        return [(t, s) for t, s in self.retyped if not holds(t.type, s.type)]


def compare(table: pa.Schema, source: pa.Schema) -> Drift:
    """The drift from `table` (what exists) to `source` (what the run brings)."""
    existing = {f.name.lower(): f for f in table}
    incoming = {f.name.lower(): f for f in source}
    added = tuple(f for f in source if f.name.lower() not in existing)
    dropped = tuple(f for f in table if f.name.lower() not in incoming)
    retyped = tuple(
        (existing[f.name.lower()], f)
        for f in source
        if f.name.lower() in existing and _normal(existing[f.name.lower()].type) != _normal(f.type)
    )
    return Drift(added, dropped, retyped)


def refuse_incompatible(drift: Drift, target: TableRef, mode: str) -> None:
    """Fail before anything changes when a column's new type would not fit the table."""
    bad = drift.incompatible()
    if not bad:
        return
    table, source = bad[0]
    raise InvalidInput(
        f"column {source.name!r} of {target} is {table.type} in the table but {source.type} at the source, which "
        f"the table cannot hold; nothing was changed. Choose: run a full sync to replace {target} with the new "
        f"type, or change the source column back (or sync it through a view that casts it), then run the "
        f"{mode} sync again"
    )
