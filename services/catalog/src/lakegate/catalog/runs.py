"""Sync runs as the `runs` table holds them, and how anyone sees one."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, cast

import asyncpg
from lakegate.catalog.database import Connection
from lakegate.catalog.paging import Window
from lakegate.common.contracts.runs import (
    TERMINAL_STATUSES,
    ColumnMapping,
    Cursor,
    ErrorInfo,
    RunStatus,
    RunView,
    SchemaChange,
    SyncMode,
    TableRef,
)
from lakegate.common.errors import Conflict, NotFound

#: Statuses of a run that still holds its target; at most one run per target is in one of them.
ACTIVE_STATUSES: tuple[RunStatus, ...] = ("queued", "extracting", "loading")
#: A finished run's event is normally published right away; after this long without it, the scheduler's
#: sweep publishes it (a catalog stopped between recording the end and publishing it).
ANNOUNCE_GRACE_SECONDS = 60.0


def new_run_id() -> str:
    """`run_<uuid hex>`."""
    return f"run_{uuid.uuid4().hex}"


def run_not_found(run_id: str) -> NotFound:
    """The same answer for a missing run and another tenant's."""
    return NotFound(f"run {run_id!r} not found for this tenant: check the run id that starting the sync returned")


@dataclass(frozen=True)
class RunRecord:
    """One row of `runs`."""

    run_id: str
    tenant_id: str
    connection_id: str
    source_table: str
    target: TableRef
    sync_mode: SyncMode
    status: RunStatus
    created_at: datetime
    attempt: str | None = None
    attempts: int = 0
    columns: list[ColumnMapping] | None = None
    primary_key: list[str] | None = None
    staged_rows: int | None = None
    staged_bytes: int | None = None
    row_count: int | None = None
    bytes: int | None = None
    table_version: int | None = None
    error: ErrorInfo | None = None
    failed_step: str | None = None
    started_at: datetime | None = None
    finished_at: datetime | None = None
    event_published_at: datetime | None = None
    cursor_column: str | None = None
    since: Cursor | None = None
    cursor: Cursor | None = None
    schema_changes: list[SchemaChange] = field(default_factory=list)
    schedule_id: str | None = None
    cancelled_at: datetime | None = None
    deleted_rows: int | None = None

    @classmethod
    def from_row(cls, row: asyncpg.Record) -> RunRecord:
        """Read a `SELECT * FROM runs` row."""
        columns = row["columns"]
        error = None
        if row["error_code"] is not None:
            error = ErrorInfo(
                code=row["error_code"], message=row["error_message"] or "", transient=bool(row["error_transient"])
            )
        return cls(
            run_id=row["run_id"],
            tenant_id=row["tenant_id"],
            connection_id=row["connection_id"],
            source_table=row["source_table"],
            target=TableRef(catalog=row["target_catalog"], schema_name=row["target_schema"], name=row["target_name"]),
            sync_mode=cast(SyncMode, row["sync_mode"]),
            status=cast(RunStatus, row["status"]),
            created_at=row["created_at"],
            attempt=row["attempt"],
            attempts=row["attempts"],
            columns=None if columns is None else [ColumnMapping.model_validate(c) for c in columns],
            primary_key=row["primary_key"],
            staged_rows=row["staged_rows"],
            staged_bytes=row["staged_bytes"],
            row_count=row["row_count"],
            bytes=row["bytes"],
            table_version=row["table_version"],
            error=error,
            failed_step=row["failed_step"],
            started_at=row["started_at"],
            finished_at=row["finished_at"],
            event_published_at=row["event_published_at"],
            cursor_column=row["cursor_column"],
            since=_cursor(row["since"]),
            cursor=_cursor(row["cursor"]),
            schema_changes=[SchemaChange.model_validate(c) for c in row["schema_changes"]],
            schedule_id=row["schedule_id"],
            cancelled_at=row["cancelled_at"],
            deleted_rows=row["deleted_rows"],
        )

    def duration(self) -> float | None:
        """Seconds from start (or creation, if it never started) to finish; None while it runs."""
        if self.finished_at is None:
            return None
        return max(0.0, (self.finished_at - (self.started_at or self.created_at)).total_seconds())

    def throughput(self) -> float | None:
        """Rows written per second of a succeeded run; None when there is no duration to divide by."""
        duration = self.duration()
        if self.status != "succeeded" or self.row_count is None or not duration:
            return None
        return self.row_count / duration

    def view(self) -> RunView:
        """The run as the edge and clients see it; before the load, rows are the extracted count.

        A failed or cancelled run committed nothing, so it reports the rows it wrote (0), not those it read.
        """
        if self.status in ("failed", "cancelled"):
            rows: int | None = 0
        else:
            rows = self.row_count if self.row_count is not None else self.staged_rows
        return RunView(
            run_id=self.run_id,
            tenant_id=self.tenant_id,
            connection_id=self.connection_id,
            source_table=self.source_table,
            target=self.target,
            sync_mode=self.sync_mode,
            status=self.status,
            row_count=rows,
            bytes=self.bytes,
            columns=self.columns or [],
            error=self.error,
            created_at=self.created_at,
            started_at=self.started_at,
            finished_at=self.finished_at,
            duration_seconds=self.duration(),
            rows_per_second=self.throughput(),
            # A failed or cancelled run's extracted cursor was never stored: showing it would mislead.
            cursor=None if self.status in ("failed", "cancelled") else self.cursor,
            schema_changes=self.schema_changes,
            rows_extracted=self.staged_rows,
            deleted_rows=self.deleted_rows,
            schedule_id=self.schedule_id,
        )


