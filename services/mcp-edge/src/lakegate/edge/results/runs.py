"""Results of the sync tools: one run, and the history of runs."""

from __future__ import annotations

from datetime import datetime

from lakegate.common.contracts.runs import ColumnMapping, Cursor, RunStatus, RunView, SchemaChange, SyncMode
from lakegate.edge.results.base import ToolResult
from pydantic import Field


class SyncedColumn(ToolResult):
    name: str
    source_type: str = Field(description="The column's PostgreSQL type.")
    synced_as: str = Field(description="The Arrow type it was written as.")
    mapped: bool = Field(description="False when the type had no explicit mapping and became text.")

    @classmethod
    def of(cls, column: ColumnMapping) -> SyncedColumn:
        return cls(name=column.name, source_type=column.source_type, synced_as=column.arrow_type, mapped=column.mapped)


class RunCursor(ToolResult):
    """Where the next incremental or merge sync of this table starts."""

    column: str = Field(description="The cursor column: new or changed rows have a greater value here.")
    value: str = Field(description="The greatest value synced so far (timestamps with time zone in UTC).")
    source_type: str = Field(description="The column's PostgreSQL type.")

    @classmethod
    def of(cls, cursor: Cursor) -> RunCursor:
        return cls(column=cursor.column, value=cursor.value, source_type=cursor.source_type)


class ColumnChange(ToolResult):
    """A column that differs between the source and the bronze table, and what the sync did about it."""

    column: str
    change: str = Field(
        description="`added` (new at the source: added to bronze, NULL in older rows), `dropped` (gone at the "
        "source: kept in bronze, NULL in new rows) or `type_changed`."
    )
    before: str | None = Field(default=None, description="Its type in bronze before the run.")
    after: str | None = Field(default=None, description="Its type at the source now.")

    @classmethod
    def of(cls, change: SchemaChange) -> ColumnChange:
        return cls(column=change.column, change=change.change, before=change.before, after=change.after)


class SyncRunResult(ToolResult):
    """A sync run: finished, or still running with a handle to poll."""

    run_id: str = Field(description="Id of the run; pass it to get_sync_run or cancel_sync.")
    status: RunStatus
    connection_id: str
    source_table: str = Field(description="`schema.table` in the source database.")
    bronze_table: str = Field(description="`<catalog>.bronze.<name>` in the lakehouse; query it with query_sql.")
    sync_mode: SyncMode
    rows_extracted: int | None = Field(default=None, description="Rows read from the source in this run.")
    row_count: int | None = Field(
        default=None,
        description="Rows this run wrote: the whole table (full), rows appended (incremental) or "
        "rows inserted or updated (merge).",
    )
    deleted_rows: int | None = Field(
        default=None,
        description="Merge with detect_deletes: rows deleted from bronze because the source no longer has them; "
        "null otherwise.",
    )
    bytes: int | None = None
    cursor: RunCursor | None = Field(
        default=None, description="Incremental/merge: the cursor after this run; the next run picks up from there."
    )
    schema_changes: list[ColumnChange] = Field(
        default_factory=list, description="Columns added, dropped or changed at the source since the last sync."
    )
    columns: list[SyncedColumn] = Field(
        default_factory=list, description="How each column was written (get_sync_run shows them; listings do not)."
    )
    schedule_id: str | None = Field(default=None, description="The schedule that started the run, if one did.")
    error: str | None = Field(default=None, description="Why the run failed or was cancelled, and what to do.")
    error_code: str | None = None
    created_at: datetime
    started_at: datetime | None = None
    finished_at: datetime | None = None
    duration_seconds: float | None = Field(default=None, description="From start (or creation) to finish.")
    rows_per_second: float | None = Field(default=None, description="Rows written per second of duration.")
    hint: str | None = Field(default=None, description="What to do next.")

    @classmethod
    def of(cls, run: RunView, *, with_columns: bool = True) -> SyncRunResult:
        duration = run.duration_seconds
        if duration is None and run.finished_at is not None:
            duration = (run.finished_at - (run.started_at or run.created_at)).total_seconds()
        throughput = run.rows_per_second
        if throughput is None and run.status == "succeeded" and run.row_count is not None and duration:
            throughput = run.row_count / duration
        return cls(
            run_id=run.run_id,
            status=run.status,
            connection_id=run.connection_id,
            source_table=run.source_table,
            bronze_table=str(run.target),
            sync_mode=run.sync_mode,
            rows_extracted=run.rows_extracted,
            row_count=run.row_count,
            deleted_rows=run.deleted_rows,
            bytes=run.bytes,
            cursor=RunCursor.of(run.cursor) if run.cursor else None,
            schema_changes=[ColumnChange.of(change) for change in run.schema_changes],
            columns=[SyncedColumn.of(c) for c in run.columns] if with_columns else [],
            schedule_id=run.schedule_id,
            error=run.error.message if run.error else None,
            error_code=run.error.code if run.error else None,
            created_at=run.created_at,
            started_at=run.started_at,
            finished_at=run.finished_at,
            duration_seconds=round(duration, 3) if duration is not None else None,
            rows_per_second=round(throughput, 1) if throughput is not None else None,
            hint=_next_step(run),
        )


