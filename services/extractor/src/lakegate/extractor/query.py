"""The one statement that reads a table, and how its result becomes the warehouse's batches.

Every identifier is quoted with `quote_ident`; nothing a user typed is pasted into SQL. When the
table has array columns, one extra trailing column says which array (if any) holds more than one
dimension in a row, because ADBC would flatten such a value without a word. Conditions (a range of
a large table, rows past a cursor) are SQL that `ranges.py` and `cursors.py` build from quoted
identifiers and literals rendered from parsed values.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, replace
from functools import cached_property

import pyarrow as pa
from lakegate.common.errors import InvalidInput, SourceError
from lakegate.extractor.typemap import ColumnPlan, cast_column

_CHECK_COLUMN = '"lakegate.nested_array"'


def quote_ident(name: str) -> str:
    """Quote a PostgreSQL identifier, always: `a"b` becomes `"a""b"`."""
    if not name or "\x00" in name:
        raise InvalidInput(f"{name!r} cannot be a PostgreSQL identifier")
    return '"' + name.replace('"', '""') + '"'


@dataclass(frozen=True)
class TableQuery:
    """Reading one table: the SELECT, and turning its batches into the planned schema."""

    schema_name: str
    table: str
    plans: tuple[ColumnPlan, ...]
    conditions: tuple[str, ...] = ()

    @property
    def qualified(self) -> str:
        """`schema.table`, for messages."""
        return f"{self.schema_name}.{self.table}"

    def where(self, *conditions: str) -> TableQuery:
        """The same read, limited to rows that meet every condition as well."""
        return replace(self, conditions=self.conditions + conditions)

    def plan(self, column: str) -> ColumnPlan | None:
        """The plan of the column named exactly `column`, if the table has one."""
        return next((plan for plan in self.plans if plan.name == column), None)

    @cached_property
    def schema(self) -> pa.Schema:
        """The Arrow schema of every batch: plain types, no metadata, nullability of the columns."""
        return pa.schema([plan.field for plan in self.plans])

    @property
    def _arrays(self) -> list[int]:
        return [i for i, plan in enumerate(self.plans) if plan.is_array]

    @property
    def sql(self) -> str:
        """SELECT every column, mapped, from the quoted table."""
        items = [plan.expression(quote_ident(plan.name)) for plan in self.plans]
        if self._arrays:
            whens = " ".join(
                f"WHEN pg_catalog.array_ndims({quote_ident(self.plans[i].name)}) > 1 THEN {i}" for i in self._arrays
            )
            items.append(f"CASE {whens} END AS {_CHECK_COLUMN}")
        table = f"{quote_ident(self.schema_name)}.{quote_ident(self.table)}"
        where = f" WHERE {' AND '.join(f'({condition})' for condition in self.conditions)}" if self.conditions else ""
        return f"SELECT {', '.join(items)} FROM {table}{where}"

    def convert(self, batch: pa.RecordBatch) -> pa.RecordBatch:
        """A batch as ADBC read it → the same rows in `schema`."""
        if self._arrays:
            self._refuse_nested_arrays(batch.column(batch.num_columns - 1))
        columns = []
        for i, plan in enumerate(self.plans):
            try:
                columns.append(cast_column(batch.column(i), plan))
            except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as exc:
                raise SourceError(
                    f"column {plan.name} ({plan.source_type}) of {self.qualified} holds a value that "
                    f"{plan.arrow_type} cannot hold ({exc}); sync it as text through a view, e.g. "
                    f"SELECT {plan.name}::text AS {plan.name}, ..."
                ) from exc
        return pa.RecordBatch.from_arrays(columns, schema=self.schema)

    def _refuse_nested_arrays(self, check: pa.Array) -> None:
        hits = check.drop_null()
        if len(hits):
            plan = self.plans[hits[0].as_py()]
            raise SourceError(
                f"column {plan.name} ({plan.source_type}) of {self.qualified} holds a multi-dimensional array, "
                "which lakegate cannot sync as a list: declare the column with its dimensions "
                f"(e.g. {plan.source_type}[]) to sync it as text, or sync it through a view that casts it to text"
            )


def bounded(batch: pa.RecordBatch, max_rows: int, max_bytes: int) -> Iterator[pa.RecordBatch]:
    """Cut a batch into slices of at most `max_rows` rows and about `max_bytes` bytes; skip empty ones."""
    rows = batch.num_rows
    if rows == 0:
        return
    bytes_per_row = max(1.0, batch.nbytes / rows)
    step = max(1, min(max_rows, int(max_bytes // bytes_per_row)))
    for offset in range(0, rows, step):
        yield batch.slice(offset, step)
