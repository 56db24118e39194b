"""Fixtures for the loader: a running loader on the test's own prefix, and a stand-in extractor.

`Extractor` is a real producer of what the extractor service sends: parts staged with
`JetStreamStaging` and an `Extracted` message on the run stream. `Steps` collects the steps the
loader publishes for one run, so a test waits on them instead of sleeping.
"""

from __future__ import annotations

import asyncio
import base64
import os
import sys
import uuid
from collections.abc import AsyncIterator, Callable, Coroutine, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import nats
import pyarrow as pa
import pytest
from lakegate.common.broker import MAX_PART_BYTES, ensure_streams
from lakegate.common.contracts.runs import (
    ColumnMapping,
    Cursor,
    Extracted,
    Failed,
    Loaded,
    Loading,
    Progress,
    StagedParts,
    Streaming,
    SyncMode,
    TableRef,
)
from lakegate.common.contracts.transforms import DatasetRecord
from lakegate.common.contracts.warehouse import QueryResult, RunQuery
from lakegate.common.names import tenant_catalog
from lakegate.common.settings import NatsSettings
from lakegate.common.staging import PART_HEADER, JetStreamStaging
from lakegate.common.subjects import RunStep, Topology
from lakegate.loader.app import LoaderState, serve
from lakegate.loader.config import LoaderSettings
from nats.aio.client import Client
from nats.aio.msg import Msg
from nats.js import JetStreamContext
from pydantic import BaseModel

M = TypeVar("M", bound=BaseModel)
STEP_MODELS: dict[str, type[BaseModel]] = {"loading": Loading, "loaded": Loaded, "failed": Failed}


@dataclass
class Steps:
    """The steps the loader published for one run, in the order they arrived (core NATS, lossless here)."""

    queue: asyncio.Queue[BaseModel] = field(default_factory=asyncio.Queue)
    seen: list[BaseModel] = field(default_factory=list)

    async def on_message(self, msg: Msg) -> None:
        step = msg.subject.rsplit(".", 1)[-1]
        model = STEP_MODELS.get(step)
        if model is not None:
            await self.queue.put(model.model_validate_json(msg.data))

    def drain(self) -> list[BaseModel]:
        """Every step that has arrived so far, without waiting."""
        while not self.queue.empty():
            self.seen.append(self.queue.get_nowait())
        return self.seen

    async def next(self, kind: type[M], timeout: float = 30.0) -> M:
        """The next step of type `kind`, skipping others (e.g. `Loading`)."""
        async with asyncio.timeout(timeout):
            while True:
                message = await self.queue.get()
                self.seen.append(message)
                if isinstance(message, kind):
                    return message


def _encoded(schema: pa.Schema) -> str:
    """The schema as an `Extracted` or `Streaming` carries it."""
    return base64.b64encode(schema.serialize().to_pybytes()).decode("ascii")


def _columns(schema: pa.Schema) -> list[ColumnMapping]:
    return [ColumnMapping(name=f.name, source_type="test", arrow_type=str(f.type), mapped=True) for f in schema]


@dataclass
class LoadProgress:
    """A run's loading progress, as the loader reports it."""

    rows: asyncio.Queue[int] = field(default_factory=asyncio.Queue)

    async def reach(self, rows: int, timeout: float = 30.0) -> None:
        """Wait until the loader reports at least `rows` rows read."""
        async with asyncio.timeout(timeout):
            while await self.rows.get() < rows:
                pass


