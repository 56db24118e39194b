"""How one run lands in a Delta table: one commit per run, in each sync mode.

    full          overwrite: the table becomes the run's rows and types. When the extractor staged the rows as
                  the table's own data files, they are moved into the table's directory and committed (`adopt`)
    incremental   append; new columns join by a schema merge. When a column must be widened or become
                  nullable, the table is rewritten instead (its rows cast, then the run's), still one commit
    merge         spool the rows, keep one per key (greatest cursor, then last staged), then MERGE on the
                  keys: a stored row is replaced unless its cursor is newer, new keys are inserted. When a
                  column must be widened, the merged table is written as one overwrite instead. With
                  detect_deletes the source's keys are spooled too, and the table's keys missing from them
                  (a DuckDB anti-join that spills) are left out of the same commit

Batches arrive aligned to the drift's schema. Every commit carries the run's notes (its id first);
the caller has made sure the run has no commit yet. A run with no rows and no schema change commits
nothing; the first run of any mode creates the table.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
from collections.abc import AsyncIterator, Callable, Iterator, Mapping, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa
import pyarrow.dataset as ds
import pyarrow.parquet as pq
from deltalake import DeltaTable
from lakegate.common import datafiles
from lakegate.common.errors import TerminalError
from lakegate.loader.mergekeys import MergeColumns
from lakegate.loader.schemadrift import Drift, align
from lakegate.loader.warehouses import datafiles as loaderfiles
from lakegate.loader.warehouses import deltalog, deltamerge
from lakegate.loader.warehouses.bridge import write_in_thread
from lakegate.loader.warehouses.spool import Spool, incoming_wins, same_key
from lakegate.loader.warehouses.sqlengine import BATCH_ROWS

log = logging.getLogger(__name__)
#: Commit note of a merge with detect_deletes: how many rows it deleted because the source no longer has them.
DELETED_KEY = "lakegate.deleted"

SpoolFactory = Callable[[], AbstractContextManager[Spool]]


@dataclass(frozen=True)
class Landing:
    """Where and how one run lands."""

    path: Path
    drift: Drift
    exists: bool
    notes: Mapping[str, str]
    depth: int
    memory_bytes: int | None = None

    @property
    def schema(self) -> pa.Schema:
        """The table's schema after the run, which every batch arrives in."""
        return self.drift.schema

    def nothing_to_do(self, rows: int) -> bool:
        """No rows and no schema change: committing would only lengthen the history."""
        return rows == 0 and self.exists and not self.drift.changes


@dataclass(frozen=True)
class Landed:
    """The rows a run committed, or that it committed nothing at all."""

    rows: int
    committed: bool


class _Tally:
    """Counts the rows that pass on their way to the writer."""

    def __init__(self) -> None:
        self.rows = 0

    async def through(self, batches: AsyncIterator[pa.RecordBatch]) -> AsyncIterator[pa.RecordBatch]:
        async for batch in batches:
            self.rows += batch.num_rows
            yield batch


async def replace(landing: Landing, batches: AsyncIterator[pa.RecordBatch]) -> Landed:
    """Full: overwrite the table with the run's rows."""
    tally = _Tally()
    write = functools.partial(deltalog.write, landing.path, mode="overwrite", metadata=landing.notes)
    await write_in_thread(landing.schema, tally.through(batches), write, depth=landing.depth)
    return Landed(tally.rows, committed=True)


