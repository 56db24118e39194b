"""The load worker: turns a run's `Extracted` step into one warehouse commit and the steps around it.

    Extracted ──▶ Loading ──▶ read staged parts ──▶ one atomic commit ──▶ Loaded ──▶ delete parts
                   (`staged`, then every range)  │
                 ╰─ staged data files (a full sync into the local lakehouse): commit them as they are,
                    or read them as parts when they cannot be (`FileCommitter.commit_files` said None)
                                      ├──────── terminal error ────────▶ Failed(step="load"), delete parts
                                      └──────── cancel.<run_id> ───────▶ (nothing published), delete parts

A run whose extraction announced `Streaming` (a single-stream full or incremental attempt staged on
JetStream) is loaded while it is extracted, on that step instead (`stream`):

    Streaming ──▶ Loading ──▶ follow the attempt's parts as they arrive ──▶ … `Extracted` (same location)
                  gives the part count; all read, rows as announced ──▶ one atomic commit ──▶ Loaded ──▶ delete
               ╰─ another attempt, `failed`, or `loaded` first (`following.py`): stop, commit and publish nothing

and its `Extracted` is acknowledged without a second load. Without `Streaming` (an older extractor,
a merge, ranges, data files) the run is loaded on `Extracted` as above.

Every step is published with a `Nats-Msg-Id`, so a redelivered message that reaches the same
point publishes nothing new within the stream's duplicate window. A redelivered load whose commit
already exists commits nothing and still reports `Loaded`.

While it reads the staged parts the worker listens on `cancel.<run_id>`: a cancellation stops the
reading at once, so the warehouse sees its batches fail and commits nothing. Once the last part has
been read the warehouse is committing, and a cancellation is too late: the run succeeds. A cancelled
run publishes no `Failed`: the catalog, which sent the cancellation, has recorded it already.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import contextlib
import logging
import os
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path

import pyarrow as pa
from faststream.nats import NatsBroker
from lakegate.common.contracts.runs import (
    ErrorInfo,
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
from lakegate.common.deltatypes import delta_schema
from lakegate.common.errors import (
    Cancelled,
    InvalidInput,
    LakegateError,
    PermissionDenied,
    TerminalError,
    Unavailable,
)
from lakegate.common.metrics import ServiceMetrics
from lakegate.common.names import tenant_catalog
from lakegate.common.staging import DATA_FILES_STORE, DataFileStaging, JetStreamStaging, StagingStore
from lakegate.common.subjects import RunStep, Topology
from lakegate.common.telemetry import tracer
from lakegate.loader.following import Abandoned, RunSteps, following, loading_id
from lakegate.loader.warehouses.base import FileCommitter, LoadPlan, LoadResult, Warehouse
from nats.aio.msg import Msg
from nats.js.api import RawStreamMsg
from nats.js.errors import NotFoundError
from pydantic import BaseModel, ValidationError

log = logging.getLogger(__name__)

LOAD_STEP = "load"


def decode_schema(extracted: Extracted | Streaming) -> pa.Schema:
    """The Arrow schema an `Extracted` or `Streaming` message carries as base64 Arrow IPC."""
    try:
        return pa.ipc.read_schema(pa.py_buffer(base64.b64decode(extracted.arrow_schema, validate=True)))
    except (binascii.Error, ValueError, pa.ArrowInvalid) as exc:
        raise InvalidInput(
            f"the Arrow schema of run {extracted.run_id} cannot be read ({exc}); the extractor must send "
            "base64 Arrow IPC; start the sync again"
        ) from exc


@dataclass(frozen=True)
class LoadWorker:
    """Loads extracted runs into a warehouse and reports each step on the run's subjects."""

    broker: NatsBroker
    topology: Topology
    staging: Callable[[], StagingStore]
    warehouse: Warehouse
    publish_timeout: float = 10.0
    #: Fault tests: while this file exists, a load ends the process (`LoaderSettings.fault_exit_while`).
    fault_exit_while: Path | None = None
    #: Seconds a load on `streaming` waits for the next part or the end (`LoaderSettings.stream_idle_seconds`).
    stream_idle: float = 300.0
    metrics: ServiceMetrics = field(default_factory=lambda: ServiceMetrics("loader"))

    async def load(self, extracted: Extracted) -> None:
        """Commit one run's staged parts to its target, then report it and clear staging."""
        run_id = extracted.run_id
        _check_target(extracted.tenant_id, run_id, extracted.target)
        if await self._followed(extracted):
            log.info("run %s: its parts are loaded as they were staged (`streaming`); nothing more to do", run_id)
            return
        async with self._cancellation(run_id) as cancelled:
            await self._step(Loading(tenant_id=extracted.tenant_id, run_id=run_id), RunStep.LOADING, run_id)
            self._exit_if_faulted(run_id)
            schema = decode_schema(extracted)
            staging = self.staging()
            cursor = extracted.cursor.column if extracted.cursor else None
            plan = _plan(extracted, schema, cursor, source_keys=self._source_keys(extracted, staging))
            # Staged parts are read while the warehouse writes them, so one span holds reading, writing and commit.
            with self.metrics.phase("load"), tracer(__name__).start_as_current_span("warehouse commit") as span:
                span.set_attributes(_attributes(plan))
                result = await self._commit_files(extracted, plan, staging, cancelled)
                if result is None:
                    parts = _until(cancelled, self._checked_parts(extracted, schema, staging), run_id, extracted.target)
                    result = await self.warehouse.load(plan, parts)
                span.set_attributes({"lakegate.rows": result.row_count, "lakegate.version": result.version or 0})
        await self._loaded(extracted.tenant_id, run_id, extracted.target, extracted.sync_mode, result, staging)

    async def stream(self, streaming: Streaming, after: int) -> None:
        """Load an attempt's parts while they are staged; commit once its `Extracted` (stored after
        stream sequence `after`, the `Streaming`'s own) says every part is there."""
        run_id = streaming.run_id
        _check_target(streaming.tenant_id, run_id, streaming.target)
        staging = self.staging()
        if not _follows(staging):
            log.info("run %s: this staging cannot be read while it grows; the run is loaded on `extracted`", run_id)
            return
        js = self.broker.connection.jetstream()
        async with (
            self._cancellation(run_id) as cancelled,
            following(js, self.topology, streaming, after, self.stream_idle) as steps,
        ):
            # Its message id names the attempt: an `extracted` run whose parts a load follows is not loaded twice.
            loading = Loading(tenant_id=streaming.tenant_id, run_id=run_id)
            await self._step(loading, RunStep.LOADING, run_id, suffix=streaming.attempt)
            self._exit_if_faulted(run_id)
            schema = decode_schema(streaming)
            plan = _plan(streaming, schema, streaming.cursor_column)
            with self.metrics.phase("load"), tracer(__name__).start_as_current_span("warehouse commit") as span:
                span.set_attributes({**_attributes(plan), "lakegate.streaming": True})
                parts = _until(
                    cancelled, self._followed_parts(streaming, schema, staging, steps), run_id, streaming.target
                )
                try:
                    result = await self.warehouse.load(plan, parts)
                except Abandoned as exc:
                    log.info(
                        "run %s: the load of attempt %s stopped, nothing committed: %s", run_id, streaming.attempt, exc
                    )
                    return
                span.set_attributes({"lakegate.rows": result.row_count, "lakegate.version": result.version or 0})
            if result.already_committed and steps.end.abandoned is not None:
                return  # committed and reported by whoever took the run over
        await self._loaded(streaming.tenant_id, run_id, streaming.target, streaming.sync_mode, result, staging)

    def _exit_if_faulted(self, run_id: str) -> None:
        """A fault test's crash in the middle of a load: end the process while `fault_exit_while` exists."""
        if self.fault_exit_while is not None and self.fault_exit_while.exists():
            log.error("run %s: %s exists, so the loader exits now (a fault test)", run_id, self.fault_exit_while)
            os._exit(70)

    async def _loaded(
        self, tenant_id: str, run_id: str, target: TableRef, mode: SyncMode, result: LoadResult, staging: StagingStore
    ) -> None:
        """Report a committed run, then clear its staging."""
        if result.already_committed:
            log.info("run %s was already committed to %s as version %s", run_id, target, result.version)
        loaded = Loaded(
            tenant_id=tenant_id,
            run_id=run_id,
            target=target,
            row_count=result.row_count,
            bytes=result.bytes,
            table_version=result.version,
            schema_changes=list(result.schema_changes),
            deleted_rows=result.deleted_rows,
        )
        await self._step(loaded, RunStep.LOADED, run_id)
        if not result.already_committed:
            self.metrics.moved("loaded", mode, result.row_count, result.bytes)
        await staging.delete(run_id)

    async def fail(self, extracted: Extracted | Streaming, error: LakegateError) -> None:
        """Report that the run cannot be loaded (unless it was cancelled); the target is as it was.

        Staged parts are dropped either way.
        """
        if not isinstance(error, Cancelled):
            failed = Failed(
                tenant_id=extracted.tenant_id,
                run_id=extracted.run_id,
                step=LOAD_STEP,
                error=ErrorInfo(code=error.code, message=error.message, transient=False),
            )
            await self._step(failed, RunStep.FAILED, extracted.run_id)
        with contextlib.suppress(Exception):  # staged parts expire on their own if this fails
            await self.staging().delete(extracted.run_id)

    async def _followed(self, extracted: Extracted) -> bool:
        """Whether a load on the run's `Streaming` follows (or followed) exactly these parts.

        Only a load that has begun counts (its `loading` names the attempt): a `Streaming` no loader
        has taken yet (every replica busy) is loaded here, and that load's `loading` tells the one
        that takes it later to stop (`following.py`).
        """
        if extracted.ranges or extracted.staged.store != "jetstream" or not _follows(self.staging()):
            return False
        streaming = await self._last(extracted.run_id, self.topology.run_streaming(extracted.run_id))
        if streaming is None:
            return False
        try:
            attempt = Streaming.model_validate_json(streaming.data or b"").attempt
        except ValidationError:
            return False
        if self.topology.stage(extracted.run_id, attempt) != extracted.staged.location:
            return False
        loading = await self._last(extracted.run_id, self.topology.run_step(extracted.run_id, RunStep.LOADING))
        return loading is not None and (loading.headers or {}).get("Nats-Msg-Id") == loading_id(
            extracted.run_id, attempt
        )

    async def _last(self, run_id: str, subject: str) -> RawStreamMsg | None:
        """The last message the run stream holds on `subject`, if any."""
        js = self.broker.connection.jetstream()
        try:
            return await js.get_last_msg(self.topology.run_stream.name, subject)
        except NotFoundError:
            return None
        except Exception as exc:
            raise Unavailable(f"could not read the steps of run {run_id}: {exc}") from exc

    @contextlib.asynccontextmanager
    async def _cancellation(self, run_id: str) -> AsyncIterator[asyncio.Event]:
        """An event set when `cancel.<run_id>` arrives, while the body runs."""
        cancelled = asyncio.Event()

        async def on_cancel(_: Msg) -> None:
            cancelled.set()

        subscription = await self.broker.connection.subscribe(self.topology.cancel(run_id), cb=on_cancel)
        try:
            yield cancelled
        finally:
            with contextlib.suppress(Exception):  # a closed connection took the subscription with it
                await subscription.unsubscribe()

    async def _commit_files(
        self, extracted: Extracted, plan: LoadPlan, staging: StagingStore, cancelled: asyncio.Event
    ) -> LoadResult | None:
        """Commit data files the extractor staged as the warehouse's own; None when the rows must be loaded instead."""
        if not isinstance(staging, DataFileStaging) or not isinstance(self.warehouse, FileCommitter):
            return None
        files = staging.data_files(_every_part_set(extracted))
        if files is None:
            return None
        if cancelled.is_set():
            raise Cancelled(f"run {extracted.run_id} was cancelled before its commit; nothing was committed")
        result = await self.warehouse.commit_files(plan, files, extracted.row_count)
        if result is not None:
            log.info("run %s: %d staged data files committed as they are", extracted.run_id, len(files))
            await self._progress(extracted.run_id, result.row_count)
        return result

    def _source_keys(
        self, extracted: Extracted, staging: StagingStore
    ) -> Callable[[], AsyncIterator[pa.RecordBatch]] | None:
        """The staged primary keys of a merge with detect_deletes, read when the warehouse asks."""
        staged = extracted.source_keys
        if staged is None:
            return None

        async def keys() -> AsyncIterator[pa.RecordBatch]:
            async with _closing(staging.read(staged)) as parts:
                async for batch in _readable(parts, extracted.run_id, first=0):
                    yield batch

        return keys

    async def _checked_parts(
        self, extracted: Extracted, schema: pa.Schema, staging: StagingStore
    ) -> AsyncIterator[pa.RecordBatch]:
        """The staged batches (`staged`, then every range), refusing any that disagree with the `Extracted` message."""
        rows = 0
        index = 0
        for staged in _every_part_set(extracted):
            # Data files hold the rows already in the local lakehouse's types.
            announced = delta_schema(schema, extracted.target) if staged.store == DATA_FILES_STORE else schema
            async with _closing(staging.read(staged)) as parts:
                async for batch in _readable(parts, extracted.run_id, first=index):
                    if not batch.schema.equals(announced, check_metadata=False):
                        raise TerminalError(
                            f"staged part {index} of run {extracted.run_id} has schema {batch.schema}, not the "
                            f"announced {announced}; start the sync again"
                        )
                    rows += batch.num_rows
                    index += 1
                    yield batch
                    await self._progress(extracted.run_id, rows)
        if rows != extracted.row_count:
            raise TerminalError(
                f"staging holds {rows} rows for run {extracted.run_id}, but {extracted.row_count} were "
                "extracted; nothing was loaded, start the sync again"
            )

    async def _followed_parts(
        self, streaming: Streaming, schema: pa.Schema, staging: StagingStore, steps: RunSteps
    ) -> AsyncIterator[pa.RecordBatch]:
        """The attempt's batches as they are staged; ends once `Extracted` came and every part was read."""
        assert isinstance(staging, (JetStreamStaging, DataFileStaging))
        rows = 0
        async with _closing(staging.follow(streaming.location, steps.end)) as parts:
            async for batch in _readable(parts, streaming.run_id):
                if not batch.schema.equals(schema, check_metadata=False):
                    raise TerminalError(
                        f"a staged part of run {streaming.run_id} has schema {batch.schema}, not the announced "
                        f"{schema}; start the sync again"
                    )
                rows += batch.num_rows
                yield batch
                await self._progress(streaming.run_id, rows)
        extracted = steps.extracted
        assert extracted is not None  # following ends only once `Extracted` gave the part count
        if rows != extracted.row_count:
            raise TerminalError(
                f"staging holds {rows} rows for run {streaming.run_id}, but {extracted.row_count} were "
                "extracted; nothing was loaded, start the sync again"
            )

    async def _step(self, message: BaseModel, step: RunStep, run_id: str, *, suffix: str = "") -> None:
        try:
            await self.broker.publish(
                message,
                self.topology.run_step(run_id, step),
                stream=self.topology.run_stream.name,
                headers={"Nats-Msg-Id": loading_id(run_id, suffix) if step is RunStep.LOADING else f"{run_id}.{step}"},
                timeout=self.publish_timeout,
            )
        except Exception as exc:
            raise Unavailable(f"could not publish step {step.value} of run {run_id}: {exc}") from exc

    async def _progress(self, run_id: str, rows: int) -> None:
        with contextlib.suppress(Exception):  # progress is lossy by design
            progress = Progress(run_id=run_id, step="loading", rows=rows)
            await self.broker.publish(progress, self.topology.progress(run_id))