@dataclass
class Extractor:
    """Produces what the extractor service produces, into the fixture NATS under the test's prefix."""

    nc: Client
    js: JetStreamContext
    topology: Topology
    tenant_id: str

    @staticmethod
    def new_run_id() -> str:
        return f"run{uuid.uuid4().hex[:12]}"

    def target(self, name: str, layer: str = "bronze") -> TableRef:
        return TableRef(catalog=tenant_catalog(self.tenant_id), schema_name=layer, name=name)

    @property
    def staging(self) -> JetStreamStaging:
        return JetStreamStaging(self.js, self.topology, MAX_PART_BYTES)

    async def stage(self, run_id: str, batches: Sequence[pa.RecordBatch], attempt: str = "a1") -> StagedParts:
        writer = await self.staging.writer(run_id, attempt)
        for batch in batches:
            await writer.write(batch)
        return await writer.close()

    async def watch(self, run_id: str) -> Steps:
        steps = Steps()
        await self.nc.subscribe(f"{self.topology.prefix}.run.{run_id}.*", cb=steps.on_message)
        await self.nc.flush()
        return steps

    def extracted(
        self,
        run_id: str,
        target: TableRef,
        schema: pa.Schema,
        staged: StagedParts,
        row_count: int,
        sync_mode: SyncMode = "full",
        *,
        primary_key: Sequence[str] = (),
        cursor: str | None = None,
        ranges: Sequence[StagedParts] = (),
    ) -> Extracted:
        return Extracted(
            primary_key=list(primary_key),
            cursor=Cursor(column=cursor, value="0", source_type="test") if cursor else None,
            ranges=list(ranges),
            tenant_id=self.tenant_id,
            run_id=run_id,
            target=target,
            sync_mode=sync_mode,
            arrow_schema=_encoded(schema),
            columns=_columns(schema),
            row_count=row_count,
            staged=staged,
        )

    async def announce(self, extracted: Extracted, delivery: str = "1") -> None:
        """Publish `run.<id>.extracted`; a new `delivery` makes JetStream deliver the same content again."""
        await self.js.publish(
            self.topology.run_step(extracted.run_id, RunStep.EXTRACTED),
            extracted.model_dump_json().encode(),
            stream=self.topology.run_stream.name,
            headers={"Nats-Msg-Id": f"{extracted.run_id}.extracted.{delivery}"},
        )

    async def sync(
        self,
        target: TableRef,
        batches: Sequence[pa.RecordBatch],
        sync_mode: SyncMode = "full",
        *,
        primary_key: Sequence[str] = (),
        cursor: str | None = None,
        timeout: float = 30.0,
        source_keys: Sequence[pa.RecordBatch] | None = None,
    ) -> tuple[Extracted, Loaded]:
        """Stage the batches as a new run, announce it and wait for the loader's `Loaded`.

        `source_keys`: a merge with detect_deletes, these being every key at the source.
        """
        extracted, steps = await self.start(
            target, batches, sync_mode, primary_key=primary_key, cursor=cursor, source_keys=source_keys
        )
        return extracted, await steps.next(Loaded, timeout)

    async def start(
        self,
        target: TableRef,
        batches: Sequence[pa.RecordBatch],
        sync_mode: SyncMode = "full",
        *,
        primary_key: Sequence[str] = (),
        cursor: str | None = None,
        source_keys: Sequence[pa.RecordBatch] | None = None,
    ) -> tuple[Extracted, Steps]:
        """Stage the batches as a new run and announce it; the steps tell how it ends."""
        run_id = self.new_run_id()
        steps = await self.watch(run_id)
        staged = await self.stage(run_id, batches)
        keys = await self.stage(run_id, source_keys, attempt="a1-keys") if source_keys is not None else None
        extracted = self.extracted(
            run_id,
            target,
            batches[0].schema,
            staged,
            sum(b.num_rows for b in batches),
            sync_mode,
            primary_key=primary_key,
            cursor=cursor,
        ).model_copy(update={"source_keys": keys})
        await self.announce(extracted)
        return extracted, steps

    def streaming(
        self,
        run_id: str,
        target: TableRef,
        schema: pa.Schema,
        sync_mode: SyncMode = "full",
        *,
        attempt: str = "a1",
        primary_key: Sequence[str] = (),
        cursor: str | None = None,
    ) -> Streaming:
        """What the extractor announces before an attempt's first part (its parts go to `stage(run_id, attempt)`)."""
        return Streaming(
            tenant_id=self.tenant_id,
            run_id=run_id,
            attempt=attempt,
            target=target,
            sync_mode=sync_mode,
            arrow_schema=_encoded(schema),
            columns=_columns(schema),
            location=self.topology.stage(run_id, attempt),
            primary_key=list(primary_key),
            cursor_column=cursor,
        )

    async def announce_streaming(self, streaming: Streaming) -> None:
        """Publish `run.<id>.streaming`, as the extractor does before the attempt's first part."""
        await self.js.publish(
            self.topology.run_streaming(streaming.run_id),
            streaming.model_dump_json().encode(),
            stream=self.topology.run_stream.name,
            headers={"Nats-Msg-Id": f"{streaming.run_id}.streaming.{streaming.attempt}"},
        )

    async def step(self, run_id: str, step: RunStep, message: BaseModel, suffix: str = "") -> None:
        """Publish any other step of the run on the run stream."""
        await self.js.publish(
            self.topology.run_step(run_id, step),
            message.model_dump_json().encode(),
            stream=self.topology.run_stream.name,
            headers={"Nats-Msg-Id": f"{run_id}.{step.value}{suffix}"},
        )

    async def put_raw_part(self, location: str, index: int, data: bytes) -> None:
        """Stage bytes as part `index`, the way a broken writer would."""
        await self.js.publish(location, data, headers={PART_HEADER: str(index), "Nats-Msg-Id": f"{location}.{index}"})

    async def staged_messages(self, run_id: str) -> int:
        """How many staged parts of the run the staging stream still holds."""
        stream, subjects = self.topology.stage_stream.name, self.topology.stage_all(run_id)
        info = await self.js.stream_info(stream, subjects_filter=subjects)
        return sum((info.state.subjects or {}).values())

    async def rows_loaded(self, run_id: str) -> LoadProgress:
        """The row counts the loader reports while it loads the run."""
        progress = LoadProgress()

        async def on_progress(msg: Msg) -> None:
            reported = Progress.model_validate_json(msg.data)
            if reported.step == "loading":
                await progress.rows.put(reported.rows)

        await self.nc.subscribe(self.topology.progress(run_id), cb=on_progress)
        await self.nc.flush()
        return progress

    async def acks(self, consumer: str = "loader") -> asyncio.Queue[bytes]:
        """Acknowledgements the loader sends for `extracted` messages (`loader_streaming`: `streaming` ones):
        `+ACK`, `-NAK`, `+TERM`.

        The loader acks only after it has finished with a run, so an ack is the event that says so.
        """
        received: asyncio.Queue[bytes] = asyncio.Queue()

        async def on_ack(msg: Msg) -> None:
            if not msg.data.startswith(b"+WPI"):  # in-progress heartbeats
                await received.put(msg.data or b"+ACK")  # an empty body is an ack

        durable = self.topology.durable(consumer)
        await self.nc.subscribe(f"$JS.ACK.{self.topology.run_stream.name}.{durable}.>", cb=on_ack)
        await self.nc.flush()
        return received


