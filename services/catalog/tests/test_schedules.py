"""Schedules: creating, listing and deleting them over NATS, and the scheduler starting their runs."""

from __future__ import annotations

import asyncio
import contextlib
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

import asyncpg
import pytest
from lakegate.catalog.app import CatalogState, serve
from lakegate.catalog.config import CatalogSettings
from lakegate.catalog.schedules import following_run
from lakegate.common.contracts.runs import Loading
from lakegate.common.contracts.schedules import CreateSchedule, ListSchedules, Schedule, ScheduleList, ScheduleRef
from lakegate.common.contracts.sources import SourceInfo
from lakegate.common.errors import InvalidInput, NotFound, Unavailable
from lakegate.common.subjects import RunStep

if TYPE_CHECKING:
    from conftest import ManualClock, Peer


async def _create(peer: Peer, source: SourceInfo, **fields: object) -> Schedule:
    request = CreateSchedule.model_validate(
        {"tenant_id": peer.tenant_id, "connection_id": source.connection_id, "table_name": "orders", **fields}
    )
    schedule: Schedule = await peer.rpc.call(peer.topology.schedules_create, request, Schedule)
    return schedule


async def _listed(peer: Peer, offset: int = 0, limit: int = 100) -> ScheduleList:
    request = ListSchedules(tenant_id=peer.tenant_id, offset=offset, limit=limit)
    listing: ScheduleList = await peer.rpc.call(peer.topology.schedules_list, request, ScheduleList)
    return listing


async def _delete(peer: Peer, schedule_id: str, tenant_id: str | None = None) -> Schedule:
    request = ScheduleRef(tenant_id=tenant_id or peer.tenant_id, schedule_id=schedule_id)
    schedule: Schedule = await peer.rpc.call(peer.topology.schedules_delete, request, Schedule)
    return schedule


async def test_a_schedule_runs_first_one_interval_or_the_next_cron_time_after_it_is_created(
    scheduling_catalog: CatalogState, peer: Peer, clock: ManualClock
) -> None:
    source = await peer.register("shop")
    clock.at = datetime(2030, 5, 6, 7, 8, 9, tzinfo=UTC)

    hourly = await _create(peer, source, every_seconds=3600, sync_mode="incremental", cursor_column="updated_at")
    nightly = await _create(peer, source, table_name="sales.customers", cron="  0 2  * * * ")

    assert hourly.schedule_id.startswith("sch_")
    assert (hourly.table_name, hourly.sync_mode, hourly.cursor_column) == ("public.orders", "incremental", "updated_at")
    assert (hourly.every_seconds, hourly.cron, hourly.created_at) == (3600, None, clock.at)
    assert hourly.next_run_at == datetime(2030, 5, 6, 8, 8, 9, tzinfo=UTC)
    assert (nightly.table_name, nightly.cron, nightly.every_seconds) == ("sales.customers", "0 2 * * *", None)
    assert nightly.next_run_at == datetime(2030, 5, 7, 2, 0, tzinfo=UTC)
    assert (hourly.last_run_id, hourly.last_run_at) == (None, None)


