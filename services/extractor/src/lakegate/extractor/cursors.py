"""Cursors: the column whose growth marks new or changed rows, the rows past a stored value, the new high-water mark.

When the caller names no column, one is inferred, the first that fits of:

    1. a NOT NULL timestamp or timestamptz column named like `updated_at` (`CURSOR_NAMES`, in that order)
    2. such a column that may be NULL
    3. a single-column smallint / integer / bigint primary key that is serial or an identity

A named column may be smallint, integer, bigint, numeric, date, timestamp, timestamptz, text or
varchar (or a domain over one of them). A stored cursor (`since`) keeps its column: an incremental
or merge run that names another column is refused, because the stored value says nothing about that
column. A full run needs no cursor and reports one only for the runs after it, so it never fails
over one: a named column that cannot be a cursor gives way to inference, and none is fine.

Rows past `since` are `<column> > <literal>`. The stored text is parsed as the column's type and the
literal is rendered from the parsed value, so no stored text reaches SQL unchecked; only a text
cursor is pasted, as a quoted literal, and it is compared byte-wise (`COLLATE "C"`), the order in
which the greatest value is picked from the extracted rows too. ADBC cannot bind parameters to the
streaming COPY that reads a table, hence literals.

Rows whose cursor is NULL never pass `>`: an incremental or merge sync does not pick them up after
the first run (a full sync does).

Rows committed late. A cursor value is written when a row is, but the row becomes visible when its
transaction commits: a transaction that sets `updated_at = now()` (or takes a serial id) and
commits after a run read the table holds a value at or below the cursor that run stored, and
`> since` alone would never read it. So a stored cursor also keeps the snapshot of the run that
reached it (`Cursor.snapshot`, `pg_current_snapshot()` as text), and the next run reads, besides the
rows past `since`, the rows within a look-back window below it (`late_commit_seconds` for timestamp
and date cursors, `late_commit_ids` for integer ones) whose writing transaction (`xmin`) that
snapshot could not see:

    <c> > <since - window> AND (<c> > <since> OR <xmin not visible in the stored snapshot>)

Each such row is read exactly once: the snapshot that reads it is stored with the next cursor, and
it sees the row. `xmin` is a 32-bit id; it is widened to the 64-bit `xid8` against the reading
snapshot's `xmax` (rows whose id is more than 2^31 behind it are old and were visible). Views and
foreign tables have no `xmin`, decimal and text cursors no window, and sources before PostgreSQL 13
no `pg_snapshot`: they read `> since` only. A row that commits later than the window misses it.

The canonical text of a value (`Cursor.value`): integers and decimals as digits, timestamptz as the
UTC instant in ISO 8601 with `+00:00`, timestamp in ISO 8601 without offset, date as YYYY-MM-DD,
text as it is.
"""

from __future__ import annotations

import datetime as dt
import logging
import math
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation

import asyncpg
import pyarrow as pa
import pyarrow.compute as pc
from lakegate.common.contracts.runs import Cursor, SyncMode
from lakegate.common.errors import InvalidInput, NotFound
from lakegate.extractor.config import ExtractorSettings
from lakegate.extractor.introspection import Relation
from lakegate.extractor.query import TableQuery, quote_ident
from lakegate.extractor.typemap import ColumnPlan

log = logging.getLogger(__name__)

#: Names that say "this column changes when the row does", most telling first (compared ignoring case).
CURSOR_NAMES = (
    "updated_at",
    "modified_at",
    "last_modified",
    "last_modified_at",
    "last_updated",
    "last_updated_at",
    "updated_on",
    "modified_on",
    "updated",
    "modified",
)

