"""MERGE into a Delta table by rewriting only the data files that hold replaced rows, in bounded memory.

delta-rs's MERGE held the loader 340 MiB above where it started to merge 10,000 rows into a
1M-row table (measured), more than the loader's whole budget allows. This one:

1. reads the run's keys and cursors (one row per key) into memory: the key and cursor columns only;
2. reads each data file's key and cursor columns, and finds the stored rows an incoming row replaces
   (same key, and the stored cursor is NULL or not newer: `spool.incoming_wins`) and the incoming
   rows that lose to a newer stored one;
3. streams, into new data files (`datafiles`), the rows of each file that held a replaced row minus
   those rows, then the incoming rows that won;
4. commits the removed and the added files as one transaction carrying the run's notes.

With `deleted` (a merge with detect_deletes: keys the table holds and the source no longer has), the rows
of those keys are left out of the rewritten files too, in the same commit.

Files without a replaced or deleted row stay as they are. Keys compare as SQL's `=` does (a NULL key matches
nothing). A data file's physical types are whatever its writer chose (delta-rs's MERGE writes text as
`string_view`; other writers leave `large_string` or dictionary-encoded columns), so every column read
from a file is cast to the table's own schema before it is compared, filtered or written again.
A merge that adds columns still goes through delta-rs's MERGE, which merges the schema in the same
commit.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
from deltalake import CommitProperties, DeltaTable
from deltalake.transaction import AddAction, RemoveAction
from lakegate.loader.mergekeys import MergeColumns
from lakegate.loader.schemadrift import align
from lakegate.loader.warehouses import datafiles, deltalog
from lakegate.loader.warehouses.sqlengine import BATCH_ROWS

_ROW = "__lakegate_row"
_INCOMING_CURSOR = "__lakegate_incoming_cursor"


@dataclass(frozen=True)
class _Touched:
    """A data file holding rows the merge replaces: which of its rows stay."""

    path: str
    size: int
    keep: np.ndarray  # one bool per row of the file


def merge(
    path: Path,
    incoming: Callable[[], Iterator[pa.RecordBatch]],
    columns: MergeColumns,
    *,
    cursor_in_target: bool,
    metadata: Mapping[str, str],
    deleted: pa.Table | None = None,
) -> None:
    """One commit: the table's rows no incoming row replaces, then the incoming rows that win.

    `incoming` gives the run's rows, one per key, in the table's schema; it is read twice.
    """
    table = DeltaTable(str(path))
    schema = pa.schema(table.schema().to_arrow())
    # A cursor that is (part of) the key is equal on both sides of a match: the incoming row wins.
    cursor = columns.cursor if cursor_in_target and columns.cursor not in columns.keys else None
    arriving = _keys(incoming(), columns, cursor, {field.name: field.type for field in schema})
    touched, losers = _compare(path, deltalog.files(table), arriving, columns, cursor, schema, deleted)

    def rows() -> Iterator[pa.RecordBatch]:
        for file in touched:
            offset = 0
            stored = pq.ParquetFile(path / file.path, pre_buffer=False)  # not the whole file at once
            for batch in stored.iter_batches(batch_size=BATCH_ROWS, use_threads=False):
                keep = pa.array(file.keep[offset : offset + batch.num_rows])
                offset += batch.num_rows
                yield align(batch, schema).filter(keep)
        for batch in incoming():
            yield align(without(batch, losers, columns), schema)

    with datafiles.written(path, pa.RecordBatchReader.from_batches(schema, rows())) as (added, _rows):
        now = int(time.time() * 1000)
        removed = [RemoveAction(file.path, True, now, file.size) for file in touched]
        actions: list[AddAction | RemoveAction] = [*added, *removed]
        table.create_write_transaction(
            actions, "append", schema, commit_properties=CommitProperties(custom_metadata=dict(metadata))
        )


def _keys(
    batches: Iterator[pa.RecordBatch], columns: MergeColumns, cursor: str | None, types: Mapping[str, pa.DataType]
) -> pa.Table:
    """The incoming keys, and their cursors renamed apart from the stored ones."""
    wanted = [*columns.keys, *([cursor] if cursor else [])]
    selected = [batch.select(wanted) for batch in batches]
    found = (
        pa.Table.from_batches(selected) if selected else pa.table({name: pa.array([], types[name]) for name in wanted})
    )
    return found.rename_columns([*columns.keys, *([_INCOMING_CURSOR] if cursor else [])])


def _compare(
    path: Path,
    files: pa.Table,
    arriving: pa.Table,
    columns: MergeColumns,
    cursor: str | None,
    schema: pa.Schema,
    deleted: pa.Table | None,
) -> tuple[list[_Touched], pa.Table]:
    """The files holding replaced or deleted rows, and the keys of incoming rows a newer stored row beats."""
    keys = list(columns.keys)
    read = pa.schema([schema.field(name) for name in [*keys, *([cursor] if cursor else [])]])
    touched: list[_Touched] = []
    beaten: list[pa.Table] = []
    empty = pa.table({key: pa.array([], schema.field(key).type) for key in keys})
    gone = _as(deleted.select(keys), pa.schema([schema.field(key) for key in keys])) if deleted else empty
    if arriving.num_rows == 0 and gone.num_rows == 0:
        return touched, empty
    for name, size in zip(files.column("path").to_pylist(), files.column("size_bytes").to_pylist(), strict=True):
        stored = _as(pq.read_table(path / name, columns=read.names), read)
        stored = stored.append_column(_ROW, pa.array(np.arange(stored.num_rows), pa.int64()))
        keep = np.ones(stored.num_rows, dtype=bool)
        if arriving.num_rows:
            matched = stored.join(arriving, keys=keys, join_type="inner")
            wins = _wins(matched, cursor)
            beaten.append(matched.filter(pc.invert(wins)).select(keys))
            keep[matched.filter(wins).column(_ROW).to_numpy()] = False
        if gone.num_rows:
            keep[stored.select([*keys, _ROW]).join(gone, keys=keys, join_type="inner").column(_ROW).to_numpy()] = False
        if not keep.all():
            touched.append(_Touched(name, int(size), keep))
    losers = pa.concat_tables(beaten) if beaten else empty
    return touched, losers


def _as(stored: pa.Table, schema: pa.Schema) -> pa.Table:
    """`stored`'s columns in the table's types, whichever physical types its file holds."""
    return stored if stored.schema == schema else stored.cast(schema, safe=True)


def _wins(matched: pa.Table, cursor: str | None) -> pa.ChunkedArray:
    """Per matched pair: the incoming row replaces the stored one (the stored cursor is NULL or not newer)."""
    if cursor is None:
        return pa.chunked_array([pa.array(np.ones(matched.num_rows, dtype=bool))])
    stored, incoming = matched.column(cursor), matched.column(_INCOMING_CURSOR)
    return pc.or_(pc.is_null(stored), pc.fill_null(pc.greater_equal(incoming, stored), False))


def without(batch: pa.RecordBatch, losers: pa.Table, columns: MergeColumns) -> pa.RecordBatch:
    """The batch minus the rows whose key is in `losers` (a newer stored row keeps it, or the source deleted it)."""
    if losers.num_rows == 0:
        return batch
    remaining = pa.Table.from_batches([batch]).join(losers, keys=list(columns.keys), join_type="left anti")
    return remaining.combine_chunks().to_batches()[0] if remaining.num_rows else batch.slice(0, 0)