async def test_a_schedule_is_refused_without_exactly_one_cadence_a_valid_cron_or_a_source_of_the_tenant(
    scheduling_catalog: CatalogState, peer: Peer
) -> None:
    source = await peer.register("shop")
    other = await peer.register("shop", tenant_id=f"{peer.tenant_id}_other")

    with pytest.raises(InvalidInput, match="exactly one of every_seconds"):
        await _create(peer, source)
    with pytest.raises(InvalidInput, match="exactly one of every_seconds"):
        await _create(peer, source, every_seconds=60, cron="* * * * *")
    for cron in ("0 2 * *", "0 0 2 * * *", "61 * * * *", "@daily", "every night"):
        with pytest.raises(InvalidInput, match=r"is not a valid cron expression: use five fields in UTC"):
            await _create(peer, source, cron=cron)
    for cron in ("0 0 31 2 *", "0 0 30 2 *", "0 0 31 4,6,9,11 *"):
        with pytest.raises(InvalidInput, match=r"never matches a date \(e\.g\. February 31st"):
            await _create(peer, source, cron=cron)
    with pytest.raises(InvalidInput, match=r"every_seconds 1000000000000 is more than a year and a day"):
        await _create(peer, source, every_seconds=10**12)
    with pytest.raises(NotFound, match=other.connection_id):
        await _create(peer, other, every_seconds=60)
    with pytest.raises(InvalidInput, match="too many or empty dotted parts"):
        await _create(peer, source, table_name="a.b.c", every_seconds=60)
    for mode in ("full", "incremental"):
        with pytest.raises(InvalidInput, match=f"detect_deletes applies to sync_mode 'merge' only, not '{mode}'"):
            await _create(peer, source, every_seconds=60, sync_mode=mode, detect_deletes=True)
    with pytest.raises(NotFound, match=r"table sales\.missing_orders not found"):
        await _create(peer, source, table_name="sales.missing_orders", every_seconds=60)
    assert (await _listed(peer)).schedules == []


async def test_a_schedule_cannot_be_created_while_no_extractor_can_check_its_table(
    catalog: CatalogState, peer: Peer
) -> None:
    source = await peer.register("shop")

    with pytest.raises(Unavailable, match="no extractor service is running"):
        await _create(peer, source, every_seconds=60)


async def test_schedules_are_listed_oldest_first_by_page_and_deleted_only_by_their_tenant(
    scheduling_catalog: CatalogState, peer: Peer, clock: ManualClock
) -> None:
    source = await peer.register("shop")
    created = []
    for n in range(3):
        clock.advance(1)
        created.append(await _create(peer, source, table_name=f"t{n}", every_seconds=60 * (n + 1)))

    first, rest = await _listed(peer, limit=2), await _listed(peer, offset=2, limit=2)
    assert (first.schedules, first.next_offset) == (created[:2], 2)
    assert (rest.schedules, rest.next_offset) == (created[2:], None)

    with pytest.raises(NotFound, match=created[0].schedule_id):
        await _delete(peer, created[0].schedule_id, tenant_id=f"{peer.tenant_id}_other")
    assert await _delete(peer, created[0].schedule_id) == created[0]
    with pytest.raises(NotFound, match=created[0].schedule_id):
        await _delete(peer, created[0].schedule_id)
    assert (await _listed(peer)).schedules == created[1:]


async def test_schedules_survive_a_restart_of_the_catalog(
    catalog_settings: CatalogSettings, peer: Peer, clock: ManualClock, source_tables: None
) -> None:
    quiet = catalog_settings.model_copy(update={"scheduler_enabled": False})
    async with serve(quiet, clock=clock):
        source = await peer.register("shop")
        schedule = await _create(peer, source, cron="*/15 * * * *")
    async with serve(quiet, clock=clock):
        assert (await _listed(peer)).schedules == [schedule]


async def test_a_due_schedule_starts_its_run_through_the_same_checks_as_runs_start(
    scheduling_catalog: CatalogState, peer: Peer, clock: ManualClock
) -> None:
    source = await peer.register("shop")
    commands, events = await peer.extract_commands(), await peer.events()
    schedule = await _create(
        peer, source, every_seconds=600, sync_mode="merge", cursor_column="id", detect_deletes=True
    )
    assert schedule.detect_deletes
    assert (await scheduling_catalog.scheduler.tick()).started == []

    clock.advance(600)
    tick = await scheduling_catalog.scheduler.tick()

    (run_id,) = tick.started
    command = await peer.next_command(commands)
    assert (command.run_id, command.sync_mode, command.cursor_column) == (run_id, "merge", "id")
    assert command.detect_deletes
    run = await peer.run(run_id)
    assert (run.schedule_id, run.source_table, run.target) == (schedule.schedule_id, "public.orders", peer.target())
    (listed,) = (await _listed(peer)).schedules
    assert (listed.last_run_id, listed.last_run_at) == (run_id, clock.at)
    assert listed.next_run_at == schedule.next_run_at + timedelta(seconds=600)
    assert (await peer.succeed(run, events)).data.schedule_id == schedule.schedule_id


