"""Results of the sync tools: one run, and the history of runs."""

from __future__ import annotations

from datetime import datetime

from lakegate.common.contracts.runs import ColumnMapping, RunStatus, RunView, SyncMode
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


class SyncRunResult(ToolResult):
    """A sync run: finished, or still running with a handle to poll."""

    run_id: str = Field(description="Id of the run; pass it to get_sync_run.")
    status: RunStatus
    connection_id: str
    source_table: str = Field(description="`schema.table` in the source database.")
    bronze_table: str = Field(description="`<catalog>.bronze.<name>` in the lakehouse; query it with query_sql.")
    sync_mode: SyncMode
    row_count: int | None = None
    bytes: int | None = None
    columns: list[SyncedColumn] = Field(
        default_factory=list, description="How each column was written (get_sync_run shows them; listings do not)."
    )
    error: str | None = Field(default=None, description="Why the run failed and what to do about it.")
    error_code: str | None = None
    created_at: datetime
    started_at: datetime | None = None
    finished_at: datetime | None = None
    duration_seconds: float | None = Field(default=None, description="From start (or creation) to finish.")
    hint: str | None = Field(default=None, description="What to do next.")

    @classmethod
    def of(cls, run: RunView, *, with_columns: bool = True) -> SyncRunResult:
        duration = None
        if run.finished_at is not None:
            duration = round((run.finished_at - (run.started_at or run.created_at)).total_seconds(), 3)
        return cls(
            run_id=run.run_id,
            status=run.status,
            connection_id=run.connection_id,
            source_table=run.source_table,
            bronze_table=str(run.target),
            sync_mode=run.sync_mode,
            row_count=run.row_count,
            bytes=run.bytes,
            columns=[SyncedColumn.of(c) for c in run.columns] if with_columns else [],
            error=run.error.message if run.error else None,
            error_code=run.error.code if run.error else None,
            created_at=run.created_at,
            started_at=run.started_at,
            finished_at=run.finished_at,
            duration_seconds=duration,
            hint=_next_step(run),
        )


def _next_step(run: RunView) -> str:
    if run.status == "succeeded":
        return f"query it with query_sql, e.g. SELECT * FROM {run.target} LIMIT 10"
    if run.status == "failed":
        return f"fix the cause, then call sync_table_to_bronze again; {run.target} is as it was before the run"
    return f"the run is still {run.status}; call get_sync_run with run_id {run.run_id!r} to follow it"


class RunListResult(ToolResult):
    """Sync runs, newest first."""

    runs: list[SyncRunResult]
    next_offset: int | None = Field(default=None, description="Pass as `offset` for the next page; None at the end.")
