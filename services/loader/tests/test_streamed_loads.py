"""Runs loaded while they are extracted: `streaming` starts the load, `extracted` lets it commit, once.

The stand-in extractor announces `Streaming`, stages some parts, and the test waits until the
loader has read them (its progress) before the rest are staged and `Extracted` is published: the
overlap is shown by the loader's own steps, not by timing.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import TYPE_CHECKING

import pyarrow as pa
import pytest
from deltalake import DeltaTable
from lakegate.common.contracts.runs import (
    ErrorInfo,
    Extracting,
    Failed,
    Loaded,
    Loading,
    StagedParts,
    SyncMode,
    TableRef,
)
from lakegate.common.staging import PartWriter
from lakegate.common.subjects import RunStep
from lakegate.loader.app import LoaderState, serve
from lakegate.loader.config import LoaderSettings

if TYPE_CHECKING:
    from conftest import Extractor, LoaderProcess

SCHEMA = pa.schema([pa.field("id", pa.int64(), nullable=False), pa.field("name", pa.string())])


def rows(first: int, count: int, label: str = "row") -> pa.RecordBatch:
    ids = range(first, first + count)
    return pa.record_batch({"id": pa.array(ids, pa.int64()), "name": [f"{label} {i}" for i in ids]}, SCHEMA)


def commits_of(path: Path, run_id: str) -> int:
    return sum(1 for entry in DeltaTable(str(path)).history() if entry.get("lakegate.run_id") == run_id)


def ids_in(path: Path) -> list[int]:
    return sorted(DeltaTable(str(path)).to_pyarrow_table(columns=["id"]).column("id").to_pylist())


async def stream(extractor: Extractor, streaming_mode: SyncMode, target: TableRef, run_id: str, attempt: str = "a1",
                 cursor: str | None = None) -> PartWriter:  # fmt: skip
    """Announce `Streaming` for an attempt and hand back the writer of its parts."""
    await extractor.announce_streaming(
        extractor.streaming(run_id, target, SCHEMA, streaming_mode, attempt=attempt, cursor=cursor)
    )
    return await extractor.staging.writer(run_id, attempt)


def table_path(loader: LoaderState, target: TableRef) -> Path:
    return loader.warehouse.table_path(target)


async def test_a_streamed_run_is_loaded_while_its_parts_arrive_and_committed_once_extracted_counts_them(
    loader: LoaderState, extractor: Extractor
) -> None:
    target = extractor.target("streamed_full")
    run_id = extractor.new_run_id()
    steps = await extractor.watch(run_id)
    progress = await extractor.rows_loaded(run_id)
    extracted_acks, streaming_acks = await extractor.acks(), await extractor.acks("loader_streaming")

    writer = await stream(extractor, "full", target, run_id)
    await writer.write(rows(0, 500))
    await writer.write(rows(500, 500))
    await steps.next(Loading)
    await progress.reach(1000)  # the loader holds two parts' rows before `extracted` exists
    assert not any(isinstance(step, Loaded) for step in steps.drain())
    assert not table_path(loader, target).joinpath("_delta_log").exists()

    await writer.write(rows(1000, 500))
    staged = await writer.close()
    await extractor.announce(extractor.extracted(run_id, target, SCHEMA, staged, 1500))
    loaded = await steps.next(Loaded)

    assert loaded.row_count == 1500
    assert await asyncio.wait_for(streaming_acks.get(), 10) == b"+ACK"
    assert await asyncio.wait_for(extracted_acks.get(), 10) == b"+ACK"  # acknowledged without a second load
    path = table_path(loader, target)
    assert commits_of(path, run_id) == 1
    assert ids_in(path) == list(range(1500))
    assert await extractor.staged_messages(run_id) == 0


async def test_a_streamed_incremental_run_appends_its_rows_once_and_the_cursor_comes_from_extracted(
    loader: LoaderState, extractor: Extractor
) -> None:
    target = extractor.target("streamed_incremental")
    await extractor.sync(target, [rows(0, 10)])
    run_id = extractor.new_run_id()
    steps = await extractor.watch(run_id)
    progress = await extractor.rows_loaded(run_id)

    writer = await stream(extractor, "incremental", target, run_id, cursor="id")
    await writer.write(rows(10, 5))
    await progress.reach(5)
    await writer.write(rows(15, 5))
    extracted = extractor.extracted(run_id, target, SCHEMA, await writer.close(), 10, "incremental", cursor="id")
    await extractor.announce(extracted)
    loaded = await steps.next(Loaded)

    assert (loaded.row_count, loaded.table_version) == (10, 1)
    assert ids_in(table_path(loader, target)) == list(range(20))
    assert commits_of(table_path(loader, target), run_id) == 1


async def test_an_extraction_attempt_that_stops_mid_stream_is_abandoned_and_the_next_attempt_commits_once(
    loader: LoaderState, extractor: Extractor
) -> None:
    target = extractor.target("streamed_retry")
    run_id = extractor.new_run_id()
    steps = await extractor.watch(run_id)
    progress = await extractor.rows_loaded(run_id)
    streaming_acks = await extractor.acks("loader_streaming")

    first = await stream(extractor, "full", target, run_id, attempt="a1")
    await first.write(rows(0, 300, "first try"))
    await first.write(rows(300, 300, "first try"))
    await progress.reach(600)
    # The extractor died; JetStream redelivered its command as attempt a2, which starts over.
    await extractor.step(run_id, RunStep.EXTRACTING, Extracting(tenant_id=extractor.tenant_id, run_id=run_id,
                                                                attempt="a2"), suffix=".a2")  # fmt: skip
    assert await asyncio.wait_for(streaming_acks.get(), 10) == b"+ACK"  # a1's load stopped
    second = await stream(extractor, "full", target, run_id, attempt="a2")
    await second.write(rows(0, 400, "second try"))
    await second.write(rows(400, 400, "second try"))
    await extractor.announce(extractor.extracted(run_id, target, SCHEMA, await second.close(), 800))
    loaded = await steps.next(Loaded)

    assert loaded.row_count == 800
    assert await asyncio.wait_for(streaming_acks.get(), 10) == b"+ACK"
    path = table_path(loader, target)
    assert commits_of(path, run_id) == 1
    names = DeltaTable(str(path)).to_pyarrow_table(columns=["name"]).column("name").to_pylist()
    assert len(names) == 800
    assert all(name.startswith("second try") for name in names)
    assert sum(isinstance(step, Loaded) for step in steps.drain()) == 1


async def test_a_streamed_run_cancelled_mid_stream_commits_nothing_and_reports_no_failure(
    loader: LoaderState, extractor: Extractor
) -> None:
    target = extractor.target("streamed_cancelled")
    run_id = extractor.new_run_id()
    steps = await extractor.watch(run_id)
    progress = await extractor.rows_loaded(run_id)
    streaming_acks = await extractor.acks("loader_streaming")

    writer = await stream(extractor, "full", target, run_id)
    await writer.write(rows(0, 200))
    await progress.reach(200)
    await extractor.nc.publish(extractor.topology.cancel(run_id), b"")

    assert await asyncio.wait_for(streaming_acks.get(), 10) == b"+TERM"
    await extractor.nc.flush()
    assert not any(isinstance(step, Failed | Loaded) for step in steps.drain())
    assert not table_path(loader, target).joinpath("_delta_log").exists()
    assert await extractor.staged_messages(run_id) == 0


async def test_a_run_whose_extraction_fails_mid_stream_commits_nothing_and_the_loader_adds_no_step(
    loader: LoaderState, extractor: Extractor
) -> None:
    target = extractor.target("streamed_failed")
    await extractor.sync(target, [rows(0, 3, "kept")])
    run_id = extractor.new_run_id()
    steps = await extractor.watch(run_id)
    progress = await extractor.rows_loaded(run_id)
    streaming_acks = await extractor.acks("loader_streaming")

    writer = await stream(extractor, "full", target, run_id)
    await writer.write(rows(0, 200, "lost"))
    await progress.reach(200)
    error = ErrorInfo(code="source_error", message="the source went away")
    await extractor.step(run_id, RunStep.FAILED, Failed(tenant_id=extractor.tenant_id, run_id=run_id, step="extract",
                                                        error=error))  # fmt: skip

    assert await asyncio.wait_for(streaming_acks.get(), 10) == b"+ACK"
    await extractor.nc.flush()
    failures = [step for step in steps.drain() if isinstance(step, Failed)]
    assert [failed.step for failed in failures] == ["extract"]
    assert not any(isinstance(step, Loaded) for step in steps.seen)
    path = table_path(loader, target)
    assert commits_of(path, run_id) == 0
    names = DeltaTable(str(path)).to_pyarrow_table(columns=["name"]).column("name").to_pylist()
    assert names == ["kept 0", "kept 1", "kept 2"]


async def test_an_extracted_run_without_streaming_is_loaded_on_extracted_as_before(extractor: Extractor) -> None:
    _, loaded = await extractor.sync(extractor.target("not_streamed"), [rows(0, 7)])

    assert loaded.row_count == 7


@pytest.mark.parametrize("mode", ["full", "incremental"])
async def test_a_loader_killed_mid_stream_commits_nothing_and_its_redelivery_commits_once_with_every_row(
    mode: SyncMode,
    loader_settings: LoaderSettings,
    lone_extractor: Extractor,
    tmp_path: Path,
    loader_process: LoaderProcess,
) -> None:
    extractor = lone_extractor
    loader_settings = loader_settings.model_copy(update={"ack_wait_seconds": 4.0})
    target = extractor.target(f"streamed_crash_{mode}")
    path = loader_settings.lakehouse / target.catalog / target.schema_name / target.name
    process = await loader_process(loader_settings, tmp_path / "loader.log")
    run_id = extractor.new_run_id()
    await extractor.sync(target, [rows(0, 10, "before")], timeout=60.0)
    steps = await extractor.watch(run_id)
    progress = await extractor.rows_loaded(run_id)
    writer = await stream(extractor, mode, target, run_id, cursor="id")
    await writer.write(rows(10, 400))
    await writer.write(rows(410, 400))
    await progress.reach(800, timeout=60.0)
    process.kill()
    await process.wait()
    assert commits_of(path, run_id) == 0

    await writer.write(rows(810, 400))
    staged: StagedParts = await writer.close()
    await extractor.announce(extractor.extracted(run_id, target, SCHEMA, staged, 1200, mode, cursor="id"))
    async with serve(loader_settings):
        loaded = await steps.next(Loaded, timeout=loader_settings.ack_wait_seconds + 60)

    assert commits_of(path, run_id) == 1
    assert loaded.row_count == 1200
    expected = list(range(10, 1210)) if mode == "full" else list(range(1210))
    assert ids_in(path) == expected


@pytest.mark.parametrize("loader_settings", [{"stream_idle_seconds": 1.0}], indirect=True)
async def test_a_streamed_load_that_hears_nothing_for_a_while_is_retried_and_commits_once_the_run_is_extracted(
    loader: LoaderState, extractor: Extractor
) -> None:
    target = extractor.target("streamed_idle")
    run_id = extractor.new_run_id()
    steps = await extractor.watch(run_id)
    streaming_acks = await extractor.acks("loader_streaming")

    writer = await stream(extractor, "full", target, run_id)
    await writer.write(rows(0, 100))
    # Nothing more for longer than the loader waits: it lets the message go, to read it again later.
    assert (await asyncio.wait_for(streaming_acks.get(), 30)).startswith(b"-NAK")
    await writer.write(rows(100, 100))
    await extractor.announce(extractor.extracted(run_id, target, SCHEMA, await writer.close(), 200))
    loaded = await steps.next(Loaded, timeout=60)

    assert loaded.row_count == 200
    assert commits_of(table_path(loader, target), run_id) == 1


async def test_while_the_loader_follows_one_run_another_extracted_run_is_loaded_on_extracted_and_only_once(
    loader: LoaderState, extractor: Extractor
) -> None:
    slow, quick = extractor.target("streamed_slow"), extractor.target("streamed_quick")
    slow_id, quick_id = extractor.new_run_id(), extractor.new_run_id()
    slow_steps, quick_steps = await extractor.watch(slow_id), await extractor.watch(quick_id)
    progress = await extractor.rows_loaded(slow_id)
    streaming_acks = await extractor.acks("loader_streaming")

    slow_writer = await stream(extractor, "full", slow, slow_id)
    await slow_writer.write(rows(0, 100))
    await progress.reach(100)  # the loader's one streamed load follows the slow run
    quick_writer = await stream(extractor, "full", quick, quick_id)
    await quick_writer.write(rows(0, 50))
    await extractor.announce(extractor.extracted(quick_id, quick, SCHEMA, await quick_writer.close(), 50))
    quick_loaded = await quick_steps.next(Loaded)  # not held up behind the slow run's extraction

    assert quick_loaded.row_count == 50
    assert not any(isinstance(step, Loaded) for step in slow_steps.drain())
    await slow_writer.write(rows(100, 100))
    await extractor.announce(extractor.extracted(slow_id, slow, SCHEMA, await slow_writer.close(), 200))
    assert (await slow_steps.next(Loaded)).row_count == 200
    # The quick run's `streaming`, taken last, finds it loaded and stops.
    assert [await asyncio.wait_for(streaming_acks.get(), 30) for _ in range(2)] == [b"+ACK", b"+ACK"]
    assert commits_of(table_path(loader, quick), quick_id) == 1
    assert ids_in(table_path(loader, quick)) == list(range(50))
