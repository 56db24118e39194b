"""Listing runs and synced datasets over NATS: order, pages, filters, durations and lineage."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest
from lakegate.catalog.app import CatalogState
from lakegate.common.contracts.catalog import DatasetList, ListDatasets, ListRuns, RunList
from lakegate.common.contracts.rpc import Reply
from lakegate.common.contracts.runs import RunRef, RunView
from lakegate.common.errors import NotFound

if TYPE_CHECKING:
    from conftest import Peer


async def _runs(peer: Peer, *, connection_id: str | None = None, limit: int = 50, offset: int = 0) -> RunList:
    request = ListRuns(tenant_id=peer.tenant_id, connection_id=connection_id, limit=limit, offset=offset)
    runs: RunList = await peer.rpc.call(peer.topology.runs_list, request, RunList)
    return runs


async def _datasets(peer: Peer, *, limit: int = 100, offset: int = 0) -> DatasetList:
    request = ListDatasets(tenant_id=peer.tenant_id, limit=limit, offset=offset)
    datasets: DatasetList = await peer.rpc.call(peer.topology.datasets_list, request, DatasetList)
    return datasets


async def test_runs_are_listed_newest_first_a_page_at_a_time_with_the_offset_of_the_next_page(
    catalog: CatalogState, peer: Peer
) -> None:
    source = await peer.register("shop")
    started = [(await peer.start(source.connection_id, f"table_{n}")).run_id for n in range(5)]
    newest_first = started[::-1]

    pages = [await _runs(peer, limit=2, offset=offset) for offset in (0, 2, 4)]

    assert [[run.run_id for run in page.runs] for page in pages] == [
        newest_first[0:2],
        newest_first[2:4],
        newest_first[4:],
    ]
    assert [page.next_offset for page in pages] == [2, 4, None]
    assert (await _runs(peer, limit=5)).next_offset is None
    assert await _runs(peer, offset=5) == RunList(runs=[], next_offset=None)


async def test_runs_can_be_listed_for_one_source_and_an_unknown_or_foreign_source_is_named(
    catalog: CatalogState, peer: Peer
) -> None:
    shop, crm = await peer.register("shop"), await peer.register("crm")
    shop_runs = [(await peer.start(shop.connection_id, table)).run_id for table in ("orders", "items")]
    await peer.start(crm.connection_id, "contacts")
    other = await peer.register("shop", tenant_id=f"{peer.tenant_id}_other")
    await peer.start(other.connection_id, tenant_id=f"{peer.tenant_id}_other")

    listed = await _runs(peer, connection_id=shop.connection_id)
    assert [run.run_id for run in listed.runs] == shop_runs[::-1]
    assert {run.connection_id for run in (await _runs(peer)).runs} == {shop.connection_id, crm.connection_id}

    with pytest.raises(NotFound, match="src_missing"):
        await _runs(peer, connection_id="src_missing")
    with pytest.raises(NotFound, match=other.connection_id):
        await _runs(peer, connection_id=other.connection_id)


async def test_a_finished_run_is_listed_with_its_duration_and_a_succeeded_one_with_its_throughput(
    catalog: CatalogState, peer: Peer
) -> None:
    source = await peer.register("shop")
    events = await peer.events()
    succeeded, failed, queued_run = [await peer.start(source.connection_id, name) for name in ("a", "b", "c")]
    succeeded_event = await peer.succeed(succeeded, events, rows=1000)
    failed_event = await peer.fail(failed, events)

    by_id = {run.run_id: run for run in (await _runs(peer)).runs}

    done = by_id[succeeded_event.subject]
    assert done.finished_at is not None
    assert done.started_at is not None
    assert done.duration_seconds == (done.finished_at - done.started_at).total_seconds()
    assert done.duration_seconds == succeeded_event.data.duration_seconds
    assert done.rows_per_second == (1000 / done.duration_seconds if done.duration_seconds else None)
    broken = by_id[failed_event.subject]
    assert broken.duration_seconds == failed_event.data.duration_seconds
    assert broken.rows_per_second is None
    waiting = by_id[queued_run.run_id]
    assert (waiting.status, waiting.duration_seconds, waiting.rows_per_second) == ("queued", None, None)
    ref = RunRef(tenant_id=peer.tenant_id, run_id=done.run_id)
    assert await peer.rpc.call(peer.topology.runs_get, ref, RunView) == done


async def test_a_synced_dataset_keeps_the_source_primary_key_and_when_it_last_synced(
    catalog: CatalogState, peer: Peer
) -> None:
    source = await peer.register("shop")
    events = await peer.events()
    first = await peer.start(source.connection_id, "orders")
    await peer.succeed(first, events, rows=10, primary_key=["region", "id"])

    (dataset,) = (await _datasets(peer)).datasets
    finished = (await _runs(peer)).runs[0].finished_at
    assert finished is not None
    assert dataset.kind == "synced"
    assert dataset.keys == ["region", "id"]
    assert dataset.last_synced_at == finished
    assert dataset.updated_at == finished
    assert (dataset.connection_id, dataset.source_table, dataset.last_run_id) == (
        source.connection_id,
        "public.orders",
        first.run_id,
    )
    assert (dataset.upstream, dataset.definition, dataset.file_name) == ([], None, None)

    # A later run that fails changes nothing; one that succeeds brings the key as the source has it now.
    await peer.fail(await peer.start(source.connection_id, "orders"), events)
    assert (await _datasets(peer)).datasets == [dataset]
    second = await peer.start(source.connection_id, "orders")
    await peer.succeed(second, events, rows=12, primary_key=["id"])
    (again,) = (await _datasets(peer)).datasets
    assert (again.keys, again.row_count, again.last_run_id) == (["id"], 12, second.run_id)
    assert again.last_synced_at is not None
    assert again.last_synced_at > finished


async def test_synced_datasets_are_listed_a_page_at_a_time_by_name(catalog: CatalogState, peer: Peer) -> None:
    source = await peer.register("shop")
    events = await peer.events()
    for table in ("customers", "orders", "items"):
        await peer.succeed(await peer.start(source.connection_id, table), events, rows=1)

    first = await _datasets(peer, limit=2)
    second = await _datasets(peer, limit=2, offset=first.next_offset or 0)

    assert [d.target.name for d in first.datasets] == ["shop_customers", "shop_items"]
    assert first.next_offset == 2
    assert ([d.target.name for d in second.datasets], second.next_offset) == (["shop_orders"], None)


async def test_a_request_that_is_not_the_listings_model_is_answered_invalid_input_naming_the_model_and_field(
    catalog: CatalogState, peer: Peer
) -> None:
    unreadable = await peer.nc.request(peer.topology.datasets_list, b"not json", timeout=5)
    wrong = await peer.nc.request(
        peer.topology.datasets_list, b'{"tenant_id": "' + peer.tenant_id.encode() + b'", "limit": "many"}', timeout=5
    )

    for answer in (unreadable, wrong):
        reply = Reply.model_validate_json(answer.data)
        assert reply.result is None
        assert reply.error is not None
        assert reply.error.code == "invalid_input"
        assert f"on {peer.topology.datasets_list} is not a valid ListDatasets" in reply.error.message
    assert Reply.model_validate_json(wrong.data).error.message.split(": ", 1)[1].startswith("limit:")  # type: ignore[union-attr]
    # The catalog still answers a good one.
    assert (await _datasets(peer)).datasets == []
