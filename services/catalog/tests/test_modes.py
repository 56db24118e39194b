"""Sync modes and cursors: where each run starts, and that the cursor moves only with a committed load."""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

import asyncpg
import pytest
from lakegate.catalog.app import CatalogState
from lakegate.common.contracts.catalog import DatasetList, ListDatasets
from lakegate.common.contracts.runs import (
    Cursor,
    ErrorInfo,
    Extracted,
    Failed,
    Loaded,
    RangeExtracted,
    RunView,
    SchemaChange,
    StagedParts,
)
from lakegate.common.errors import Conflict, InvalidInput
from lakegate.common.subjects import RunStep

if TYPE_CHECKING:
    from conftest import Peer

UPDATED_AT = "timestamp with time zone"


def _cursor(value: str, column: str = "id", source_type: str = "bigint") -> Cursor:
    return Cursor(column=column, value=value, source_type=source_type)


def _extracted(peer: Peer, run: RunView, cursor: Cursor | None, rows: int = 10) -> Extracted:
    return Extracted(
        tenant_id=peer.tenant_id,
        run_id=run.run_id,
        target=run.target,
        sync_mode=run.sync_mode,
        arrow_schema="",
        columns=list(peer.columns),
        row_count=rows,
        staged=StagedParts(store="memory", location=f"{run.run_id}/a1", parts=1, bytes=100),
        cursor=cursor,
    )


async def test_an_incremental_run_starts_past_the_utc_normalised_cursor_of_the_last_succeeded_run(
    catalog: CatalogState, peer: Peer
) -> None:
    source = await peer.register("shop")
    commands, events = await peer.extract_commands(), await peer.events()

    first = await peer.start(source.connection_id, sync_mode="incremental", cursor_column="updated_at")
    command = await peer.next_command(commands)
    assert (command.sync_mode, command.cursor_column, command.since) == ("incremental", "updated_at", None)
    # The extractor wrote the instant with a +02:00 offset; the catalog keeps it in UTC.
    # ... and keeps the snapshot the run read in, for the next run to find rows committed late.
    seen = {"snapshot": "7401:7405:7401,7403"}
    event = await peer.succeed(
        first, events, rows=7, cursor=_cursor("2025-01-02T05:04:05+02:00", "updated_at", UPDATED_AT).model_copy(
            update=seen)
    )  # fmt: skip
    utc = _cursor("2025-01-02T03:04:05+00:00", "updated_at", UPDATED_AT).model_copy(update=seen)
    assert event.data.cursor == utc
    assert (await peer.run(first.run_id)).cursor == utc

    second = await peer.start(source.connection_id, sync_mode="incremental")
    command = await peer.next_command(commands)
    assert (command.run_id, command.cursor_column, command.since) == (second.run_id, "updated_at", utc)


async def test_a_failed_or_cancelled_run_leaves_the_cursor_where_the_last_success_put_it(
    catalog: CatalogState, peer: Peer
) -> None:
    source = await peer.register("shop")
    commands, events = await peer.extract_commands(), await peer.events()
    await peer.succeed(await peer.start(source.connection_id, sync_mode="merge"), events, cursor=_cursor("10"))
    await peer.next_command(commands)

    failing = await peer.start(source.connection_id, sync_mode="merge")
    await peer.step(failing.run_id, RunStep.EXTRACTED, _extracted(peer, failing, _cursor("20")))
    error = ErrorInfo(code="warehouse_error", message="the load failed")
    await peer.step(
        failing.run_id,
        RunStep.FAILED,
        Failed(tenant_id=peer.tenant_id, run_id=failing.run_id, step="load", error=error),
    )
    assert (await peer.event_of(failing.run_id, events)).data.cursor is None
    assert (await peer.run(failing.run_id)).cursor is None

    cancelled = await peer.start(source.connection_id, sync_mode="merge")
    await peer.step(cancelled.run_id, RunStep.EXTRACTED, _extracted(peer, cancelled, _cursor("30")))
    await peer.cancel(cancelled.run_id)
    assert (await peer.event_of(cancelled.run_id, events)).data.status == "cancelled"

    await peer.start(source.connection_id, sync_mode="merge")
    since = [(await peer.next_command(commands)).since for _ in range(3)]
    assert since == [_cursor("10")] * 3


