"""Staging: where an extraction's Arrow record batches wait until the loader commits them.

A part is one record batch as a zstd-compressed Arrow IPC stream, small enough for one NATS
message. The extractor writes the parts of one attempt under one location; the loader reads them
back in order and deletes everything of the run once the warehouse has committed.

`StagingStore` is the interface; `JetStreamStaging` (the default: a per-run subject of the staging
stream) and `MemoryStaging` (a real in-process implementation, for tests) implement it.

`DataFileStaging` adds the local lakehouse's own files: where the extractor can reach the lakehouse
directory, a full sync is staged as the table's Parquet data files (`lakegate.common.datafiles`,
with the loader's type decisions, `lakegate.common.deltatypes`) under `<lakehouse>/_staging/<run>/
<attempt>/`, and the loader commits them by moving them into the table's directory: the rows are
encoded once instead of as Arrow IPC, sent, decoded and encoded again as Parquet. Everything else
goes to the store it wraps.

`Follower` is the optional ability to read an attempt's parts while they are still being staged
(`JetStreamStaging.follow`): the loader starts loading on `Streaming` and the reading ends when a
`PartsEnd` says how many parts the attempt staged (from `Extracted`), or fails at once when the
parts no longer matter (another attempt took over, the run failed).
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import shutil
import threading
import time
from collections.abc import AsyncIterator, Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Protocol

import pyarrow as pa
from lakegate.common import datafiles
from lakegate.common.contracts.runs import StagedParts, TableRef
from lakegate.common.deltatypes import conform, delta_schema
from lakegate.common.errors import LakegateError, TerminalError, Unavailable
from lakegate.common.subjects import Topology
from nats.aio.msg import Msg
from nats.js import JetStreamContext
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy
from nats.js.errors import NotFoundError

_OPTIONS = pa.ipc.IpcWriteOptions(compression="zstd")
PART_HEADER = "Lakegate-Part"
#: Most bytes of parts asked for in one fetch.
FETCH_BYTES = 24 * 1024 * 1024
#: The directory of the local lakehouse where staged data files wait, one directory per run and attempt.
DATA_FILES_DIR = "_staging"
DATA_FILES_STORE = "datafiles"
#: Staged data files of a run nobody has touched for this long are removed: its extractor and loader gave up.
STALE_AFTER = 24 * 3600.0
#: How often a process looks for such runs: at its first attempt, then at most once an hour.
SWEEP_EVERY = 3600.0
_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,199}")
_FILE = re.compile(r"part-[0-9]{5}-[0-9a-f-]{36}-c000\.zstd\.parquet")


def encode_part(batch: pa.RecordBatch) -> bytes:
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, batch.schema, options=_OPTIONS) as writer:
        writer.write_batch(batch)
    return bytes(sink.getvalue())


def decode_part(data: bytes) -> pa.RecordBatch:
    return pa.ipc.open_stream(pa.py_buffer(data)).read_next_batch()


def encode_bounded(batch: pa.RecordBatch, max_bytes: int) -> list[bytes]:
    """Encode a batch as one or more parts, halving it until every part fits in `max_bytes`."""
    data = encode_part(batch)
    if len(data) <= max_bytes:
        return [data]
    if batch.num_rows <= 1:
        raise TerminalError(
            f"one row is {len(data)} bytes compressed, more than the {max_bytes}-byte staging limit; "
            "exclude the oversized column or raise the NATS max_payload"
        )
    half = batch.num_rows // 2
    return encode_bounded(batch.slice(0, half), max_bytes) + encode_bounded(batch.slice(half), max_bytes)


class PartWriter(Protocol):
    async def write(self, batch: pa.RecordBatch) -> None: ...

    async def close(self) -> StagedParts:
        """Flush and say where the parts are."""
        ...


class StagingStore(Protocol):
    async def writer(self, run_id: str, attempt: str) -> PartWriter: ...

    def read(self, staged: StagedParts) -> AsyncIterator[pa.RecordBatch]:
        """The staged batches, in the order they were written."""
        ...

    async def delete(self, run_id: str) -> None:
        """Remove every part of every attempt of the run."""
        ...


class PartsEnd:
    """How a followed attempt ends: its part count, once known, or why its parts no longer matter."""

    def __init__(self, idle: float | None = None) -> None:
        #: Seconds a reader waits for a part or news of the end before it gives up (transiently); None: forever.
        self.idle = idle
        self.parts: int | None = None
        self.abandoned: LakegateError | None = None
        self._waiters: list[asyncio.Future[None]] = []

    def finish(self, parts: int) -> None:
        """Every part is staged: there are `parts` of them."""
        if self.parts is None:
            self.parts = parts
            self._wake()

    def abandon(self, reason: LakegateError) -> None:
        """Stop reading: `reason` is raised to the reader."""
        if self.abandoned is None:
            self.abandoned = reason
            self._wake()

    def changed(self) -> asyncio.Future[None]:
        """Done at the next `finish` or `abandon`."""
        future = asyncio.get_running_loop().create_future()
        self._waiters.append(future)
        return future

    def _wake(self) -> None:
        waiters, self._waiters = self._waiters, []
        for future in waiters:
            if not future.done():
                future.set_result(None)


class Follower(Protocol):
    def follow(self, location: str, end: PartsEnd) -> AsyncIterator[pa.RecordBatch]:
        """The batches staged at `location`, in order, as they arrive, until `end` says how many there are."""
        ...


class MemoryStaging:
    """Parts in a dict; for tests and single-process use."""

    def __init__(self, max_part_bytes: int = 8 * 1024 * 1024) -> None:
        self.parts: dict[str, list[bytes]] = {}
        self._max = max_part_bytes

    async def writer(self, run_id: str, attempt: str) -> PartWriter:
        return _MemoryWriter(self, f"{run_id}/{attempt}")

    async def read(self, staged: StagedParts) -> AsyncIterator[pa.RecordBatch]:
        _refuse_files(staged)
        parts = self.parts.get(staged.location, [])
        if len(parts) != staged.parts:
            raise TerminalError(f"staging holds {len(parts)} parts at {staged.location}, expected {staged.parts}")
        for data in parts:
            yield decode_part(data)

    async def delete(self, run_id: str) -> None:
        for key in [k for k in self.parts if k.startswith(f"{run_id}/")]:
            del self.parts[key]


class _MemoryWriter:
    def __init__(self, store: MemoryStaging, location: str) -> None:
        self._store, self._location = store, location
        store.parts[location] = []

    async def write(self, batch: pa.RecordBatch) -> None:
        self._store.parts[self._location].extend(encode_bounded(batch, self._store._max))

    async def close(self) -> StagedParts:
        parts = self._store.parts[self._location]
        return StagedParts(store="memory", location=self._location, parts=len(parts), bytes=sum(map(len, parts)))


class JetStreamStaging:
    """Parts as messages on `<prefix>.stage.<run_id>.<attempt>` in the staging stream."""

    def __init__(self, js: JetStreamContext, topology: Topology, max_part_bytes: int, fetch_batch: int = 64) -> None:
        self._js, self._topology = js, topology
        self._max = max_part_bytes
        # A fetch must stay well under what nats-server buffers for one connection (64 MiB): past it the
        # server drops messages as a slow consumer, and parts read without acks would not come back.
        self._fetch_batch = max(1, min(fetch_batch, FETCH_BYTES // max_part_bytes))

    async def writer(self, run_id: str, attempt: str) -> PartWriter:
        return _JetStreamWriter(self._js, self._topology.stage(run_id, attempt), self._max)

    async def read(self, staged: StagedParts) -> AsyncIterator[pa.RecordBatch]:
        _refuse_files(staged)
        stream = self._topology.stage_stream.name
        sub = await self._js.pull_subscribe(
            staged.location,
            stream=stream,
            config=ConsumerConfig(ack_policy=AckPolicy.NONE, deliver_policy=DeliverPolicy.ALL, inactive_threshold=60.0),
        )
        try:
            seen = 0
            while seen < staged.parts:
                try:
                    messages = await sub.fetch(min(self._fetch_batch, staged.parts - seen), timeout=10)
                except TimeoutError as exc:
                    raise Unavailable(
                        f"staging returned {seen} of {staged.parts} parts at {staged.location}; retrying"
                    ) from exc
                for message in messages:
                    yield _part(message, seen)
                    seen += 1
        finally:
            await sub.unsubscribe()

    async def follow(self, location: str, end: PartsEnd) -> AsyncIterator[pa.RecordBatch]:
        """The parts at `location` as they are published; the subject may still grow while this reads it."""
        sub = await self._js.pull_subscribe(
            location,
            stream=self._topology.stage_stream.name,
            config=ConsumerConfig(ack_policy=AckPolicy.NONE, deliver_policy=DeliverPolicy.ALL, inactive_threshold=60.0),
        )
        # A fetch is never cut short (without acks, parts already sent to a cancelled fetch would be lost), so
        # one task pulls, one fetch at a time, while the reader waits for either a part or news of the end.
        fetched: asyncio.Queue[list[Msg]] = asyncio.Queue(maxsize=1)

        async def pull() -> None:
            while True:
                try:
                    messages = await sub.fetch(self._fetch_batch, timeout=5)
                except TimeoutError:
                    continue
                await fetched.put(messages)

        puller = asyncio.create_task(pull(), name=f"follow {location}")
        pending: list[Msg] = []
        seen = 0
        try:
            while True:
                if end.abandoned is not None:
                    raise end.abandoned
                if end.parts is not None and seen >= end.parts:
                    if seen > end.parts:
                        raise TerminalError(f"{seen} parts are staged at {location}, not the {end.parts} announced")
                    return
                if not pending:
                    pending = await self._next_fetch(fetched, puller, end, location)
                    continue
                batch = _part(pending.pop(0), seen)
                seen += 1
                yield batch
        finally:
            await stop_pulling(puller, sub)

    @staticmethod
    async def _next_fetch(
        fetched: asyncio.Queue[list[Msg]], puller: asyncio.Task[None], end: PartsEnd, location: str
    ) -> list[Msg]:
        """The next fetched parts, or nothing when the end changed first."""
        getting = asyncio.ensure_future(fetched.get())
        changed = end.changed()
        waits: set[asyncio.Future[object]] = {getting, changed, puller}  # type: ignore[arg-type]
        try:
            done, _ = await asyncio.wait(waits, timeout=end.idle, return_when=asyncio.FIRST_COMPLETED)
        finally:
            changed.cancel()
            if not getting.done():
                getting.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await getting
        if getting.done() and not getting.cancelled():
            return getting.result()
        if puller.done():
            error = puller.exception() if not puller.cancelled() else None
            raise Unavailable(f"staging stopped returning the parts at {location} ({error}); retrying") from error
        if not done:
            raise Unavailable(
                f"no part arrived at {location} and its extraction did not end in {end.idle:.0f}s; retrying later"
            )
        return []

    async def delete(self, run_id: str) -> None:
        with contextlib.suppress(NotFoundError):
            await self._js.purge_stream(self._topology.stage_stream.name, subject=self._topology.stage_all(run_id))


class _JetStreamWriter:
    def __init__(self, js: JetStreamContext, subject: str, max_bytes: int) -> None:
        self._js, self._subject, self._max = js, subject, max_bytes
        self._parts = 0
        self._bytes = 0

    async def write(self, batch: pa.RecordBatch) -> None:
        for data in encode_bounded(batch, self._max):
            await self._js.publish(
                self._subject,
                data,
                headers={PART_HEADER: str(self._parts), "Nats-Msg-Id": f"{self._subject}.{self._parts}"},
            )
            self._parts += 1
            self._bytes += len(data)

    @property
    def location(self) -> str:
        return self._subject

    async def close(self) -> StagedParts:
        return StagedParts(store="jetstream", location=self._subject, parts=self._parts, bytes=self._bytes)


def followed_location(writer: PartWriter) -> str | None:
    """The subject a loader can follow while `writer` stages parts on it; None for any other writer."""
    return writer.location if isinstance(writer, _JetStreamWriter) else None


def _refuse_files(staged: StagedParts) -> None:
    if staged.store == DATA_FILES_STORE:
        raise TerminalError(
            f"the parts at {staged.location} are data files in the local lakehouse's staging directory, which this "
            "service cannot reach; set LAKEGATE_EXTRACTOR_LAKEHOUSE_DIR only where the loader's lakehouse is on the "
            "extractor's filesystem"
        )


class StaleSweep:
    """Removes runs abandoned under a staging root, at most once per `every` seconds (blocking; thread-safe).

    One per process, shared by the stores made for each run, so an attempt does not list and stat
    the whole staging root every time it starts.
    """

    def __init__(self, every: float = SWEEP_EVERY, clock: Callable[[], float] = time.monotonic) -> None:
        self._every, self._clock = every, clock
        self._last: float | None = None
        self._lock = threading.Lock()

    def __call__(self, root: Path) -> None:
        with self._lock:
            now = self._clock()
            if self._last is not None and now - self._last < self._every:
                return
            self._last = now
        if root.is_dir():
            cutoff = time.time() - STALE_AFTER
            for entry in root.iterdir():
                with contextlib.suppress(OSError):
                    if entry.stat().st_mtime < cutoff:
                        shutil.rmtree(entry, ignore_errors=True)


class DataFileStaging:
    """Data files under `root` (`<lakehouse>/_staging`) for the runs that ask for them; every other part in `parts`."""

    def __init__(self, parts: StagingStore, root: Path, sweep: StaleSweep | None = None) -> None:
        self._parts, self.root = parts, root
        self._sweep = StaleSweep() if sweep is None else sweep

    async def writer(self, run_id: str, attempt: str) -> PartWriter:
        return await self._parts.writer(run_id, attempt)

    async def file_writer(self, run_id: str, attempt: str, schema: pa.Schema, target: TableRef) -> PartWriter:
        """A writer of `target`'s data files for rows of `schema`, conformed to the types the table takes."""
        location = f"{_checked_name(run_id)}/{_checked_name(attempt)}"
        directory = self.root / location
        await asyncio.to_thread(self._prepare, directory)
        return _DataFileWriter(directory, location, schema, target)

    def data_files(self, staged: Sequence[StagedParts]) -> list[Path] | None:
        """The data files of every part set in order; None unless all of them are data files."""
        if not staged or any(parts.store != DATA_FILES_STORE for parts in staged):
            return None
        return [path for parts in staged for path in self._paths(parts)]

    async def read(self, staged: StagedParts) -> AsyncIterator[pa.RecordBatch]:
        if staged.store != DATA_FILES_STORE:
            async for batch in self._parts.read(staged):
                yield batch
            return
        paths = self._paths(staged)
        missing = [path.name for path in paths if not path.is_file()]
        if missing:
            raise TerminalError(f"staged data file(s) {', '.join(missing)} at {staged.location} are gone")
        rows = datafiles.batches(paths)
        while (batch := await asyncio.to_thread(next, rows, None)) is not None:
            yield batch

    @property
    def follows_parts(self) -> bool:
        """Whether parts (not data files) can be read while they are staged (`follow`)."""
        return isinstance(self._parts, JetStreamStaging)

    def follow(self, location: str, end: PartsEnd) -> AsyncIterator[pa.RecordBatch]:
        """Parts staged on JetStream as they arrive, when the wrapped store can follow them."""
        if not isinstance(self._parts, JetStreamStaging):
            raise TerminalError(f"the staging at {location} cannot be read while it is written; load on `extracted`")
        return self._parts.follow(location, end)

    async def delete(self, run_id: str) -> None:
        await self._parts.delete(run_id)
        await asyncio.to_thread(shutil.rmtree, self.root / _checked_name(run_id), ignore_errors=True)

    def _paths(self, staged: StagedParts) -> list[Path]:
        run_id, _, attempt = staged.location.partition("/")
        directory = self.root / _checked_name(run_id) / _checked_name(attempt)
        if len(staged.files) != staged.parts or not all(_FILE.fullmatch(name) for name in staged.files):
            raise TerminalError(
                f"the staged data files at {staged.location} are not {staged.parts} data file names; "
                "start the sync again"
            )
        return [directory / name for name in staged.files]

    def _prepare(self, directory: Path) -> None:
        """A fresh directory for one attempt; runs abandoned long ago are swept away first, when a sweep is due."""
        self._sweep(self.root)
        shutil.rmtree(directory, ignore_errors=True)  # left by a delivery of the same attempt that was killed
        directory.mkdir(parents=True)