def _check_target(tenant_id: str, run_id: str, target: TableRef) -> None:
    if target.catalog != tenant_catalog(tenant_id):
        raise PermissionDenied(
            f"run {run_id} targets {target}, outside tenant {tenant_id}'s catalog "
            f"`{tenant_catalog(tenant_id)}`; nothing was loaded"
        )


def _follows(staging: StagingStore) -> bool:
    """Whether this staging can be read while an extractor still writes it."""
    return isinstance(staging, JetStreamStaging) or (isinstance(staging, DataFileStaging) and staging.follows_parts)


def _every_part_set(extracted: Extracted) -> list[StagedParts]:
    """Where the run's parts are: the coordinator's own, then each range's, in order."""
    return [extracted.staged, *extracted.ranges]


async def _until(
    cancelled: asyncio.Event, batches: AsyncIterator[pa.RecordBatch], run_id: str, target: TableRef
) -> AsyncIterator[pa.RecordBatch]:
    """`batches`, failing with `Cancelled` as soon as `cancelled` is set, even while waiting for a part."""
    waiting = asyncio.ensure_future(cancelled.wait())
    try:
        while True:
            following = asyncio.ensure_future(anext(batches))
            await asyncio.wait({following, waiting}, return_when=asyncio.FIRST_COMPLETED)
            if cancelled.is_set():
                following.cancel()
                await asyncio.wait({following})
                if not following.cancelled():
                    following.exception()  # whatever the reader was doing no longer matters
                raise Cancelled(f"run {run_id} was cancelled while it was loading; nothing was committed to {target}")
            try:
                batch = following.result()
            except StopAsyncIteration:
                return
            yield batch
    finally:
        waiting.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await waiting
        await _close(batches)