def _next_step(run: RunView) -> str:
    if run.status == "succeeded":
        return f"query it with query_sql, e.g. SELECT * FROM {run.target} LIMIT 10"
    if run.status == "failed":
        return f"fix the cause, then call sync_table_to_bronze again; {run.target} is as it was before the run"
    if run.status == "cancelled":
        return (
            f"the run was cancelled before it committed, so {run.target} is as it was before the run and no "
            "cursor moved; call sync_table_to_bronze to sync it again"
        )
    return (
        f"the run is still {run.status}; call get_sync_run with run_id {run.run_id!r} to follow it, "
        "or cancel_sync to stop it"
    )


class RunListResult(ToolResult):
    """Sync runs, newest first."""

    runs: list[SyncRunResult]
    next_offset: int | None = Field(default=None, description="Pass as `offset` for the next page; None at the end.")


class TableRun(ToolResult):
    """The essentials of one table's run; get_sync_run shows all of it."""

    run_id: str
    status: RunStatus
    bronze_table: str
    row_count: int | None = None
    error_code: str | None = None
    duration_seconds: float | None = None

    @classmethod
    def of(cls, run: SyncRunResult) -> TableRun:
        return cls(
            run_id=run.run_id,
            status=run.status,
            bronze_table=run.bronze_table,
            row_count=run.row_count,
            error_code=run.error_code,
            duration_seconds=run.duration_seconds,
        )


class TableSyncOutcome(ToolResult):
    """One table of a several-table sync: its run, or why no run started."""

    source_table: str = Field(description="`schema.table` in the source database.")
    outcome: str = Field(
        description="`succeeded`, `failed`, `cancelled`, `running` (still going: follow `run` with get_sync_run) "
        "or `not_started` (no run was created: see `error`)."
    )
    run: TableRun | None = Field(default=None, description="The table's run (get_sync_run has the rest), if any.")
    error: str | None = Field(default=None, description="Why the table's run failed or did not start.")


class SyncResult(ToolResult):
    """A sync call: one table's run (its fields as get_sync_run describes them), or several tables' outcomes."""

    run_id: str | None = Field(default=None, description="One table: id of the run; pass it to get_sync_run.")
    status: RunStatus | None = None
    connection_id: str
    source_table: str | None = Field(default=None, description="`schema.table` in the source database.")
    bronze_table: str | None = Field(default=None, description="`<catalog>.bronze.<name>`; query it with query_sql.")
    sync_mode: SyncMode
    rows_extracted: int | None = None
    row_count: int | None = None
    deleted_rows: int | None = None
    bytes: int | None = None
    cursor: RunCursor | None = None
    schema_changes: list[ColumnChange] = Field(default_factory=list)
    columns: list[SyncedColumn] = Field(default_factory=list)
    schedule_id: str | None = None
    error: str | None = None
    error_code: str | None = None
    created_at: datetime | None = None
    started_at: datetime | None = None
    finished_at: datetime | None = None
    duration_seconds: float | None = None
    rows_per_second: float | None = None
    tables: list[TableSyncOutcome] | None = Field(
        default=None, description="Several tables: one entry per table, in the order asked for (null for one table)."
    )
    succeeded: int | None = Field(default=None, description="Several tables: how many runs committed.")
    failed: int | None = Field(default=None, description="Several tables: failed, cancelled or not started.")
    running: int | None = Field(default=None, description="Several tables: still going when the call returned.")
    hint: str | None = Field(default=None, description="What to do next.")

    @classmethod
    def of_run(cls, run: SyncRunResult) -> SyncResult:
        return cls.model_validate(run.model_dump())
