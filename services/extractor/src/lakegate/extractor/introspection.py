"""What a source database holds: its tables and views, their columns, and how each is mapped.

Everything is read from `pg_catalog` with bound parameters, never by pasting names into SQL.
Listed are tables, partitioned tables (not their partitions), views, materialized views and
foreign tables of every non-system schema that the user may read.
"""

from __future__ import annotations

import difflib
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import asyncpg
from lakegate.common.contracts.sources import (
    ConnectionStatus,
    SourceTable,
    SourceTables,
)
from lakegate.common.errors import NotFound, SourceError
from lakegate.common.names import SourceTableName
from lakegate.extractor.config import ExtractorSettings
from lakegate.extractor.connections import connect, where
from lakegate.extractor.logins import Credentials, Login
from lakegate.extractor.query import TableQuery
from lakegate.extractor.typemap import ColumnPlan, PgType, plan_column

KINDS = {"r": "table", "p": "partitioned table", "v": "view", "m": "materialized view", "f": "foreign table"}
#: How many table names a "not found" message offers.
SUGGESTIONS = 20
#: How many table names are compared with a name that was not found.
NAMES_COMPARED = 5_000

_USER_RELATIONS = """
    c.relkind IN ('r', 'p', 'v', 'm', 'f')
    AND NOT c.relispartition
    AND n.nspname <> 'information_schema' AND n.nspname NOT LIKE 'pg\\_%'
    AND pg_catalog.has_schema_privilege(n.oid, 'USAGE')
    AND pg_catalog.has_any_column_privilege(c.oid, 'SELECT')
"""

_TABLES = f"""
SELECT c.oid, n.nspname, c.relname, c.relkind,
       CASE WHEN c.relkind IN ('v', 'f') OR c.reltuples < 0 THEN -1 ELSE c.reltuples::int8 END AS estimate
FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
WHERE {_USER_RELATIONS}
ORDER BY n.nspname, c.relname
"""

_ONE_TABLE = """
SELECT c.oid, c.relkind, GREATEST(c.relpages, 0)::int8 AS pages
FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
WHERE n.nspname = $1 AND c.relname = $2 AND c.relkind IN ('r', 'p', 'v', 'm', 'f')
"""

_TABLE_NAMES = f"""
SELECT n.nspname, c.relname
FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
WHERE {_USER_RELATIONS}
ORDER BY n.nspname, c.relname
LIMIT {NAMES_COMPARED}
"""

_COLUMNS = """
SELECT a.attrelid, a.attname, a.atttypid, a.atttypmod, a.attndims, NOT a.attnotnull AS nullable,
       pg_catalog.format_type(a.atttypid, a.atttypmod) AS type,
       pg_catalog.has_column_privilege(a.attrelid, a.attnum, 'SELECT') AS readable
FROM pg_catalog.pg_attribute a
WHERE a.attrelid = ANY($1::pg_catalog.oid[]) AND a.attnum > 0 AND NOT a.attisdropped
ORDER BY a.attrelid, a.attnum
"""

_TYPES = """
SELECT t.oid, n.nspname, t.typname, t.typtype, t.typcategory, t.typelem, t.typbasetype, t.typtypmod
FROM pg_catalog.pg_type t JOIN pg_catalog.pg_namespace n ON n.oid = t.typnamespace
WHERE t.oid = ANY($1::pg_catalog.oid[])
"""

_CAN_WRITE = """
SELECT r.rolsuper OR EXISTS (
    SELECT 1 FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
    WHERE c.relkind IN ('r', 'p', 'f')
      AND n.nspname <> 'information_schema' AND n.nspname NOT LIKE 'pg\\_%'
      AND pg_catalog.has_table_privilege(c.oid, 'INSERT, UPDATE, DELETE, TRUNCATE')
)
FROM pg_catalog.pg_roles r WHERE r.rolname = current_user
"""


async def load_types(conn: asyncpg.Connection, oids: Iterable[int]) -> dict[int, PgType]:
    """The types with these oids, plus the bases of domains and the elements of arrays among them."""
    types: dict[int, PgType] = {}
    wanted = set(oids)
    while wanted:
        rows = await conn.fetch(_TYPES, sorted(wanted))
        for row in rows:
            types[row["oid"]] = PgType(
                oid=row["oid"],
                schema=row["nspname"],
                name=row["typname"],
                kind=row["typtype"].decode() if isinstance(row["typtype"], bytes) else row["typtype"],
                category=row["typcategory"].decode() if isinstance(row["typcategory"], bytes) else row["typcategory"],
                element=row["typelem"],
                base=row["typbasetype"],
                base_typmod=row["typtypmod"],
            )
        found = {pg_type.base for pg_type in types.values() if pg_type.kind == "d"}
        found |= {pg_type.element for pg_type in types.values() if pg_type.is_array}
        wanted = {oid for oid in found if oid and oid not in types}
    return types


async def plans_of(conn: asyncpg.Connection, relids: Sequence[int]) -> dict[int, list[tuple[ColumnPlan, bool]]]:
    """Each relation's mapped columns, each with whether the user may read it."""
    rows = await conn.fetch(_COLUMNS, list(relids))
    types = await load_types(conn, {row["atttypid"] for row in rows})
    plans: dict[int, list[tuple[ColumnPlan, bool]]] = {relid: [] for relid in relids}
    for row in rows:
        plan = plan_column(
            row["attname"],
            row["atttypid"],
            row["atttypmod"],
            source_type=row["type"],
            nullable=row["nullable"],
            dimensions=row["attndims"],
            types=types,
        )
        plans[row["attrelid"]].append((plan, row["readable"]))
    return plans


