"""Cancelling a run: it ends `cancelled`, its workers are told to stop, subscribers hear of it once."""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

import pytest
from lakegate.catalog.app import CatalogState
from lakegate.common.contracts.events import SYNC_COMPLETED, SYNC_FAILED
from lakegate.common.contracts.runs import CancelRun, Cursor, Extracted, Extracting, Loaded, StagedParts
from lakegate.common.errors import InvalidInput, NotFound
from lakegate.common.subjects import RunStep
from nats.aio.msg import Msg

if TYPE_CHECKING:
    from conftest import Peer


class Signals:
    """The cancel signals of one run, as a worker subscribed to them receives them."""

    def __init__(self) -> None:
        self.received: asyncio.Queue[CancelRun] = asyncio.Queue()

    async def on(self, msg: Msg) -> None:
        await self.received.put(CancelRun.model_validate_json(msg.data))

    async def next(self) -> CancelRun:
        return await asyncio.wait_for(self.received.get(), 10)


async def _signals(peer: Peer, run_id: str) -> Signals:
    signals = Signals()
    await peer.nc.subscribe(peer.topology.cancel(run_id), cb=signals.on)
    await peer.nc.flush()
    return signals


async def test_cancelling_a_queued_run_ends_it_signals_its_workers_and_announces_it_on_sync_failed(
    catalog: CatalogState, peer: Peer
) -> None:
    source = await peer.register("shop")
    events = await peer.events()
    run = await peer.start(source.connection_id)
    signals = await _signals(peer, run.run_id)

    cancelled = await peer.cancel(run.run_id)

    assert cancelled.status == "cancelled"
    assert cancelled.finished_at is not None
    assert cancelled.error is not None
    assert cancelled.error.code == "cancelled"
    assert run.target.name in cancelled.error.message
    assert await peer.run(run.run_id) == cancelled
    assert await signals.next() == CancelRun(tenant_id=peer.tenant_id, run_id=run.run_id)
    subject, event = await peer.next_event(events)
    assert subject == peer.topology.sync_event(peer.tenant_id, "failed")
    assert (event.type, event.id, event.subject) == (SYNC_FAILED, f"{run.run_id}.failed", run.run_id)
    assert (event.data.status, event.data.error) == ("cancelled", cancelled.error)
    assert event.time == cancelled.finished_at


async def test_cancelling_twice_answers_the_same_run_and_announces_it_once(catalog: CatalogState, peer: Peer) -> None:
    source = await peer.register("shop")
    events = await peer.events()
    run = await peer.start(source.connection_id)

    first = await peer.cancel(run.run_id)
    assert await peer.cancel(run.run_id) == first

    assert (await peer.event_of(run.run_id, events)).data.status == "cancelled"
    assert await peer.barrier(source.connection_id, events) == []
    assert await peer.event_count() == 2


async def test_a_finished_unknown_or_foreign_run_cannot_be_cancelled(catalog: CatalogState, peer: Peer) -> None:
    source = await peer.register("shop")
    events = await peer.events()
    run = await peer.start(source.connection_id)
    await peer.succeed(run, events)

    with pytest.raises(InvalidInput, match=f"run {run.run_id} already finished: it succeeded at .* nothing to cancel"):
        await peer.cancel(run.run_id)
    with pytest.raises(NotFound, match="run_missing"):
        await peer.cancel("run_missing")
    foreign = CancelRun(tenant_id=f"{peer.tenant_id}_other", run_id=run.run_id)
    with pytest.raises(NotFound):
        await peer.rpc.call(peer.topology.runs_cancel, foreign, type(run))
    assert (await peer.run(run.run_id)).status == "succeeded"


async def test_a_cancelled_run_frees_its_table_for_the_next_run(catalog: CatalogState, peer: Peer) -> None:
    source = await peer.register("shop")
    run = await peer.start(source.connection_id)
    await peer.step(
        run.run_id, RunStep.EXTRACTING, Extracting(tenant_id=peer.tenant_id, run_id=run.run_id, attempt="a")
    )

    await peer.cancel(run.run_id)

    assert (await peer.start(source.connection_id)).status == "queued"


async def test_a_worker_still_busy_with_a_cancelled_run_is_told_again(catalog: CatalogState, peer: Peer) -> None:
    source = await peer.register("shop")
    run = await peer.start(source.connection_id)
    signals = await _signals(peer, run.run_id)
    await peer.cancel(run.run_id)
    await signals.next()

    # The command was redelivered to an extractor that missed the signal: it reports it is extracting.
    await peer.step(
        run.run_id, RunStep.EXTRACTING, Extracting(tenant_id=peer.tenant_id, run_id=run.run_id, attempt="b")
    )

    assert await signals.next() == CancelRun(tenant_id=peer.tenant_id, run_id=run.run_id)
    assert (await peer.run(run.run_id)).status == "cancelled"


async def test_a_load_that_committed_despite_the_cancel_makes_the_run_succeeded_and_moves_the_cursor(
    catalog: CatalogState, peer: Peer
) -> None:
    source = await peer.register("shop")
    commands, events = await peer.extract_commands(), await peer.events()
    run = await peer.start(source.connection_id, sync_mode="incremental", cursor_column="id")
    await peer.next_command(commands)
    cursor = Cursor(column="id", value="77", source_type="bigint")
    extracted = Extracted(
        tenant_id=peer.tenant_id,
        run_id=run.run_id,
        target=run.target,
        sync_mode="incremental",
        arrow_schema="",
        columns=list(peer.columns),
        row_count=77,
        staged=StagedParts(store="memory", location=f"{run.run_id}/a", parts=1, bytes=10),
        cursor=cursor,
    )
    await peer.step(run.run_id, RunStep.EXTRACTED, extracted)
    await peer.cancel(run.run_id)

    loaded = Loaded(tenant_id=peer.tenant_id, run_id=run.run_id, target=run.target, row_count=77, bytes=700)
    await peer.step(run.run_id, RunStep.LOADED, loaded)

    cancelled_event, completed_event = [await peer.event_of(run.run_id, events) for _ in range(2)]
    assert (cancelled_event.type, cancelled_event.data.status) == (SYNC_FAILED, "cancelled")
    assert (completed_event.type, completed_event.data.status) == (SYNC_COMPLETED, "succeeded")
    assert (completed_event.data.row_count, completed_event.data.cursor) == (77, cursor)
    view = await peer.run(run.run_id)
    assert (view.status, view.error, view.row_count, view.cursor) == ("succeeded", None, 77, cursor)

    await peer.start(source.connection_id, sync_mode="incremental")
    assert (await peer.next_command(commands)).since == cursor