async def _close(batches: AsyncIterator[pa.RecordBatch]) -> None:
    aclose = getattr(batches, "aclose", None)
    if aclose is not None:
        await aclose()


async def _readable(parts: AsyncIterator[pa.RecordBatch], run_id: str, first: int = 0) -> AsyncIterator[pa.RecordBatch]:
    """The parts; one that is not Arrow IPC is terminal, since reading it again cannot help."""
    index = first
    while True:
        try:
            batch = await anext(parts)
        except StopAsyncIteration:
            return
        except Abandoned:
            raise
        except pa.ArrowException as exc:
            raise TerminalError(
                f"staged part {index} of run {run_id} is corrupt ({exc}); nothing was loaded, start the sync again"
            ) from exc
        except TerminalError as exc:
            raise TerminalError(
                f"the staged parts of run {run_id} are incomplete ({exc}); nothing was loaded, start the sync again"
            ) from exc
        yield batch
        index += 1


@contextlib.asynccontextmanager
async def _closing(batches: AsyncIterator[pa.RecordBatch]) -> AsyncIterator[AsyncIterator[pa.RecordBatch]]:
    """Close a staging reader (and its subscription) as soon as the load stops reading, not at GC."""
    try:
        yield batches
    finally:
        await _close(batches)


def _plan(
    run: Extracted | Streaming,
    schema: pa.Schema,
    cursor: str | None,
    *,
    source_keys: Callable[[], AsyncIterator[pa.RecordBatch]] | None = None,
) -> LoadPlan:
    """What a run's load writes: its target, rows of `schema`, its mode, key, cursor column and source types."""
    return LoadPlan(
        target=run.target,
        schema=schema,
        mode=run.sync_mode,
        run_id=run.run_id,
        keys=tuple(run.primary_key),
        cursor=cursor,
        source_types={column.name: column.source_type for column in run.columns},
        source_keys=source_keys,
    )


def _attributes(plan: LoadPlan) -> dict[str, str]:
    """The span attributes that name a load."""
    return {"lakegate.run_id": plan.run_id, "lakegate.table": str(plan.target), "lakegate.mode": plan.mode}