async def stop_pulling(puller: asyncio.Task[None], sub: JetStreamContext.PullSubscription) -> None:
    """End a task that fetches from `sub` and the subscription itself, whatever state either is in."""
    puller.cancel()
    with contextlib.suppress(asyncio.CancelledError, Exception):
        await puller
    with contextlib.suppress(Exception):
        await sub.unsubscribe()


def _checked_name(name: str) -> str:
    if not _NAME.fullmatch(name) or name in {".", ".."}:
        raise TerminalError(f"{name[:80]!r} cannot name a staging directory; expected letters, digits, '_', '.', '-'")
    return name


class _DataFileWriter:
    """Batches to data files in a worker thread, so the event loop keeps heartbeating while Parquet is encoded.

    One thread of its own, not the loop's default pool: Arrow's allocator (mimalloc) keeps a heap per
    thread, and row groups encoded on whichever of the pool's threads is free left a row group's worth
    of freed memory in each of them.
    """

    def __init__(self, directory: Path, location: str, schema: pa.Schema, target: TableRef) -> None:
        self._location, self._target = location, target
        self._schema = delta_schema(schema, target)
        self._files = datafiles.DataFileWriter(directory, self._schema)
        self._thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="data files")

    async def write(self, batch: pa.RecordBatch) -> None:
        await asyncio.get_running_loop().run_in_executor(self._thread, self._write, batch)

    def _write(self, batch: pa.RecordBatch) -> None:
        self._files.write(conform(batch, self._schema, self._target))

    async def close(self) -> StagedParts:
        try:
            files = await asyncio.get_running_loop().run_in_executor(self._thread, self._files.close)
        finally:
            self._thread.shutdown(wait=False)
        return StagedParts(
            store=DATA_FILES_STORE,
            location=self._location,
            parts=len(files),
            bytes=sum(file.size for file in files),
            files=[file.name for file in files],
        )


def _part(message: Msg, expected: int) -> pa.RecordBatch:
    """The batch of a staged part, which must be part number `expected` (parts are read in order)."""
    part = int((message.headers or {}).get(PART_HEADER, "-1"))
    if part != expected:
        raise TerminalError(f"staged part {part} arrived where part {expected} was expected")
    return decode_part(message.data)