async def test_a_full_sync_records_the_cursor_it_extracted_and_one_without_a_cursor_clears_it(
    catalog: CatalogState, peer: Peer
) -> None:
    source = await peer.register("shop")
    commands, events = await peer.extract_commands(), await peer.events()

    full = await peer.start(source.connection_id, cursor_column="id")
    command = await peer.next_command(commands)
    assert (command.sync_mode, command.cursor_column, command.since) == ("full", "id", None)
    await peer.succeed(full, events, cursor=_cursor("99"))

    await peer.succeed(await peer.start(source.connection_id, sync_mode="incremental"), events, cursor=_cursor("120"))
    assert (await peer.next_command(commands)).since == _cursor("99")

    # A full sync always reads everything, whatever the stored cursor; its column is asked for again.
    await peer.succeed(await peer.start(source.connection_id), events, cursor=None)
    command = await peer.next_command(commands)
    assert (command.cursor_column, command.since) == ("id", None)

    await peer.start(source.connection_id, sync_mode="incremental", cursor_column="id")
    assert (await peer.next_command(commands)).since is None


async def test_switching_the_cursor_column_is_refused_for_incremental_and_starts_merge_from_the_beginning(
    catalog: CatalogState, peer: Peer
) -> None:
    source = await peer.register("shop")
    commands, events = await peer.extract_commands(), await peer.events()
    stored = _cursor("2025-01-02T03:04:05+00:00", "updated_at", UPDATED_AT)
    await peer.succeed(await peer.start(source.connection_id, sync_mode="incremental"), events, cursor=stored)
    await peer.next_command(commands)

    with pytest.raises(InvalidInput) as refused:
        await peer.start(source.connection_id, sync_mode="incremental", cursor_column="id")
    assert "column 'updated_at'" in str(refused.value)
    assert "run a full sync with cursor_column 'id' first" in str(refused.value)

    await peer.start(source.connection_id, sync_mode="merge", cursor_column="id")
    command = await peer.next_command(commands)
    assert (command.sync_mode, command.cursor_column, command.since) == ("merge", "id", None)


async def test_a_completed_event_and_the_run_carry_rows_bytes_duration_schema_changes_and_cursor(
    catalog: CatalogState, peer: Peer
) -> None:
    source = await peer.register("shop")
    events = await peer.events()
    run = await peer.start(source.connection_id, sync_mode="merge", cursor_column="id")
    changes = [
        SchemaChange(column="email", change="added", after="string"),
        SchemaChange(column="fax", change="dropped", before="string"),
    ]

    event = await peer.succeed(run, events, rows=40, cursor=_cursor("40"), schema_changes=changes, primary_key=["id"])

    data = event.data
    assert (data.status, data.sync_mode, data.row_count, data.bytes) == ("succeeded", "merge", 40, 400)
    assert (data.schema_changes, data.cursor, data.schedule_id) == (changes, _cursor("40"), None)
    assert data.duration_seconds is not None
    view = await peer.run(run.run_id)
    assert (view.rows_extracted, view.row_count, view.schema_changes, view.cursor) == (40, 40, changes, _cursor("40"))
    assert view.duration_seconds == data.duration_seconds