#: The `pg_catalog` types a cursor column may have, and the kind of value each holds.
CURSOR_TYPES: dict[str, str] = {
    "int2": "integer",
    "int4": "integer",
    "int8": "integer",
    "numeric": "decimal",
    "date": "date",
    "timestamp": "timestamp",
    "timestamptz": "timestamptz",
    "text": "text",
    "varchar": "text",
}
_TIMESTAMPS = ("timestamp", "timestamptz")
_INTEGERS = ("int2", "int4", "int8")
_ACCEPTED = "smallint, integer, bigint, numeric, date, timestamp, timestamptz, text or varchar"
_INTEGER = re.compile(r"^-?[0-9]{1,20}$")
_DECIMAL = re.compile(r"^-?[0-9]+(\.[0-9]+)?$")

_GENERATED = """
SELECT a.attidentity <> '' OR COALESCE(pg_catalog.pg_get_expr(d.adbin, d.adrelid) LIKE 'nextval(%', false)
FROM pg_catalog.pg_attribute a
LEFT JOIN pg_catalog.pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum
WHERE a.attrelid = $1 AND a.attname = $2 AND a.attnum > 0 AND NOT a.attisdropped
"""

CursorValue = int | Decimal | dt.datetime | dt.date | str

#: A snapshot as `pg_current_snapshot()::text` writes it: `xmin:xmax:xip,...`.
_SNAPSHOT = re.compile(r"^[0-9]{1,20}:[0-9]{1,20}:([0-9]{1,20}(,[0-9]{1,20})*)?$")
_XMAX = "pg_catalog.pg_snapshot_xmax(pg_catalog.pg_current_snapshot())::text::int8"


@dataclass(frozen=True)
class LateWindow:
    """How far below a stored cursor a run looks for rows committed late (0: not at all)."""

    seconds: float = 0.0
    ids: int = 0


def written_unseen_by(snapshot: str) -> str:
    """SQL: the row's writing transaction is one `snapshot` could not see (it was running or later)."""
    if not _SNAPSHOT.match(snapshot):
        raise InvalidInput(f"stored snapshot {snapshot[:60]!r} is not a PostgreSQL snapshot; run a full sync")
    behind = f"((({_XMAX}) - xmin::text::int8) % 4294967296 + 4294967296) % 4294967296"
    return (
        f"({behind} < 2147483648 AND NOT pg_catalog.pg_visible_in_snapshot("
        f"(({_XMAX}) - {behind})::text::pg_catalog.xid8, '{snapshot}'::pg_catalog.pg_snapshot))"
    )