#: Starts a loader in a process of its own (`python -m lakegate.loader`) with these settings, logging to a file.
LoaderProcess = Callable[[LoaderSettings, Path], Coroutine[Any, Any, asyncio.subprocess.Process]]


@pytest.fixture
async def loader_process() -> AsyncIterator[LoaderProcess]:
    """A loader a test can kill: `await loader_process(settings, log_path)`; one still running at the end is killed."""
    started: list[asyncio.subprocess.Process] = []

    async def loader_process(settings: LoaderSettings, log: Path) -> asyncio.subprocess.Process:
        env = {
            **os.environ,
            "LAKEGATE_NATS_URL": settings.nats.url,
            "LAKEGATE_NATS_PREFIX": settings.nats.prefix,
            "LAKEGATE_LOADER_HOME": str(settings.home),
            "LAKEGATE_LOADER_ACK_WAIT_SECONDS": str(settings.ack_wait_seconds),
        }
        with log.open("wb") as out:
            process = await asyncio.create_subprocess_exec(
                sys.executable, "-m", "lakegate.loader", env=env, stdout=out, stderr=out
            )
        started.append(process)
        return process

    yield loader_process
    for process in started:
        if process.returncode is None:
            process.kill()
            await process.wait()


@pytest.fixture
def loader_settings(request: pytest.FixtureRequest, nats_settings: NatsSettings, lakegate_home: Path) -> LoaderSettings:
    """Settings on the test's own prefix and home; parametrize indirectly with a dict to override fields."""
    overrides: dict[str, Any] = getattr(request, "param", {})
    return LoaderSettings(nats=nats_settings, home=lakegate_home, **{"query_timeout_seconds": 20.0, **overrides})