async def test_a_dataset_counts_the_rows_an_incremental_run_appended_and_a_merge_leaves_the_count_unknown(
    catalog: CatalogState, peer: Peer
) -> None:
    source = await peer.register("shop")
    events = await peer.events()

    async def rows() -> int | None:
        request = ListDatasets(tenant_id=peer.tenant_id)
        listing: DatasetList = await peer.rpc.call(peer.topology.datasets_list, request, DatasetList)
        (dataset,) = listing.datasets
        return dataset.row_count

    await peer.succeed(
        await peer.start(source.connection_id, sync_mode="incremental"), events, rows=5, cursor=_cursor("5")
    )
    assert await rows() == 5
    await peer.succeed(
        await peer.start(source.connection_id, sync_mode="incremental"), events, rows=3, cursor=_cursor("8")
    )
    assert await rows() == 8
    await peer.succeed(await peer.start(source.connection_id, sync_mode="merge"), events, rows=2, cursor=_cursor("9"))
    assert await rows() is None
    await peer.succeed(await peer.start(source.connection_id), events, rows=9, cursor=_cursor("9"))
    assert await rows() == 9


async def test_a_second_run_of_a_busy_table_is_refused_naming_the_active_run_until_it_finishes(
    catalog: CatalogState, peer: Peer
) -> None:
    source = await peer.register("shop")
    events = await peer.events()
    first = await peer.start(source.connection_id)

    with pytest.raises(Conflict) as refused:
        await peer.start(source.connection_id, sync_mode="incremental")
    assert first.run_id in str(refused.value)
    assert "cancel it (cancel_sync)" in str(refused.value)
    # Another table of the same source is not held up.
    await peer.start(source.connection_id, "customers")

    await peer.succeed(first, events)
    assert (await peer.start(source.connection_id)).status == "queued"


async def test_starts_of_one_table_at_the_same_moment_start_exactly_one_run(
    catalog: CatalogState, peer: Peer, db: asyncpg.Connection
) -> None:
    source = await peer.register("shop")

    outcomes = await asyncio.gather(*(peer.start(source.connection_id) for _ in range(6)), return_exceptions=True)

    started = [o for o in outcomes if isinstance(o, RunView)]
    refused = [o for o in outcomes if isinstance(o, Conflict)]
    assert (len(started), len(refused)) == (1, 5)
    assert all(started[0].run_id in str(error) for error in refused)
    assert await db.fetchval("SELECT count(*) FROM runs WHERE tenant_id = $1", peer.tenant_id) == 1
    assert (await peer.js.stream_info(peer.topology.cmd_stream.name)).state.messages == 1


async def test_range_steps_are_acknowledged_and_change_nothing(catalog: CatalogState, peer: Peer) -> None:
    settled = await peer.settlements("catalog_runs", peer.topology.run_stream.name)
    source = await peer.register("shop")
    run = await peer.start(source.connection_id)
    part = RangeExtracted(
        tenant_id=peer.tenant_id,
        run_id=run.run_id,
        index=1,
        row_count=500,
        staged=StagedParts(store="memory", location=f"{run.run_id}/r1", parts=1, bytes=50),
    )

    assert await settled.of(await peer.step(run.run_id, RunStep.RANGE, part)) == "+ACK"
    assert await peer.run(run.run_id) == run


async def test_the_bytes_of_every_range_count_towards_the_staged_bytes(
    catalog: CatalogState, peer: Peer, db: asyncpg.Connection
) -> None:
    source = await peer.register("shop")
    events = await peer.events()
    run = await peer.start(source.connection_id)
    ranges = [StagedParts(store="memory", location=f"{run.run_id}/r{n}", parts=1, bytes=1000) for n in (1, 2)]
    extracted = _extracted(peer, run, None, rows=30).model_copy(update={"ranges": ranges})

    await peer.step(run.run_id, RunStep.EXTRACTED, extracted)
    loaded = Loaded(tenant_id=peer.tenant_id, run_id=run.run_id, target=run.target, row_count=30, bytes=999)
    await peer.step(run.run_id, RunStep.LOADED, loaded)
    await peer.event_of(run.run_id, events)

    assert await db.fetchval("SELECT staged_bytes FROM runs WHERE run_id = $1", run.run_id) == 2100