def adopt(path: Path, staged: Sequence[Path], schema: pa.Schema, rows: int, notes: Mapping[str, str]) -> bool:
    """Full: staged data files become the table, moved into its directory, in one overwrite commit (blocking).

    False, with nothing moved, when a file is not in `schema` (the rows are then loaded as parts). A
    file already in the table's directory was moved by a delivery that stopped before its commit. If
    the commit fails, the files go back to staging, so a retry finds them there.
    """
    located: list[tuple[Path, Path]] = []
    for file in staged:
        moved = path / file.name
        if not file.is_file() and not moved.is_file():
            raise TerminalError(f"staged data file {file.name} is gone; nothing was loaded, start the sync again")
        found = pq.read_schema(file if file.is_file() else moved)
        if not found.equals(schema, check_metadata=False):
            log.info("staged data file %s has schema %s, not %s: its rows are loaded instead", file.name, found, schema)
            return False
        located.append((file, moved))
    path.mkdir(parents=True, exist_ok=True)
    for file, moved in located:
        if file.is_file():
            file.replace(moved)
    files = [datafiles.describe(moved, schema) for _, moved in located]
    found_rows = sum(file.rows for file in files)
    try:
        if found_rows != rows:
            raise TerminalError(
                f"the staged data files hold {found_rows} rows, but {rows} were extracted; nothing was loaded, "
                "start the sync again"
            )
        actions = [loaderfiles.add_action(file) for file in files]
        deltalog.commit(
            path, actions, mode="overwrite", schema=schema, metadata={deltalog.ROWS_KEY: str(rows), **notes}
        )
    except BaseException:
        if deltalog.find_commit(path, deltalog.RUN_ID_KEY, notes[deltalog.RUN_ID_KEY]) is None:
            for file, moved in located:
                with contextlib.suppress(OSError):
                    moved.replace(file)
        raise
    return True


async def append(landing: Landing, batches: AsyncIterator[pa.RecordBatch], spool: SpoolFactory) -> Landed:
    """Incremental: append the run's rows, or rewrite the table when a column's type or nullability widens."""
    if landing.exists and landing.drift.rewrite:
        return await _rewrite_with(landing, batches, spool)
    any_rows, batches = await _peek(batches)
    if not any_rows and landing.nothing_to_do(0):
        return Landed(0, committed=False)
    tally = _Tally()
    write = functools.partial(
        deltalog.write, landing.path, mode="append", metadata=landing.notes, evolve=landing.drift.evolves
    )
    await write_in_thread(landing.schema, tally.through(batches), write, depth=landing.depth)
    return Landed(tally.rows, committed=True)


async def _rewrite_with(landing: Landing, batches: AsyncIterator[pa.RecordBatch], spool: SpoolFactory) -> Landed:
    """The table's rows cast to the new schema, then the run's, in one overwrite."""
    with spool() as spooled:
        rows = await write_in_thread(landing.schema, batches, spooled.write, depth=landing.depth)

        def rewrite() -> None:
            stored = DeltaTable(str(landing.path)).to_pyarrow_dataset()

            def every_row() -> Iterator[pa.RecordBatch]:
                one_at_a_time = ds.ParquetFragmentScanOptions(pre_buffer=False)
                for batch in stored.to_batches(
                    batch_size=BATCH_ROWS,
                    batch_readahead=1,
                    fragment_readahead=1,
                    fragment_scan_options=one_at_a_time,
                ):
                    yield align(batch, landing.schema)
                yield from spooled.batches()

            reader = pa.RecordBatchReader.from_batches(landing.schema, every_row())
            notes = {**landing.notes, deltalog.ROWS_KEY: str(rows)}
            deltalog.write(landing.path, reader, mode="overwrite", metadata=notes)

        await asyncio.to_thread(rewrite)
    return Landed(rows, committed=True)


async def merge(
    landing: Landing,
    columns: MergeColumns,
    batches: AsyncIterator[pa.RecordBatch],
    spool: SpoolFactory,
    source_keys: AsyncIterator[pa.RecordBatch] | None = None,
) -> Landed:
    """Merge: upsert one row per key, the newer cursor winning; with `source_keys`, delete the keys gone from them."""
    with spool() as spooled:
        await write_in_thread(landing.schema, batches, spooled.write, depth=landing.depth)
        if source_keys is not None:
            schema = pa.schema([landing.schema.field(key) for key in columns.keys])
            await write_in_thread(schema, _as_keys(source_keys, schema), spooled.write_keys, depth=landing.depth)
        # From here on the run's rows are all read: what follows is the commit, and cancelling is too late.
        return await asyncio.to_thread(_merge_spooled, landing, columns, spooled, source_keys is not None)


