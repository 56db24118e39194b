"""Schema drift between a run's columns and the table it lands in.

    at the source, compared with the table        incremental / merge                full
    a new column                                  ALTER TABLE ... ADD COLUMNS        the table is replaced
    a column that is gone                         kept; NULL in the new rows         the table is replaced
    a type the table's column holds exactly       kept (INSERT widens it)            the table is replaced
    (int → bigint, float → double, a decimal
    with no fewer integer or fraction digits)
    any other type change                         refused, naming the column and     the table is replaced
                                                  the choices; nothing changes

Names are compared without regard to case, as Databricks does. Which types hold which, and the
refusal, are the local lakehouse's (`schemadrift.holds`, `schemadrift.incompatible`).
"""

from __future__ import annotations

from dataclasses import dataclass

import pyarrow as pa
from lakegate.common.contracts.runs import SchemaChange, TableRef
from lakegate.loader import schemadrift
from lakegate.loader.schemadrift import canonical


def _normal(type_: pa.DataType) -> pa.DataType:
    """Types as the warehouse reports them: instants in microseconds, any time zone UTC."""
    type_ = canonical(type_)
    if pa.types.is_timestamp(type_):
        return pa.timestamp("us", tz="UTC" if type_.tz is not None else None)
    return type_


def holds(table: pa.DataType, source: pa.DataType) -> bool:
    """True when a column of type `table` takes every value of type `source` exactly."""
    return schemadrift.holds(_normal(table), _normal(source))


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


def refuse_incompatible(drift: Drift, target: TableRef) -> None:
    """Fail before anything changes when a column's new type would not fit the table."""
    bad = drift.incompatible()
    if bad:
        raise schemadrift.incompatible(str(target), [(source.name, table.type, source.type) for table, source in bad])