@dataclass(frozen=True)
class CursorColumn:
    """The cursor column of one table: how its values are compared, picked and written as text."""

    table: str
    plan: ColumnPlan
    base_type: str

    @property
    def name(self) -> str:
        return self.plan.name

    @property
    def kind(self) -> str:
        return CURSOR_TYPES[self.base_type]

    def parse(self, text: str) -> CursorValue:
        """A canonical text as a value of this column's kind; `InvalidInput` when it is not one."""
        try:
            return self._parse(text)
        except (ValueError, InvalidOperation) as exc:
            raise InvalidInput(
                f"the stored cursor {text!r} of {self.table} cannot be compared with column {self.name} "
                f"({self.plan.source_type}), whose type must have changed: run a full sync to start the cursor again"
            ) from exc

    def _parse(self, text: str) -> CursorValue:
        kind = self.kind
        if kind == "integer":
            if not _INTEGER.match(text):
                raise ValueError(text)
            return int(text)
        if kind == "decimal":
            if not _DECIMAL.match(text):
                raise ValueError(text)
            return Decimal(text)
        if kind == "timestamptz":
            instant = dt.datetime.fromisoformat(text)
            return (instant if instant.tzinfo else instant.replace(tzinfo=dt.UTC)).astimezone(dt.UTC)
        if kind == "timestamp":
            moment = dt.datetime.fromisoformat(text)
            return moment.astimezone(dt.UTC).replace(tzinfo=None) if moment.tzinfo else moment
        if kind == "date":
            return dt.date.fromisoformat(text)
        if "\x00" in text:
            raise ValueError("NUL in a text cursor")
        return text

    def text(self, value: CursorValue) -> str:
        """The canonical text of a value of this column."""
        if isinstance(value, dt.datetime) and value.tzinfo is not None:
            return value.astimezone(dt.UTC).isoformat()
        if isinstance(value, dt.date):
            return value.isoformat()
        if isinstance(value, Decimal):
            return format(value, "f")
        return str(value)

    def literal(self, value: CursorValue) -> str:
        """`value` as an SQL literal of the column's type, rendered from the parsed value."""
        if self.kind == "integer":
            return str(int(value))  # type: ignore[arg-type]
        if self.kind == "text":
            return "'" + str(value).replace("'", "''") + "'"
        return f"'{self.text(value)}'::pg_catalog.{self.base_type}"

    def after(self, since: Cursor, late: LateWindow | None = None) -> str:
        """The condition that keeps the rows past `since`, and those committed late within the `late` window."""
        column = quote_ident(self.name)
        if self.kind == "text":
            column += ' COLLATE "C"'
        value = self.parse(since.value)
        past = f"{column} > {self.literal(value)}"
        lowest = self._window_start(value, late) if late is not None else None
        if lowest is None or since.snapshot is None:
            return past
        return f"{column} > {self.literal(lowest)} AND ({past} OR {written_unseen_by(since.snapshot)})"

    def _window_start(self, value: CursorValue, late: LateWindow) -> CursorValue | None:
        """The lowest cursor value the look-back reaches; None when this cursor has no window."""
        if isinstance(value, int) and self.kind == "integer" and late.ids > 0:
            return max(value - late.ids, -(2**63))
        if late.seconds <= 0 or not isinstance(value, dt.date):
            return None
        if isinstance(value, dt.datetime):
            try:
                return value - dt.timedelta(seconds=late.seconds)
            except OverflowError:
                return dt.datetime.min.replace(tzinfo=value.tzinfo)
        try:
            return value - dt.timedelta(days=math.ceil(late.seconds / 86400))
        except OverflowError:
            return dt.date.min

    def greatest_in(self, values: pa.Array | pa.ChunkedArray) -> CursorValue | None:
        """The greatest non-null value of this column in extracted values; None when there is none."""
        if self.kind == "decimal" and pa.types.is_string(values.type):
            # An unconstrained numeric is read as its exact text: compare the numbers, not the text.
            numbers = (Decimal(text) for text in values.to_pylist() if text is not None)
            return max((number for number in numbers if number.is_finite()), default=None)
        found: CursorValue | None = pc.max(values).as_py()
        if isinstance(found, dt.datetime) and found.tzinfo is not None:
            return found.astimezone(dt.UTC)
        if isinstance(found, Decimal) and not found.is_finite():
            return None
        return found

    def at_least(self, since: Cursor | None, found: CursorValue | None, snapshot: str | None) -> Cursor | None:
        """The cursor a run reports: the greater of `since` and the greatest value it read (late rows may all lie
        below `since`), with the snapshot it read in."""
        values = [found, self.parse(since.value) if since is not None else None]
        greatest = self.greatest(values)
        if greatest is None:
            return None
        return self.cursor(greatest).model_copy(update={"snapshot": snapshot})

    def greatest(self, values: Iterable[CursorValue | None]) -> CursorValue | None:
        """The greatest of several values (e.g. of several ranges); None when all are None."""
        present = [value for value in values if value is not None]
        return max(present) if present else None

    def cursor(self, value: CursorValue) -> Cursor:
        """A value of this column as the `Cursor` a run reports."""
        return Cursor(column=self.name, value=self.text(value), source_type=self.plan.source_type)


def late_window(relation: Relation, settings: ExtractorSettings) -> LateWindow | None:
    """The look-back for rows committed late; None for views and foreign tables, whose rows have no `xmin`."""
    if relation.kind not in ("r", "p", "m"):
        return None
    return LateWindow(settings.late_commit_seconds, settings.late_commit_ids)