async def _as_keys(batches: AsyncIterator[pa.RecordBatch], schema: pa.Schema) -> AsyncIterator[pa.RecordBatch]:
    """The staged key batches with the table's spelling and types of the key columns."""
    async for batch in batches:
        spelled = {name.lower(): name for name in batch.schema.names}
        arrays = [batch.column(spelled[field.name.lower()]).cast(field.type) for field in schema]
        yield pa.RecordBatch.from_arrays(arrays, schema=schema)


def _merge_spooled(landing: Landing, columns: MergeColumns, spooled: Spool, detect_deletes: bool = False) -> Landed:
    rows = spooled.count_keys(columns)
    deleted = None
    if detect_deletes and landing.exists:
        deleted = spooled.deleted_keys(columns, DeltaTable(str(landing.path)).to_pyarrow_dataset())
        log.info("merge into %s: %d rows deleted at the source", landing.path.name, deleted.num_rows)
    if landing.nothing_to_do(rows) and (deleted is None or deleted.num_rows == 0):
        return Landed(0, committed=False)
    notes = {**landing.notes, deltalog.ROWS_KEY: str(rows)}
    if detect_deletes:  # a table made by this run had nothing to delete
        notes[DELETED_KEY] = str(deleted.num_rows if deleted is not None else 0)
    # A cursor column the table is only now gaining has nothing stored to compare with.
    cursor_in_target = columns.cursor is not None and columns.cursor not in landing.drift.added
    if not landing.exists:
        latest = pa.RecordBatchReader.from_batches(landing.schema, spooled.latest_per_key(columns))
        deltalog.write(landing.path, latest, mode="append", metadata=notes)
    elif landing.drift.rewrite or (deleted is not None and deleted.num_rows and landing.drift.evolves):
        # delta-rs's MERGE, which adds columns, cannot also delete keys absent from its source: rewrite instead.
        stored = DeltaTable(str(landing.path)).to_pyarrow_dataset()
        merged = spooled.merged_into(stored, columns, cursor_in_target=cursor_in_target)
        if deleted is not None and deleted.num_rows:
            gone = deleted.cast(pa.schema([landing.schema.field(key) for key in columns.keys]))
            merged = (align(deltamerge.without(batch, gone, columns), landing.schema) for batch in merged)
        deltalog.write(
            landing.path, pa.RecordBatchReader.from_batches(landing.schema, merged), mode="overwrite", metadata=notes
        )
    elif not landing.drift.evolves:
        deltamerge.merge(
            landing.path,
            lambda: spooled.latest_per_key(columns),
            columns,
            cursor_in_target=cursor_in_target,
            metadata=notes,
            deleted=deleted,
        )
    else:  # the table gains columns: delta-rs's MERGE adds them in the same commit
        wins = incoming_wins(columns, deltalog.TARGET, deltalog.SOURCE, cursor_in_target=cursor_in_target)
        deltalog.merge(
            landing.path,
            pa.RecordBatchReader.from_batches(landing.schema, spooled.latest_per_key(columns)),
            on=same_key(columns, deltalog.TARGET, deltalog.SOURCE),
            replace_when=None if wins == "TRUE" else wins,
            metadata=notes,
            evolve=landing.drift.evolves,
            memory_bytes=landing.memory_bytes,
        )
    return Landed(rows, committed=True)


async def _peek(batches: AsyncIterator[pa.RecordBatch]) -> tuple[bool, AsyncIterator[pa.RecordBatch]]:
    """Whether the stream has any row, and the same stream from its start."""
    seen: list[pa.RecordBatch] = []
    async for batch in batches:
        seen.append(batch)
        if batch.num_rows:
            break
    any_rows = bool(seen) and seen[-1].num_rows > 0

    async def replay() -> AsyncIterator[pa.RecordBatch]:
        for batch in seen:
            yield batch
        if any_rows:
            async for batch in batches:
                yield batch

    return any_rows, replay()
