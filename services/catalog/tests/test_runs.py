"""Runs: starting one, and the steps that carry it to succeeded or failed, with its public event."""

from __future__ import annotations

from typing import TYPE_CHECKING

import asyncpg
import pytest
from lakegate.catalog.app import CatalogState
from lakegate.common.contracts.catalog import DatasetList, ListDatasets
from lakegate.common.contracts.events import SYNC_COMPLETED, SYNC_FAILED
from lakegate.common.contracts.runs import (
    ErrorInfo,
    Extracted,
    Extracting,
    ExtractTable,
    Failed,
    Loaded,
    Loading,
    RunRef,
    RunView,
    StagedParts,
    Streaming,
)
from lakegate.common.errors import InvalidInput, NotFound, Unavailable
from lakegate.common.subjects import RunStep
from nats.js.api import AckPolicy, ConsumerConfig

if TYPE_CHECKING:
    from conftest import Peer


async def _run_view(peer: Peer, run_id: str) -> RunView:
    view: RunView = await peer.rpc.call(
        peer.topology.runs_get, RunRef(tenant_id=peer.tenant_id, run_id=run_id), RunView
    )
    return view


def _extracted(peer: Peer, run: RunView, rows: int = 1234) -> Extracted:
    return Extracted(
        tenant_id=peer.tenant_id,
        run_id=run.run_id,
        target=run.target,
        sync_mode=run.sync_mode,
        arrow_schema="",
        columns=list(peer.columns),
        row_count=rows,
        staged=StagedParts(store="memory", location=f"{run.run_id}/a1", parts=2, bytes=2048),
    )


def _loaded(peer: Peer, run: RunView, rows: int = 1234) -> Loaded:
    return Loaded(
        tenant_id=peer.tenant_id, run_id=run.run_id, target=run.target, row_count=rows, bytes=65536, table_version=3
    )


async def test_starting_a_run_queues_it_and_publishes_one_extract_command_for_the_bronze_target(
    catalog: CatalogState, peer: Peer
) -> None:
    source = await peer.register("shop")

    run = await peer.start(source.connection_id, "sales.orders")

    assert run.run_id.startswith("run_")
    assert run.status == "queued"
    assert run.source_table == "sales.orders"
    assert run.target == peer.target("shop_sales_orders")
    assert await _run_view(peer, run.run_id) == run

    stream = peer.topology.cmd_stream.name
    assert (await peer.js.stream_info(stream)).state.messages == 1
    reader = await peer.js.pull_subscribe(
        peer.topology.cmd_extract,
        durable="test_extractor",
        stream=stream,
        config=ConsumerConfig(ack_policy=AckPolicy.EXPLICIT),
    )
    (message,) = await reader.fetch(1, timeout=10)
    assert message.headers is not None
    assert message.headers["Nats-Msg-Id"] == run.run_id
    assert ExtractTable.model_validate_json(message.data) == ExtractTable(
        tenant_id=peer.tenant_id,
        run_id=run.run_id,
        connection_id=source.connection_id,
        source_schema="sales",
        source_table="orders",
        target=peer.target("shop_sales_orders"),
        sync_mode="full",
    )


async def test_a_table_in_the_public_schema_becomes_source_underscore_table(catalog: CatalogState, peer: Peer) -> None:
    source = await peer.register("Shop DB")
    run = await peer.start(source.connection_id, "orders")
    assert run.source_table == "public.orders"
    assert run.target == peer.target("shop_db_orders")


async def test_a_run_is_refused_for_an_unknown_source_or_a_bad_table_name(catalog: CatalogState, peer: Peer) -> None:
    source = await peer.register("shop")

    with pytest.raises(NotFound, match="src_missing"):
        await peer.start("src_missing")
    with pytest.raises(InvalidInput, match="too many or empty dotted parts"):
        await peer.start(source.connection_id, "a.b.c")
    with pytest.raises(InvalidInput, match="use letters, digits, _, \\$ and -"):
        await peer.start(source.connection_id, "/etc/passwd")
    with pytest.raises(InvalidInput, match="at most 63 bytes"):
        await peer.start(source.connection_id, "x" * 100_000)
    assert (await peer.js.stream_info(peer.topology.cmd_stream.name)).state.messages == 0