def _cursor(stored: dict[str, Any] | None) -> Cursor | None:
    return None if stored is None else Cursor.model_validate(stored)


def cursor_json(cursor: Cursor | None) -> dict[str, Any] | None:
    """A cursor as the jsonb codec stores it."""
    return None if cursor is None else cursor.model_dump(mode="json")


def columns_json(columns: list[ColumnMapping] | None) -> list[dict[str, Any]] | None:
    """Columns as the jsonb codec stores them."""
    return None if columns is None else [c.model_dump(mode="json") for c in columns]


async def write_run(conn: Connection, run: RunRecord) -> None:
    """Store every field a step may change."""
    await conn.execute(
        """
        UPDATE runs SET status = $2, attempt = $3, attempts = $4, columns = $5, staged_rows = $6,
               staged_bytes = $7, row_count = $8, bytes = $9, table_version = $10, error_code = $11,
               error_message = $12, error_transient = $13, failed_step = $14, started_at = $15, finished_at = $16,
               primary_key = $17, cursor = $18, schema_changes = $19, cancelled_at = $20, event_published_at = $21,
               deleted_rows = $22
         WHERE run_id = $1
        """,
        run.run_id,
        run.status,
        run.attempt,
        run.attempts,
        columns_json(run.columns),
        run.staged_rows,
        run.staged_bytes,
        run.row_count,
        run.bytes,
        run.table_version,
        run.error.code if run.error else None,
        run.error.message if run.error else None,
        run.error.transient if run.error else None,
        run.failed_step,
        run.started_at,
        run.finished_at,
        run.primary_key,
        cursor_json(run.cursor),
        [c.model_dump(mode="json") for c in run.schema_changes],
        run.cancelled_at,
        run.event_published_at,
        run.deleted_rows,
    )


def target_busy(target: TableRef, active: RunRecord) -> Conflict:
    """Refusal of a second active run on one target, naming the run that holds it."""
    return Conflict(
        f"table {target} is already being synced by run {active.run_id} ({active.status} since "
        f"{active.created_at:%Y-%m-%d %H:%M:%S} UTC): one run per table at a time; wait for that run to finish "
        "(get_sync_run) or cancel it (cancel_sync), then start this sync again"
    )


