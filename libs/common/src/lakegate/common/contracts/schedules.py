"""Schedules: syncs the catalog starts by itself, every N seconds or on a cron expression."""

from __future__ import annotations

from datetime import datetime

from lakegate.common.contracts.base import Message, TenantScoped
from lakegate.common.contracts.runs import SyncMode
from pydantic import Field

#: The longest interval a schedule may have: a year and a day (longer is no schedule, and the next run
#: time must stay a date). The edge and the catalog both refuse longer ones, each saying what to use.
MAX_EVERY_SECONDS = 366 * 24 * 3600


class CreateSchedule(TenantScoped):
    connection_id: str
    table_name: str
    sync_mode: SyncMode = "full"
    cursor_column: str | None = None
    detect_deletes: bool = Field(
        default=False, description="Merge only: each run also deletes rows gone at the source."
    )
    every_seconds: int | None = Field(default=None, ge=60, description="Run every N seconds (at least 60).")
    cron: str | None = Field(default=None, description="Five-field cron expression in UTC, e.g. '0 2 * * *'.")


class Schedule(Message):
    schedule_id: str
    tenant_id: str
    connection_id: str
    table_name: str
    sync_mode: SyncMode
    cursor_column: str | None
    detect_deletes: bool = False
    every_seconds: int | None
    cron: str | None
    next_run_at: datetime
    last_run_id: str | None = None
    last_run_at: datetime | None = None
    created_at: datetime


class ScheduleRef(TenantScoped):
    """`schedules.delete`: delete one schedule; the answer is the deleted `Schedule`, as it was."""

    schedule_id: str


class ListSchedules(TenantScoped):
    limit: int = Field(default=100, ge=1, le=1000)
    offset: int = Field(default=0, ge=0)


class ScheduleList(Message):
    schedules: list[Schedule]
    next_offset: int | None = None