async def test_steps_drive_a_run_to_succeeded_with_its_dataset_and_one_completed_event_despite_duplicates(
    catalog: CatalogState, peer: Peer, db: asyncpg.Connection
) -> None:
    source = await peer.register("shop")
    run = await peer.start(source.connection_id, "orders")
    events = await peer.events()

    await peer.step(
        run.run_id, RunStep.EXTRACTING, Extracting(tenant_id=peer.tenant_id, run_id=run.run_id, attempt="a1")
    )
    await peer.step(run.run_id, RunStep.EXTRACTED, _extracted(peer, run))
    await peer.step(run.run_id, RunStep.LOADING, Loading(tenant_id=peer.tenant_id, run_id=run.run_id))
    await peer.step(run.run_id, RunStep.LOADED, _loaded(peer, run))
    # A redelivered `loaded` and a late `extracting` must change nothing and announce nothing again.
    await peer.step(run.run_id, RunStep.LOADED, _loaded(peer, run))
    await peer.step(
        run.run_id, RunStep.EXTRACTING, Extracting(tenant_id=peer.tenant_id, run_id=run.run_id, attempt="a2")
    )

    subject, event = await peer.next_event(events)
    assert subject == peer.topology.sync_event(peer.tenant_id, "completed")
    assert event.id == f"{run.run_id}.completed"
    assert event.type == SYNC_COMPLETED
    assert event.subject == run.run_id
    assert event.data.status == "succeeded"
    assert event.data.row_count == 1234
    assert event.data.bytes == 65536
    assert event.data.target == run.target
    assert event.data.source_table == "public.orders"
    assert event.data.columns == list(peer.columns)
    assert event.data.duration_seconds is not None
    assert event.data.duration_seconds >= 0

    assert await peer.barrier(source.connection_id, events) == []
    assert await peer.event_count() == 2  # this run's and the barrier's, nothing else

    view = await _run_view(peer, run.run_id)
    assert view.status == "succeeded"
    assert view.row_count == 1234
    assert view.bytes == 65536
    assert view.columns == list(peer.columns)
    assert view.started_at is not None
    assert view.finished_at is not None
    assert view.finished_at >= view.started_at >= view.created_at
    assert event.time == view.finished_at
    row = await db.fetchrow("SELECT attempt, attempts, table_version FROM runs WHERE run_id = $1", run.run_id)
    assert row is not None
    assert (row["attempt"], row["attempts"], row["table_version"]) == ("a1", 1, 3)

    datasets = await peer.rpc.call(peer.topology.datasets_list, ListDatasets(tenant_id=peer.tenant_id), DatasetList)
    (dataset,) = datasets.datasets
    assert dataset.target == run.target
    assert dataset.connection_id == source.connection_id
    assert dataset.source_table == "public.orders"
    assert dataset.row_count == 1234
    assert dataset.columns == list(peer.columns)
    assert dataset.last_run_id == run.run_id
    assert await db.fetchval("SELECT count(*) FROM datasets WHERE tenant_id = $1", peer.tenant_id) == 1


async def test_a_second_run_of_the_same_table_updates_its_dataset(catalog: CatalogState, peer: Peer) -> None:
    source = await peer.register("shop")
    events = await peer.events()
    for rows in (10, 20):
        run = await peer.start(source.connection_id, "orders")
        await peer.step(run.run_id, RunStep.EXTRACTED, _extracted(peer, run, rows))
        await peer.step(run.run_id, RunStep.LOADED, _loaded(peer, run, rows))
        _, event = await peer.next_event(events)
        assert event.subject == run.run_id

    datasets = await peer.rpc.call(peer.topology.datasets_list, ListDatasets(tenant_id=peer.tenant_id), DatasetList)
    (dataset,) = datasets.datasets
    assert (dataset.row_count, dataset.last_run_id) == (20, run.run_id)