class RunStore:
    """Reads and creates rows of `runs`; steps change them through `RunLifecycle`."""

    def __init__(self, pool: asyncpg.Pool) -> None:
        self._pool = pool

    async def create(
        self,
        *,
        tenant_id: str,
        connection_id: str,
        source_table: str,
        target: TableRef,
        sync_mode: SyncMode,
        cursor_column: str | None = None,
        since: Cursor | None = None,
        schedule_id: str | None = None,
    ) -> RunRecord:
        """Record a new `queued` run; `Conflict` naming the active run when the target already has one."""
        try:
            row = await self._pool.fetchrow(
                """
                INSERT INTO runs (run_id, tenant_id, connection_id, source_table, target_catalog, target_schema,
                                  target_name, sync_mode, cursor_column, since, schedule_id)
                VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)
                RETURNING *
                """,
                new_run_id(),
                tenant_id,
                connection_id,
                source_table,
                target.catalog,
                target.schema_name,
                target.name,
                sync_mode,
                cursor_column,
                cursor_json(since),
                schedule_id,
            )
        except asyncpg.UniqueViolationError:
            active = await self.active_on(tenant_id, target)
            if active is None:  # it finished between our insert and this look: the caller may simply retry
                raise Conflict(f"table {target} was being synced a moment ago; start this sync again") from None
            raise target_busy(target, active) from None
        assert row is not None  # INSERT ... RETURNING always returns the row
        return RunRecord.from_row(row)

    async def active_on(self, tenant_id: str, target: TableRef) -> RunRecord | None:
        """The run that holds a target now, if any."""
        row = await self._pool.fetchrow(
            """
            SELECT * FROM runs
             WHERE tenant_id = $1 AND target_catalog = $2 AND target_schema = $3 AND target_name = $4
               AND status = ANY($5::text[])
            """,
            tenant_id,
            target.catalog,
            target.schema_name,
            target.name,
            list(ACTIVE_STATUSES),
        )
        return None if row is None else RunRecord.from_row(row)

    async def get(self, tenant_id: str, run_id: str) -> RunRecord:
        """One run of the tenant."""
        row = await self._pool.fetchrow("SELECT * FROM runs WHERE run_id = $1 AND tenant_id = $2", run_id, tenant_id)
        if row is None:
            raise run_not_found(run_id)
        return RunRecord.from_row(row)

    async def newest(
        self, tenant_id: str, connection_id: str | None, window: Window
    ) -> tuple[list[RunRecord], int | None]:
        """A page of the tenant's runs, newest first, of one source when `connection_id` is given."""
        if connection_id is None:
            rows = await self._pool.fetch(
                "SELECT * FROM runs WHERE tenant_id = $1 ORDER BY created_at DESC, run_id DESC LIMIT $2 OFFSET $3",
                tenant_id,
                window.fetch,
                window.offset,
            )
        else:
            rows = await self._pool.fetch(
                """
                SELECT * FROM runs WHERE tenant_id = $1 AND connection_id = $2
                 ORDER BY created_at DESC, run_id DESC LIMIT $3 OFFSET $4
                """,
                tenant_id,
                connection_id,
                window.fetch,
                window.offset,
            )
        page, next_offset = window.cut(rows)
        return [RunRecord.from_row(row) for row in page], next_offset

    async def unannounced(self) -> list[RunRecord]:
        """Runs that finished more than a grace period ago (within a day) and whose event never went out."""
        rows = await self._pool.fetch(
            """
            SELECT * FROM runs
             WHERE event_published_at IS NULL AND status = ANY($1::text[])
               AND finished_at < now() - make_interval(secs => $2) AND finished_at > now() - interval '1 day'
             ORDER BY finished_at LIMIT 100
            """,
            list(TERMINAL_STATUSES),
            ANNOUNCE_GRACE_SECONDS,
        )
        return [RunRecord.from_row(row) for row in rows]

    async def mark_announced(self, run_id: str) -> None:
        """Remember that the run's public event was accepted, so it is never published again."""
        await self._pool.execute(
            "UPDATE runs SET event_published_at = now() WHERE run_id = $1 AND event_published_at IS NULL", run_id
        )
