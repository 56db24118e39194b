"""Tools about schedules: syncs the catalog starts by itself, every interval or on a cron expression."""

from __future__ import annotations

from typing import Annotated

from lakegate.common.contracts.runs import SyncMode
from lakegate.common.contracts.schedules import (
    MAX_EVERY_SECONDS,
    CreateSchedule,
    ListSchedules,
    Schedule,
    ScheduleList,
    ScheduleRef,
)
from lakegate.common.errors import InvalidInput
from lakegate.edge.backend import Backend
from lakegate.edge.durations import seconds_of, spoken
from lakegate.edge.results.base import Offset
from lakegate.edge.results.schedules import ScheduleListResult, ScheduleResult
from lakegate.edge.tools.sync import READS_CATALOG, SAME_CURSOR_COLUMN, SAME_DETECT_DELETES, SAME_SYNC_MODES
from mcp.server.mcpserver import MCPServer
from mcp.types import ToolAnnotations
from pydantic import Field

#: The catalog's shortest interval; a schedule's runs never overlap, so shorter would only skip.
MIN_EVERY_SECONDS = 60
_CRON_EXAMPLE = "'0 2 * * *' (02:00 UTC every day)"


def add_schedule_tools(server: MCPServer, backend: Backend) -> None:
    """Register schedule_sync, list_schedules and delete_schedule."""
    topology, guard = backend.topology, backend.failures.tool_errors

    @server.tool(
        annotations=ToolAnnotations(
            title="Schedule a sync",
            read_only_hint=False,
            destructive_hint=True,
            idempotent_hint=False,
            open_world_hint=True,
        )
    )
    @guard
    async def schedule_sync(
        connection_id: Annotated[str, Field(description="Id of a registered source, as connect_postgres returned it.")],
        table_name: Annotated[
            str, Field(description="`table` or `schema.table` in the source; schema defaults to public.")
        ],
        sync_mode: Annotated[SyncMode, Field(description=SAME_SYNC_MODES)] = "full",
        every: Annotated[
            str | int | None,
            Field(
                description="How often to sync: seconds, or a duration such as '15m', '1h', '1d', '1h30m' "
                "(at least 1m). Give this or `cron`, not both."
            ),
        ] = None,
        cron: Annotated[
            str | None,
            Field(description=f"When to sync, as a five-field cron expression in UTC, e.g. {_CRON_EXAMPLE}."),
        ] = None,
        cursor_column: Annotated[str | None, Field(description=SAME_CURSOR_COLUMN)] = None,
        detect_deletes: Annotated[bool, Field(description=SAME_DETECT_DELETES)] = False,
    ) -> ScheduleResult:
        """Sync a source table into bronze again and again: every interval, or on a cron expression (UTC).

        The catalog keeps the schedule (it survives restarts) and starts each run like sync_table_to_bronze
        would; a schedule never starts a run while its previous one is still going. incremental and merge
        schedules pick up only what changed since the last successful run. list_sync_runs shows the runs,
        delete_schedule stops it.
        """
        every_seconds, cron = _when(every, cron)
        request = CreateSchedule(
            tenant_id=backend.tenant(),
            connection_id=connection_id,
            table_name=table_name,
            sync_mode=sync_mode,
            cursor_column=cursor_column,
            detect_deletes=detect_deletes,
            every_seconds=every_seconds,
            cron=cron,
        )
        schedule = await backend.call(topology.schedules_create, request, Schedule)
        return ScheduleResult.of(
            schedule,
            hint=f"the first run starts at {schedule.next_run_at.isoformat(timespec='seconds')}; list_sync_runs "
            f"shows its runs with schedule_id {schedule.schedule_id!r}; delete_schedule stops it",
        )

    @server.tool(annotations=READS_CATALOG.model_copy(update={"title": "List your schedules"}))
    @guard
    async def list_schedules(
        offset: Offset = 0,
        limit: Annotated[int, Field(description="Most schedules to return.", ge=1, le=1000)] = 100,
    ) -> ScheduleListResult:
        """List your sync schedules: what each syncs, how often, when it runs next and the run it started last."""
        request = ListSchedules(tenant_id=backend.tenant(), offset=offset, limit=limit)
        listing = await backend.call(topology.schedules_list, request, ScheduleList)
        return ScheduleListResult(
            schedules=[ScheduleResult.of(s) for s in listing.schedules], next_offset=listing.next_offset
        )

    @server.tool(
        annotations=ToolAnnotations(
            title="Delete a schedule",
            read_only_hint=False,
            destructive_hint=True,
            idempotent_hint=True,
            open_world_hint=False,
        )
    )
    @guard
    async def delete_schedule(
        schedule_id: Annotated[str, Field(description="Id of a schedule, as schedule_sync or list_schedules show it.")],
    ) -> ScheduleResult:
        """Delete a sync schedule so it starts no more runs. A run it already started goes on (cancel_sync stops
        it); the tables it synced stay. Returns the schedule as it was."""
        ref = ScheduleRef(tenant_id=backend.tenant(), schedule_id=schedule_id)
        schedule = await backend.call(topology.schedules_delete, ref, Schedule)
        return ScheduleResult.of(
            schedule,
            hint="deleted: it starts no more runs; a run it already started goes on (cancel_sync stops it)",
        )


def _when(every: str | int | None, cron: str | None) -> tuple[int | None, str | None]:
    """The schedule's interval in seconds, or its cron expression: exactly one of them."""
    cron = cron.strip() if cron is not None else None
    if every is None and not cron:
        raise InvalidInput(f"say how often to sync: give every (e.g. '15m', '1h', '1d') or cron (e.g. {_CRON_EXAMPLE})")
    if every is not None and cron:
        raise InvalidInput(
            f"give either every ({every!r}) or cron ({cron!r}), not both: every repeats at a fixed interval, cron "
            "runs at the times it names"
        )
    if every is None:
        return None, cron
    seconds = seconds_of(every)
    if seconds < MIN_EVERY_SECONDS:
        raise InvalidInput(
            f"every={every!r} is {spoken(seconds)}, shorter than the shortest interval, 1m: use every='1m' or longer"
        )
    if seconds > MAX_EVERY_SECONDS:
        raise InvalidInput(
            f"every={every!r} is longer than the longest interval, 366d (a year and a day): use every='366d' or "
            f"shorter, or cron for a yearly date, e.g. {_CRON_EXAMPLE}"
        )
    return seconds, None