async def test_a_run_reports_the_rows_its_merge_deleted_and_none_when_it_did_not_detect_deletes(
    catalog: CatalogState, peer: Peer, db: asyncpg.Connection
) -> None:
    source = await peer.register("shop")
    events = await peer.events()
    reported: list[tuple[int | None, int | None, int | None]] = []
    for deleted in (7, None):
        run = await peer.start(source.connection_id, "orders", sync_mode="merge", cursor_column="id")
        await peer.step(run.run_id, RunStep.EXTRACTED, _extracted(peer, run))
        loaded = _loaded(peer, run).model_copy(update={"deleted_rows": deleted})
        await peer.step(run.run_id, RunStep.LOADED, loaded)
        _, event = await peer.next_event(events)
        stored = await db.fetchval("SELECT deleted_rows FROM runs WHERE run_id = $1", run.run_id)
        reported.append((event.data.deleted_rows, (await _run_view(peer, run.run_id)).deleted_rows, stored))

    assert reported == [(7, 7, 7), (None, None, None)]


async def test_a_loaded_step_that_overtakes_extracted_waits_for_it(catalog: CatalogState, peer: Peer) -> None:
    source = await peer.register("shop")
    run = await peer.start(source.connection_id, "orders")
    events = await peer.events()

    await peer.step(run.run_id, RunStep.LOADED, _loaded(peer, run))
    await peer.step(run.run_id, RunStep.EXTRACTED, _extracted(peer, run))

    _, event = await peer.next_event(events)
    assert event.data.status == "succeeded"
    assert event.data.columns == list(peer.columns)


async def test_a_failed_step_fails_the_run_and_publishes_a_failed_event(catalog: CatalogState, peer: Peer) -> None:
    source = await peer.register("shop")
    run = await peer.start(source.connection_id, "orders")
    events = await peer.events()
    error = ErrorInfo(code="source_error", message="table public.orders does not exist in source shop; check the name")

    await peer.step(
        run.run_id, RunStep.EXTRACTING, Extracting(tenant_id=peer.tenant_id, run_id=run.run_id, attempt="a1")
    )
    await peer.step(
        run.run_id, RunStep.FAILED, Failed(tenant_id=peer.tenant_id, run_id=run.run_id, step="extract", error=error)
    )
    # A `loaded` after `failed` is too late: the run stays failed.
    await peer.step(run.run_id, RunStep.LOADED, _loaded(peer, run))

    subject, event = await peer.next_event(events)
    assert subject == peer.topology.sync_event(peer.tenant_id, "failed")
    assert event.type == SYNC_FAILED
    assert event.id == f"{run.run_id}.failed"
    assert event.data.status == "failed"
    assert event.data.error == error

    assert await peer.barrier(source.connection_id, events) == []
    assert await peer.event_count() == 2
    view = await _run_view(peer, run.run_id)
    assert view.status == "failed"
    assert view.error == error
    assert view.finished_at is not None
    datasets = await peer.rpc.call(peer.topology.datasets_list, ListDatasets(tenant_id=peer.tenant_id), DatasetList)
    assert datasets.datasets == []


async def test_a_run_that_fails_after_its_rows_were_read_reports_that_it_wrote_none(
    catalog: CatalogState, peer: Peer
) -> None:
    source = await peer.register("shop")
    run = await peer.start(source.connection_id, "orders")
    events = await peer.events()
    error = ErrorInfo(code="warehouse_error", message="loading failed; run a full sync")

    await peer.step(run.run_id, RunStep.EXTRACTED, _extracted(peer, run, 1234))
    await peer.step(
        run.run_id, RunStep.FAILED, Failed(tenant_id=peer.tenant_id, run_id=run.run_id, step="load", error=error)
    )

    _, event = await peer.next_event(events)
    assert event.data.status == "failed"
    assert not event.data.row_count, "the event claims no rows written"
    view = await _run_view(peer, run.run_id)
    assert (view.status, view.row_count) == ("failed", 0)


