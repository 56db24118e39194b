"""The database's walls around `source_query`: what holds even if the parser guard let something through.

`guard.py` decides what SQL may be sent; this module runs it so that the database itself refuses
anything but reading:

1. The session is opened with `default_transaction_read_only=on`, `statement_timeout`,
   `lock_timeout`, `idle_in_transaction_session_timeout` and `standard_conforming_strings=on`,
   sent when connecting, so they are in force before the first statement.
2. Every function and operator the query calls is looked up in the source's `pg_proc` and must be
   on the allow-list (`allowlist.py`), before the statement is even prepared.
3. The statement runs inside `BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY`, checked to really be
   read-only before anything else runs, and the transaction is always rolled back, never committed.
4. The SQL goes through the extended protocol as one prepared statement: PostgreSQL refuses to
   prepare more than one command ("cannot insert multiple commands into a prepared statement").
5. A statement that describes no result columns (COMMIT, SET, COPY, DO, LOCK, ...) is refused
   before it is executed: PostgreSQL's own parser says what the statement is.
6. Rows come through a cursor, at most `max_rows + 1` of them and at most `query_max_bytes` of
   JSON; the result says `truncated` when rows were left out.
7. The session is closed afterwards, so nothing it did (settings, locks) outlives the request.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import asyncpg
from asyncpg.prepared_stmt import PreparedStatement
from lakegate.common.contracts.warehouse import QueryResult, ResultColumn
from lakegate.common.errors import Conflict, InvalidInput, LakegateError, SourceError, TerminalError, Unavailable
from lakegate.extractor.allowlist import Calls, refuse_unsafe_calls
from lakegate.extractor.config import ExtractorSettings
from lakegate.extractor.connections import connect, milliseconds, redact, where
from lakegate.extractor.introspection import load_types
from lakegate.extractor.jsonvalues import holds_instants, iso_interval, json_value
from lakegate.extractor.logins import Credentials
from lakegate.extractor.typemap import PgType, plan_column, rule_for

#: Rows asked of the cursor at a time, so a result's memory stays bounded by this many rows.
FETCH_ROWS = 256
#: Seconds the client waits beyond the server's statement timeout before it cancels by itself.
CLIENT_GRACE = 5.0


def exploration_session(settings: ExtractorSettings) -> dict[str, str]:
    """Server settings of a session that runs a source query."""
    return {
        "default_transaction_read_only": "on",
        "statement_timeout": milliseconds(settings.query_timeout),
        "lock_timeout": milliseconds(settings.query_lock_timeout),
        "idle_in_transaction_session_timeout": milliseconds(settings.query_timeout + 2 * CLIENT_GRACE),
        # The guard reads backslashes in '...' the standard way; the server must read them the same.
        "standard_conforming_strings": "on",
    }


@contextlib.asynccontextmanager
async def read_only_transaction(conn: asyncpg.Connection) -> AsyncIterator[None]:
    """A REPEATABLE READ READ ONLY transaction that is always rolled back."""
    transaction = conn.transaction(isolation="repeatable_read", readonly=True)
    await transaction.start()
    try:
        read_only = await conn.fetchval("SELECT pg_catalog.current_setting('transaction_read_only')")
        if read_only != "on":
            raise TerminalError("the source session did not start a read-only transaction; refusing to run the query")
        yield
    finally:
        # Nothing a read-only query did is worth keeping; rolling back also undoes what PostgreSQL
        # lets a read-only transaction do anyway (e.g. lo_create).
        with contextlib.suppress(asyncpg.PostgresError, asyncpg.InterfaceError, TimeoutError):
            await asyncio.wait_for(transaction.rollback(), CLIENT_GRACE)


@dataclass(frozen=True)
class Limits:
    """How much of a result one answer may carry, and until when the statement may run."""

    max_rows: int
    max_bytes: int
    deadline: float  # time.monotonic() after which the client cancels

    def remaining(self) -> float:
        return max(0.1, self.deadline - time.monotonic())


def _text_types(types: Mapping[int, PgType], oids: Sequence[int]) -> list[PgType]:
    """Scalar types among the result's (or their arrays' elements) that a sync reads as text."""
    wanted: dict[int, PgType] = {}
    for oid in oids:
        pg_type = types.get(oid)
        if pg_type is not None and pg_type.is_array:
            pg_type = types.get(pg_type.element)
        if pg_type is None or pg_type.kind != "b" or pg_type.is_array:
            continue
        rule = rule_for(pg_type)
        if rule is None or rule.read != "native":
            wanted[pg_type.oid] = pg_type
    return list(wanted.values())


async def _read_as_text(conn: asyncpg.Connection, pg_type: PgType) -> None:
    """Decode values of this type from PostgreSQL's own text (interval: from its parts, to the same text)."""
    if (pg_type.schema, pg_type.name) == ("pg_catalog", "interval"):
        # A tuple codec stays binary, so it works inside composite values too.
        await conn.set_type_codec("interval", schema="pg_catalog", encoder=tuple, decoder=iso_interval, format="tuple")
        return
    await conn.set_type_codec(pg_type.name, schema=pg_type.schema, encoder=str, decoder=str, format="text")


def _arrow_type(name: str, oid: int, types: Mapping[int, PgType]) -> str:
    """The Arrow type a column of this PostgreSQL type syncs as; a result carries no typmod, so
    numeric shows as string (its exact text)."""
    if oid not in types:
        return "string"
    pg_type = types[oid]
    plan = plan_column(name, oid, -1, source_type=pg_type.name, nullable=True, dimensions=1, types=types)
    return str(plan.arrow_type)