async def test_a_schedule_never_starts_a_run_while_its_previous_one_is_still_going(
    scheduling_catalog: CatalogState, peer: Peer, clock: ManualClock
) -> None:
    source = await peer.register("shop")
    commands, events = await peer.extract_commands(), await peer.events()
    schedule = await _create(peer, source, every_seconds=60)
    scheduler = scheduling_catalog.scheduler
    clock.advance(60)
    (first,) = (await scheduler.tick()).started
    await peer.next_command(commands)

    clock.advance(60)
    skipped = await scheduler.tick()

    assert (skipped.started, skipped.skipped) == ([], [schedule.schedule_id])
    (listed,) = (await _listed(peer)).schedules
    assert (listed.last_run_id, listed.next_run_at) == (first, clock.at + timedelta(seconds=60))
    assert (await peer.js.stream_info(peer.topology.cmd_stream.name)).state.messages == 0

    await peer.succeed(await peer.run(first), events)
    clock.advance(60)
    (second,) = (await scheduler.tick()).started
    assert (await peer.next_command(commands)).run_id == second != first


async def test_a_schedule_skips_a_turn_while_another_run_holds_its_table(
    scheduling_catalog: CatalogState, peer: Peer, clock: ManualClock
) -> None:
    source = await peer.register("shop")
    schedule = await _create(peer, source, every_seconds=60)
    manual = await peer.start(source.connection_id)
    clock.advance(60)

    tick = await scheduling_catalog.scheduler.tick()

    assert (tick.started, tick.skipped) == ([], [schedule.schedule_id])
    assert (await peer.run(manual.run_id)).status == "queued"
    (listed,) = (await _listed(peer)).schedules
    assert listed.next_run_at == clock.at + timedelta(seconds=60)


async def test_turns_missed_while_nobody_scheduled_start_one_run_and_keep_the_schedules_rhythm(
    scheduling_catalog: CatalogState, peer: Peer, clock: ManualClock
) -> None:
    source = await peer.register("shop")
    schedule = await _create(peer, source, every_seconds=3600)
    clock.advance(10 * 3600 + 600)  # ten turns and ten minutes later

    assert len((await scheduling_catalog.scheduler.tick()).started) == 1
    (listed,) = (await _listed(peer)).schedules
    assert listed.next_run_at == schedule.next_run_at + timedelta(hours=10)  # the first turn still ahead
    assert (await scheduling_catalog.scheduler.tick()).started == []


def test_the_next_cron_turn_is_the_first_one_after_both_the_due_time_and_now() -> None:
    due = datetime(2030, 1, 1, 2, 0, tzinfo=UTC)
    schedule = Schedule(
        schedule_id="sch_1",
        tenant_id="t",
        connection_id="src_1",
        table_name="public.orders",
        sync_mode="full",
        cursor_column=None,
        every_seconds=None,
        cron="0 2 * * *",
        next_run_at=due,
        created_at=due,
    )
    assert following_run(schedule, due) == datetime(2030, 1, 2, 2, 0, tzinfo=UTC)
    assert following_run(schedule, due + timedelta(days=3, hours=1)) == datetime(2030, 1, 5, 2, 0, tzinfo=UTC)


async def test_the_scheduler_loop_starts_due_runs_by_itself(
    catalog_settings: CatalogSettings, peer: Peer, clock: ManualClock, source_tables: None
) -> None:
    ticking = catalog_settings.model_copy(update={"scheduler_tick": 0.05})
    async with serve(ticking, clock=clock) as state:
        await asyncio.wait_for(state.scheduler.leading.wait(), 10)
        source = await peer.register("shop")
        commands = await peer.extract_commands()
        schedule = await _create(peer, source, every_seconds=120)

        clock.advance(120)

        command = await peer.next_command(commands)
        assert (await peer.run(command.run_id)).schedule_id == schedule.schedule_id