def named_cursor(query: TableQuery, column: str, *, stored: bool = False) -> CursorColumn:
    """The column called exactly `column` as a cursor; refused when the table has no such column or its type
    cannot be one. `stored`: the name comes from the stored cursor, not from the caller."""
    table = query.qualified
    plan = query.plan(column)
    whose = "the stored cursor's column" if stored else "cursor_column"
    if plan is None:
        fix = "run a full sync to start the cursor again, or name another cursor_column" if stored else "name one"
        raise NotFound(
            f"{whose} {column!r} is not a column of {table} (names are case-sensitive); {fix} of: {_candidates(query)}"
        )
    if plan.base_type is None or plan.base_type not in CURSOR_TYPES:
        raise InvalidInput(
            f"{whose} {column!r} of {table} is {plan.source_type}, which cannot be a cursor: a cursor column "
            f"must be {_ACCEPTED}; columns of {table} that can: {_candidates(query)}"
        )
    return CursorColumn(table, plan, plan.base_type)


async def choose_cursor(
    conn: asyncpg.Connection,
    relation: Relation,
    key: Sequence[str],
    *,
    mode: SyncMode,
    requested: str | None,
    since: Cursor | None,
) -> CursorColumn | None:
    """The cursor column of a run: named, kept from the stored cursor, or inferred.

    A full sync needs no cursor: it reports one only so that an incremental run after it can go on
    from there. So where an incremental or merge sync is refused, a full sync goes on without a
    cursor, or with the inferred one when the named column cannot be one (it may be the stored
    cursor's column, dropped at the source since).
    """
    query = relation.query
    if mode == "full" and requested:
        try:
            return named_cursor(query, requested)
        except (InvalidInput, NotFound) as exc:
            log.warning("full sync of %s goes on with an inferred cursor: %s", query.qualified, exc)
            requested = None
    stored = since.column if since is not None and mode != "full" else None
    if requested and stored and requested != stored:
        raise InvalidInput(
            f"the stored cursor of {query.qualified} is on column {stored!r} (at {since.value if since else ''}), "
            f"but this run asks for cursor_column {requested!r}: leave cursor_column out to go on from the stored "
            f"cursor, or run a full sync with cursor_column {requested!r} to start a cursor on it"
        )
    if requested:
        return named_cursor(query, requested)
    if stored:
        return named_cursor(query, stored, stored=True)
    generated = len(key) == 1 and bool(await conn.fetchval(_GENERATED, relation.oid, key[0]))
    found = inferred_cursor(query, key, generated_key=generated)
    if found is None and mode != "full":
        raise InvalidInput(
            f"cannot tell which column of {query.qualified} marks new or changed rows for a {mode} sync: it has "
            f"no timestamp column named {', '.join(CURSOR_NAMES[:4])} or the like, and no serial or identity "
            f"integer primary key; pass cursor_column, one of: {_candidates(query)}"
        )
    return found


def inferred_cursor(query: TableQuery, key: Sequence[str], *, generated_key: bool) -> CursorColumn | None:
    """The cursor lakegate picks by itself (see the module docstring); None when nothing fits."""
    named = sorted(
        (plan for plan in query.plans if plan.base_type in _TIMESTAMPS and plan.name.lower() in CURSOR_NAMES),
        key=lambda plan: CURSOR_NAMES.index(plan.name.lower()),
    )
    ordered = [plan for plan in named if not plan.nullable] + [plan for plan in named if plan.nullable]
    if ordered:
        return named_cursor(query, ordered[0].name)
    key_plan = query.plan(key[0]) if generated_key else None
    if key_plan is not None and key_plan.base_type in _INTEGERS:
        return named_cursor(query, key_plan.name)
    return None


def _candidates(query: TableQuery) -> str:
    found = [f"{plan.name} ({plan.source_type})" for plan in query.plans if plan.base_type in CURSOR_TYPES]
    return ", ".join(found) if found else f"none: it has no column of a type a cursor can be ({_ACCEPTED})"