async def _prepare(conn: asyncpg.Connection, sql: str) -> tuple[PreparedStatement, list[str]]:
    """Prepare the one statement with text codecs where a sync reads text; returns it and its Arrow types."""
    statement = await conn.prepare(sql)
    attributes = statement.get_attributes()
    if not attributes:
        raise InvalidInput(
            "the statement returns no columns, so it is not a query (PostgreSQL described no result): "
            "send one SELECT, WITH … SELECT, VALUES, TABLE or EXPLAIN"
        )
    oids = [attribute.type.oid for attribute in attributes]
    types = await load_types(conn, oids)
    arrow = [_arrow_type(attribute.name, attribute.type.oid, types) for attribute in attributes]
    text_types = _text_types(types, oids)
    for pg_type in text_types:
        await _read_as_text(conn, pg_type)
    if not text_types:
        return statement, arrow
    try:
        return await conn.prepare(sql), arrow
    except asyncpg.UnsupportedClientFeatureError:
        pass
    # asyncpg decodes a composite value only when its fields come binary: keep the binary form of
    # the types some composite in the result holds (their JSON value is still exact, if spelled
    # differently), and the text of the others.
    for pg_type in text_types:
        await conn.reset_type_codec(pg_type.name, schema=pg_type.schema)
    for pg_type in text_types:
        await _read_as_text(conn, pg_type)
        try:
            await conn.prepare(sql)
        except asyncpg.UnsupportedClientFeatureError:
            await conn.reset_type_codec(pg_type.name, schema=pg_type.schema)
    return await conn.prepare(sql), arrow


async def run_statement(conn: asyncpg.Connection, sql: str, limits: Limits) -> QueryResult:
    """Run one statement on an open read-only transaction and return its first rows as JSON."""
    statement, arrow = await _prepare(conn, sql)
    columns = [ResultColumn(name=a.name, type=t) for a, t in zip(statement.get_attributes(), arrow, strict=True)]
    instants = [holds_instants(t) for t in arrow]
    cursor = await statement.cursor(timeout=limits.remaining())
    rows: list[list[Any]] = []
    used = 0
    truncated = False
    while not truncated:
        want = min(FETCH_ROWS, limits.max_rows + 1 - len(rows))
        chunk = await cursor.fetch(want, timeout=limits.remaining())
        for record in chunk:
            row = [json_value(value, instants=utc) for value, utc in zip(record.values(), instants, strict=True)]
            used += len(json.dumps(row, ensure_ascii=False).encode()) + 1
            if len(rows) == limits.max_rows or used > limits.max_bytes:
                truncated = True
                break
            rows.append(row)
        if len(chunk) < want:
            break
    return QueryResult(columns=columns, rows=rows, row_count=len(rows), truncated=truncated)


async def query_source(
    credentials: Credentials, sql: str, max_rows: int, settings: ExtractorSettings, *, calls: Calls
) -> QueryResult:
    """Run SQL the guard passed on a registered source, behind the allow-list and the database's own walls.

    `calls` is what the guard read off the query (`guard.calls_in`); an empty `Calls()` tests the
    database's walls alone.
    """
    login, name = credentials.login, credentials.source.name
    limits = Limits(max_rows, settings.query_max_bytes, time.monotonic() + settings.query_timeout + CLIENT_GRACE)
    async with connect(login, settings, source=name, session=exploration_session(settings)) as conn:
        try:
            async with read_only_transaction(conn):
                await refuse_unsafe_calls(conn, calls)
                return await run_statement(conn, sql, limits)
        except asyncpg.PostgresError as exc:
            raise _refused(exc, credentials, settings) from exc
        except TimeoutError as exc:
            raise SourceError(
                f"source '{name}': the query ran longer than {settings.query_timeout:g}s and was cancelled: "
                "narrow it (a WHERE clause, LIMIT, fewer joins)"
            ) from exc
        except (asyncpg.InterfaceError, ValueError, OverflowError) as exc:
            raise SourceError(
                f"source '{name}': the query's result could not be read ({redact(str(exc), login)}): "
                "cast unusual columns to text, e.g. SELECT col::text"
            ) from exc


def _refused(exc: asyncpg.PostgresError, credentials: Credentials, settings: ExtractorSettings) -> LakegateError:
    """What PostgreSQL's refusal of a source query means to the person who wrote it."""
    login, name = credentials.login, credentials.source.name
    message = redact(str(exc).strip(), login)
    sqlstate = getattr(exc, "sqlstate", None)
    at = f"source '{name}' ({where(login.address)})"
    if sqlstate == "25006" or sqlstate == "25001":
        return SourceError(
            f"{at} refused the query ({message}): source queries run in a read-only transaction, "
            "so only reading is possible"
        )
    if sqlstate == "42601" and "multiple commands" in message:
        return InvalidInput(f"{at} refused the query ({message}): send exactly one statement, without semicolons")
    if sqlstate == "57014":
        return SourceError(
            f"{at}: the query ran longer than {settings.query_timeout:g}s and was cancelled ({message}): "
            "narrow it (a WHERE clause, LIMIT, fewer joins)"
        )
    if sqlstate == "55P03":
        return Conflict(
            f"{at}: the query waited more than {settings.query_lock_timeout:g}s for a lock another session holds "
            f"({message}); retry later"
        )
    if sqlstate == "42501":
        return SourceError(
            f"{at}: user '{login.address.user}' may not run this query ({message}): "
            "ask the database owner to GRANT SELECT on what it reads"
        )
    if sqlstate and sqlstate.startswith(("08", "53", "57P")):
        return Unavailable(f"{at} could not run the query for now ({message}); retry shortly")
    hint = ""
    if sqlstate and sqlstate.startswith("42"):
        hint = ": check the SQL, and table and column names with list_source_tables / describe_source_table"
    return SourceError(f"{at} refused the query: {message}{hint}")