async def test_only_one_replica_holds_the_scheduling_lock_until_it_lets_go(
    catalog_settings: CatalogSettings, clock: ManualClock
) -> None:
    quiet = catalog_settings.model_copy(update={"scheduler_enabled": False})
    async with serve(quiet, clock=clock) as first, serve(quiet, clock=clock) as second:
        assert await first.scheduler.lead()
        assert not await second.scheduler.lead()
        assert await first.scheduler.lead()  # a leader stays one
        await first.scheduler.release()
        assert await second.scheduler.lead()
        assert not await first.scheduler.lead()
        await second.scheduler.release()


async def test_a_leader_whose_database_session_died_steps_down_and_another_replica_leads(
    catalog_settings: CatalogSettings, clock: ManualClock, db: asyncpg.Connection
) -> None:
    quiet = catalog_settings.model_copy(update={"scheduler_enabled": False})
    async with serve(quiet, clock=clock) as first, serve(quiet, clock=clock) as second:
        assert await first.scheduler.lead()
        terminated = await db.fetchval(
            """
            SELECT count(pg_terminate_backend(pid)) FROM pg_locks
             WHERE locktype = 'advisory' AND database = (SELECT oid FROM pg_database WHERE datname = current_database())
            """
        )
        assert terminated == 1

        assert not await first.scheduler.lead()
        assert not first.scheduler.leading.is_set()
        assert await second.scheduler.lead()


async def test_another_replica_takes_over_scheduling_when_the_leader_stops(
    catalog_settings: CatalogSettings, peer: Peer, clock: ManualClock, source_tables: None
) -> None:
    ticking = catalog_settings.model_copy(update={"scheduler_tick": 0.05})
    async with contextlib.AsyncExitStack() as leader:
        first = await leader.enter_async_context(serve(ticking, clock=clock))
        await asyncio.wait_for(first.scheduler.leading.wait(), 10)
        async with serve(ticking, clock=clock) as second:
            await leader.aclose()  # the leader stops; its session, and so the lock, ends with it

            await asyncio.wait_for(second.scheduler.leading.wait(), 10)
            source = await peer.register("shop")
            commands = await peer.extract_commands()
            await _create(peer, source, every_seconds=60)
            clock.advance(60)
            assert (await peer.next_command(commands)).sync_mode == "full"


async def test_a_finished_run_whose_event_never_went_out_is_announced_by_the_scheduler(
    scheduling_catalog: CatalogState, peer: Peer, db: asyncpg.Connection
) -> None:
    source = await peer.register("shop")
    events = await peer.events()
    # As a catalog that died between recording a run's end and publishing its event leaves it.
    await db.execute(
        """
        INSERT INTO runs (run_id, tenant_id, connection_id, source_table, target_catalog, target_schema, target_name,
                          sync_mode, status, error_code, error_message, created_at, finished_at)
        VALUES ('run_lost', $1, $2, 'public.orders', $3, 'bronze', 'shop_orders', 'full', 'failed', 'source_error',
                'the source went away', now() - interval '5 minutes', now() - interval '2 minutes')
        """,
        peer.tenant_id,
        source.connection_id,
        f"tenant_{peer.tenant_id}",
    )

    assert (await scheduling_catalog.scheduler.tick()).announced == ["run_lost"]

    event = await peer.event_of("run_lost", events)
    assert (event.data.status, event.data.error and event.data.error.code) == ("failed", "source_error")
    assert (await scheduling_catalog.scheduler.tick()).announced == []


async def test_a_scheduled_run_is_cancelled_like_any_other_and_the_schedule_goes_on(
    scheduling_catalog: CatalogState, peer: Peer, clock: ManualClock
) -> None:
    source = await peer.register("shop")
    await _create(peer, source, every_seconds=60)
    clock.advance(60)
    (first,) = (await scheduling_catalog.scheduler.tick()).started

    await peer.cancel(first)
    await peer.step(first, RunStep.LOADING, Loading(tenant_id=peer.tenant_id, run_id=first))
    clock.advance(60)

    (second,) = (await scheduling_catalog.scheduler.tick()).started
    assert second != first
