"""Results of the schedule tools: one schedule, and the list of them."""

from __future__ import annotations

from datetime import datetime

from lakegate.common.contracts.runs import SyncMode
from lakegate.common.contracts.schedules import Schedule
from lakegate.edge.durations import spoken
from lakegate.edge.results.base import ToolResult
from pydantic import Field


class ScheduleResult(ToolResult):
    """A sync the catalog starts by itself, every interval or on a cron expression."""

    schedule_id: str = Field(description="Id of the schedule; pass it to delete_schedule.")
    connection_id: str
    table_name: str = Field(description="The source table it syncs.")
    sync_mode: SyncMode
    cursor_column: str | None = Field(default=None, description="The cursor column asked for; inferred when None.")
    detect_deletes: bool = False
    every: str | None = Field(default=None, description="The interval, e.g. '15m', when it runs on an interval.")
    every_seconds: int | None = None
    cron: str | None = Field(default=None, description="The cron expression (UTC), when it runs on one.")
    next_run_at: datetime = Field(description="When it starts its next run (UTC).")
    last_run_id: str | None = Field(default=None, description="The run it started last; get_sync_run shows it.")
    last_run_at: datetime | None = None
    created_at: datetime
    hint: str | None = Field(default=None, description="What to do next.")

    @classmethod
    def of(cls, schedule: Schedule, *, hint: str | None = None) -> ScheduleResult:
        return cls(
            schedule_id=schedule.schedule_id,
            connection_id=schedule.connection_id,
            table_name=schedule.table_name,
            sync_mode=schedule.sync_mode,
            cursor_column=schedule.cursor_column,
            detect_deletes=schedule.detect_deletes,
            every=spoken(schedule.every_seconds) if schedule.every_seconds else None,
            every_seconds=schedule.every_seconds,
            cron=schedule.cron,
            next_run_at=schedule.next_run_at,
            last_run_id=schedule.last_run_id,
            last_run_at=schedule.last_run_at,
            created_at=schedule.created_at,
            hint=hint,
        )


class ScheduleListResult(ToolResult):
    """Your schedules."""

    schedules: list[ScheduleResult]
    next_offset: int | None = Field(default=None, description="Pass as `offset` for the next page; None at the end.")