async def list_tables(conn: asyncpg.Connection) -> SourceTables:
    """Every table and view the user may read, with its columns and their mapping."""
    rows = await conn.fetch(_TABLES)
    plans = await plans_of(conn, [row["oid"] for row in rows])
    return SourceTables(
        tables=[
            SourceTable(
                schema_name=row["nspname"],
                name=row["relname"],
                kind=KINDS[pg_char(row["relkind"])],
                row_estimate=row["estimate"],
                columns=[plan.as_source_column() for plan, _readable in plans[row["oid"]]],
            )
            for row in rows
        ]
    )


@dataclass(frozen=True)
class Relation:
    """A table or view found in the source, and how to read it."""

    oid: int
    kind: str  # relkind: r table, p partitioned table, v view, m materialized view, f foreign table
    pages: int  # relpages: PostgreSQL's estimate of the size in blocks, 0 until VACUUM or ANALYZE ran
    query: TableQuery

    @property
    def name(self) -> str:
        return self.query.qualified


async def resolve_table(conn: asyncpg.Connection, name: SourceTableName, source: str) -> Relation:
    """Find exactly `schema.table` and plan how to read it; `source` names the source in errors."""
    found = await conn.fetchrow(_ONE_TABLE, name.schema, name.table)
    if found is None:
        raise NotFound(await not_found_message(conn, name, source))
    columns = (await plans_of(conn, [found["oid"]]))[found["oid"]]
    unreadable = [plan.name for plan, readable in columns if not readable]
    if unreadable:
        user = await conn.fetchval("SELECT current_user")
        what = f"table {name}" if len(unreadable) == len(columns) else f"columns {', '.join(unreadable)} of {name}"
        raise SourceError(
            f"user '{user}' may not read {what} in {source}: ask the owner to GRANT SELECT ON {name} TO {user}"
        )
    if not columns:
        raise SourceError(f"{name} in {source} has no columns to sync")
    query = TableQuery(name.schema, name.table, tuple(plan for plan, _readable in columns))
    return Relation(found["oid"], pg_char(found["relkind"]), found["pages"], query)


async def not_found_message(conn: asyncpg.Connection, name: SourceTableName, source: str) -> str:
    """`table X was not found in <source>`, with the closest names there first."""
    rows = await conn.fetch(_TABLE_NAMES)
    names = [f"{row['nspname']}.{row['relname']}" for row in rows]
    if not names:
        return f"table {name} was not found in {source}, which has no tables this user may read"
    ranked = closest(str(name), names)
    more = " and more" if len(names) > SUGGESTIONS else ""
    return (
        f"table {name} was not found in {source} (names are case-sensitive; the schema defaults to public); "
        f"tables there include: {', '.join(ranked[:SUGGESTIONS])}{more}"
    )


def closest(wanted: str, names: Sequence[str]) -> list[str]:
    """`names` with the ones most like `wanted` (ignoring case, with or without schema) first."""
    folded = wanted.lower()
    table = folded.rsplit(".", 1)[-1]

    def likeness(candidate: str) -> float:
        lowered = candidate.lower()
        return max(
            difflib.SequenceMatcher(None, folded, lowered).ratio(),
            difflib.SequenceMatcher(None, table, lowered.rsplit(".", 1)[-1]).ratio(),
        )

    scores = {candidate: likeness(candidate) for candidate in names}
    return sorted(names, key=lambda candidate: (-round(scores[candidate], 3), candidate))


def pg_char(value: str | bytes) -> str:
    """A PostgreSQL `"char"` as asyncpg hands it over."""
    return value.decode() if isinstance(value, bytes) else value


async def connection_status(conn: asyncpg.Connection) -> ConnectionStatus:
    """Who we are on the server, its version, whether we could write, and a round-trip time."""
    started = time.perf_counter()
    await conn.fetchval("SELECT 1")
    latency_ms = (time.perf_counter() - started) * 1000
    version = int(await conn.fetchval("SELECT pg_catalog.current_setting('server_version_num')"))
    row = await conn.fetchrow("SELECT current_database() AS database, current_user AS user")
    assert row is not None
    can_write = bool(await conn.fetchval(_CAN_WRITE))
    return ConnectionStatus(
        ok=True,
        server_version=_version_text(version),
        database=row["database"],
        user=row["user"],
        read_only=not can_write,
        latency_ms=round(latency_ms, 3),
    )


def _version_text(number: int) -> str:
    """`150018` → `15.18`; before PostgreSQL 10 versions had three parts: `90624` → `9.6.24`."""
    if number >= 100000:
        return f"{number // 10000}.{number % 10000}"
    return f"{number // 10000}.{number // 100 % 100}.{number % 100}"


async def check_source(login: Login, settings: ExtractorSettings) -> ConnectionStatus:
    """Connect with a login and report what the connection can do."""
    async with connect(login, settings) as conn:
        return await connection_status(conn)


async def check_registered(credentials: Credentials, settings: ExtractorSettings) -> ConnectionStatus:
    """Connect to a registered source with its stored credentials and report what the connection can do."""
    async with connect(credentials.login, settings, source=credentials.source.name) as conn:
        return await connection_status(conn)


async def source_tables(credentials: Credentials, settings: ExtractorSettings) -> SourceTables:
    """The tables of a registered source."""
    async with connect(credentials.login, settings, source=credentials.source.name) as conn:
        return await list_tables(conn)


def describe_source(credentials: Credentials) -> str:
    """`source 'shop' (db:5432/shop)`, for messages."""
    return f"source '{credentials.source.name}' ({where(credentials.login.address)})"