async def test_a_step_claiming_another_tenant_leaves_the_run_alone(catalog: CatalogState, peer: Peer) -> None:
    source = await peer.register("shop")
    run = await peer.start(source.connection_id, "orders")
    events = await peer.events()
    error = ErrorInfo(code="source_error", message="forged")

    await peer.step(
        run.run_id,
        RunStep.FAILED,
        Failed(tenant_id=f"{peer.tenant_id}_other", run_id=run.run_id, step="extract", error=error),
    )

    assert await peer.barrier(source.connection_id, events) == []
    assert (await _run_view(peer, run.run_id)).status == "queued"


async def test_a_run_whose_command_jetstream_refuses_is_failed_instead_of_left_queued(
    catalog: CatalogState, peer: Peer, db: asyncpg.Connection
) -> None:
    source = await peer.register("shop")
    events = await peer.events()
    await peer.js.delete_stream(peer.topology.cmd_stream.name)

    with pytest.raises(Unavailable, match="could not be queued") as refused:
        await peer.start(source.connection_id, "orders")

    run_id = await db.fetchval("SELECT run_id FROM runs WHERE tenant_id = $1", peer.tenant_id)
    assert run_id in str(refused.value)
    view = await _run_view(peer, run_id)
    assert view.status == "failed"
    assert view.error is not None
    assert view.error.code == "unavailable"
    _, event = await peer.next_event(events)
    assert (event.subject, event.data.status) == (run_id, "failed")


async def test_a_run_loaded_while_it_is_extracted_counts_a_new_attempt_and_succeeds_once_extracted_and_loaded(
    catalog: CatalogState, peer: Peer, db: asyncpg.Connection
) -> None:
    settled = await peer.settlements("catalog_runs", peer.topology.run_stream.name)
    source = await peer.register("shop")
    run = await peer.start(source.connection_id, "orders")
    events = await peer.events()

    def extracting(attempt: str) -> Extracting:
        return Extracting(tenant_id=peer.tenant_id, run_id=run.run_id, attempt=attempt)

    await settled.of(await peer.step(run.run_id, RunStep.EXTRACTING, extracting("a1")))
    streaming = Streaming(
        tenant_id=peer.tenant_id,
        run_id=run.run_id,
        attempt="a1",
        target=run.target,
        sync_mode=run.sync_mode,
        arrow_schema="",
        columns=list(peer.columns),
        location=peer.topology.stage(run.run_id, "a1"),
    )
    ack = await peer.js.publish(
        peer.topology.run_streaming(run.run_id),
        streaming.model_dump_json().encode(),
        stream=peer.topology.run_stream.name,
    )
    assert await settled.of(ack.seq) == "+ACK"  # the loader's business: acknowledged, nothing recorded
    await settled.of(await peer.step(run.run_id, RunStep.LOADING, Loading(tenant_id=peer.tenant_id, run_id=run.run_id)))
    assert (await _run_view(peer, run.run_id)).status == "loading"
    await settled.of(await peer.step(run.run_id, RunStep.EXTRACTING, extracting("a2")))
    await settled.of(await peer.step(run.run_id, RunStep.EXTRACTED, _extracted(peer, run)))
    await peer.step(run.run_id, RunStep.LOADED, _loaded(peer, run))

    _, event = await peer.next_event(events)
    assert event.data.status == "succeeded"
    assert event.data.row_count == 1234
    assert event.data.columns == list(peer.columns)
    row = await db.fetchrow("SELECT attempt, attempts, status FROM runs WHERE run_id = $1", run.run_id)
    assert (row["attempt"], row["attempts"], row["status"]) == ("a2", 2, "succeeded")
