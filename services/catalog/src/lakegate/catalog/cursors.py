"""Incremental cursors: the high-water mark of each synced table, and where the next run starts.

A table's cursor is the `Extracted.cursor` of its last succeeded run. It is written in the
transaction that marks that run `succeeded`, so a failed or cancelled run never moves it.

    full         since nothing; the cursor becomes what the run extracted (or none, if it reported none)
    incremental  since the stored cursor; appends rows past it
    merge        since the stored cursor; upserts, so re-reading rows is harmless

Timestamps with a time zone are kept in UTC (`+00:00`), whatever offset the extractor wrote them in,
so a cursor compares the same on every machine.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

import asyncpg
from lakegate.catalog.database import Connection
from lakegate.catalog.runs import RunRecord
from lakegate.common.contracts.runs import Cursor, SyncMode, TableRef
from lakegate.common.errors import InvalidInput

_ZONED = frozenset({"timestamp with time zone", "timestamptz"})


def normalise(cursor: Cursor) -> Cursor:
    """The cursor in canonical form: a timestamptz value as an ISO 8601 instant in UTC."""
    if cursor.source_type.strip().lower() not in _ZONED:
        return cursor
    try:
        instant = datetime.fromisoformat(cursor.value)
    except ValueError:
        raise InvalidInput(
            f"cursor value {cursor.value!r} of column {cursor.column!r} is not an ISO 8601 timestamp; the "
            "extractor must report timestamptz cursors as ISO 8601"
        ) from None
    if instant.tzinfo is None:
        raise InvalidInput(
            f"cursor value {cursor.value!r} of timestamptz column {cursor.column!r} has no UTC offset; the "
            "extractor must report it as an instant, e.g. '2025-01-02T03:04:05+00:00'"
        )
    return cursor.model_copy(update={"value": instant.astimezone(UTC).isoformat()})


@dataclass(frozen=True)
class Start:
    """Where a run starts: the cursor column to ask for and the stored cursor to extract past."""

    cursor_column: str | None
    since: Cursor | None


def start_of(mode: SyncMode, requested_column: str | None, stored: Cursor | None, table: str) -> Start:
    """Decide a run's cursor column and `since` from its mode, the caller's column and the stored cursor."""
    column = requested_column or (stored.column if stored else None)
    if mode == "full" or stored is None:
        return Start(column, None)
    if column == stored.column:
        return Start(column, stored)
    if mode == "merge":
        # Upserting every row again is correct, only slower: the new column starts from the beginning.
        return Start(column, None)
    raise InvalidInput(
        f"table {table} is synced incrementally on column {stored.column!r} (up to {stored.value}); appending by "
        f"{column!r} from the beginning would duplicate rows: omit cursor_column or pass {stored.column!r}, or run "
        f"a full sync with cursor_column {column!r} first to switch columns"
    )


class CursorStore:
    """The `cursors` table."""

    def __init__(self, pool: asyncpg.Pool) -> None:
        self._pool = pool

    async def stored(self, tenant_id: str, connection_id: str, source_table: str, target: TableRef) -> Cursor | None:
        """The cursor of a table's last succeeded run, if it reported one."""
        row = await self._pool.fetchrow(
            """
            SELECT "column", value, source_type, snapshot FROM cursors
             WHERE tenant_id = $1 AND connection_id = $2 AND source_table = $3
               AND target_catalog = $4 AND target_schema = $5 AND target_name = $6
            """,
            tenant_id,
            connection_id,
            source_table,
            target.catalog,
            target.schema_name,
            target.name,
        )
        if row is None:
            return None
        return Cursor(
            column=row["column"], value=row["value"], source_type=row["source_type"], snapshot=row["snapshot"]
        )


async def record_cursor(conn: Connection, run: RunRecord) -> None:
    """Store a succeeded run's cursor as its table's, in the caller's transaction; none reported clears it."""
    key = (run.tenant_id, run.connection_id, run.source_table, run.target.catalog, run.target.schema_name)
    if run.cursor is None:
        # A full sync that reported no cursor replaced the table: an older cursor no longer describes it.
        if run.sync_mode == "full":
            await conn.execute(
                """
                DELETE FROM cursors WHERE tenant_id = $1 AND connection_id = $2 AND source_table = $3
                   AND target_catalog = $4 AND target_schema = $5 AND target_name = $6
                """,
                *key,
                run.target.name,
            )
        return
    await conn.execute(
        """
        INSERT INTO cursors (tenant_id, connection_id, source_table, target_catalog, target_schema, target_name,
                             "column", value, source_type, snapshot, run_id, updated_at)
        VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, coalesce($12, now()))
        ON CONFLICT (tenant_id, connection_id, source_table, target_catalog, target_schema, target_name) DO UPDATE
           SET "column" = excluded."column", value = excluded.value, source_type = excluded.source_type,
               snapshot = excluded.snapshot, run_id = excluded.run_id, updated_at = excluded.updated_at
        """,
        *key,
        run.target.name,
        run.cursor.column,
        run.cursor.value,
        run.cursor.source_type,
        run.cursor.snapshot,
        run.run_id,
        run.finished_at,
    )