@pytest.fixture
async def loader(loader_settings: LoaderSettings) -> AsyncIterator[LoaderState]:
    async with serve(loader_settings) as state:
        yield state


@pytest.fixture
async def extractor(loader: LoaderState, nats_settings: NatsSettings, tenant_id: str) -> AsyncIterator[Extractor]:
    nc = await nats.connect(nats_settings.url)
    try:
        yield Extractor(nc, nc.jetstream(), nats_settings.topology, tenant_id)
    finally:
        await nc.drain()


@pytest.fixture
async def lone_extractor(nats_settings: NatsSettings, tenant_id: str) -> AsyncIterator[Extractor]:
    """A stand-in extractor with no loader in this process (a test starts one its own way)."""
    nc = await nats.connect(nats_settings.url)
    try:
        await ensure_streams(nc.jetstream(), nats_settings.topology)
        yield Extractor(nc, nc.jetstream(), nats_settings.topology, tenant_id)
    finally:
        await nc.drain()


@pytest.fixture
def query(loader: LoaderState, tenant_id: str) -> Callable[..., Coroutine[Any, Any, QueryResult]]:
    """Ask the loader's query handler over NATS, as the edge does."""

    async def ask(sql: str, max_rows: int = 1000) -> QueryResult:
        rt = loader.runtime
        return await rt.rpc.call(
            rt.topology.warehouse_query, RunQuery(tenant_id=tenant_id, sql=sql, max_rows=max_rows), QueryResult
        )

    return ask


@pytest.fixture
def ask(loader: LoaderState) -> Callable[..., Coroutine[Any, Any, Any]]:
    """Send any request to the loader over NATS and read the answer model, as the edge does."""

    async def call(subject: str, request: BaseModel, answer: type[M], timeout: float = 60.0) -> M:
        return await loader.runtime.rpc.call(subject, request, answer, timeout=timeout)

    return call


@dataclass
class LineageReader:
    """Reads the `DatasetRecord` commands the loader put on the CMD stream (nobody else consumes them here)."""

    js: JetStreamContext
    topology: Topology

    async def records(self, expected: int, timeout: float = 10.0) -> list[tuple[DatasetRecord, str]]:
        """The first `expected` records with their message ids, waiting for them to arrive."""
        sub = await self.js.pull_subscribe(self.topology.cmd_record_dataset, stream=self.topology.cmd_stream.name)
        found: list[tuple[DatasetRecord, str]] = []
        try:
            async with asyncio.timeout(timeout):
                while len(found) < expected:
                    for msg in await sub.fetch(expected - len(found), timeout=timeout):
                        found.append((DatasetRecord.model_validate_json(msg.data), (msg.headers or {})["Nats-Msg-Id"]))
                        await msg.ack()
        finally:
            await sub.unsubscribe()
        return found

    async def pending(self) -> int:
        """How many records wait on the stream."""
        info = await self.js.stream_info(
            self.topology.cmd_stream.name, subjects_filter=self.topology.cmd_record_dataset
        )
        return sum((info.state.subjects or {}).values())


@pytest.fixture
def lineage(extractor: Extractor) -> LineageReader:
    return LineageReader(extractor.js, extractor.topology)
