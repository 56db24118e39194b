"""A commit's data files, written by pyarrow's Parquet writer as the rows stream in.

delta-rs's `write_deltalake` holds 130-170 MiB more than the batches it is given while it writes
(measured on 1M rows of the bench's mixed table), which alone took the loader past its 512 MiB
budget. Here rows go to zstd Parquet as they arrive: at most one row group (`ROW_GROUP_ROWS`) is
held before it is encoded, and a file is closed once it passes `FILE_BYTES`. Each file becomes an
`AddAction` whose statistics give its row count and the null count of every top-level column. Min
and max are left out: delta-rs treats missing bounds as unknown, while a bound written at the wrong
precision (Delta keeps instants to the millisecond) would make readers skip rows.

Files are named as delta-rs names them. If the commit is never reached (a failed read, a crash), the
files stay unreferenced: no reader sees them, and `written` removes them when it can.
"""

from __future__ import annotations

import contextlib
import json
import uuid
from collections.abc import Iterable, Iterator
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
from deltalake.transaction import AddAction

ROW_GROUP_ROWS = 131_072
FILE_BYTES = 128 * 1024 * 1024
COMPRESSION = "zstd"
#: A column chunk's dictionary stops growing at 64 KiB and the rest of the chunk is written plain:
#: low-cardinality columns keep their dictionaries, while keys, instants and free text stop paying
#: for a dictionary zstd does better without. Measured on the bench's 1M mixed rows: 0.87 s and
#: 29 MiB with the default 1 MiB, 0.48 s and 16 MiB with this.
DICTIONARY_PAGE_BYTES = 64 * 1024


def _stats(metadata: pq.FileMetaData, schema: pa.Schema) -> str:
    """Delta's per-file statistics: rows, and nulls of each column stored as one Parquet column."""
    leaves = {metadata.schema.column(i).path: i for i in range(metadata.num_columns)}
    null_count: dict[str, int] = {}
    for field in schema:
        leaf = leaves.get(field.name)
        if leaf is None:  # a list or struct spans several Parquet columns: no count
            continue
        counts = [metadata.row_group(g).column(leaf).statistics for g in range(metadata.num_row_groups)]
        if all(stats is not None and stats.has_null_count for stats in counts):
            null_count[field.name] = sum(stats.null_count for stats in counts if stats is not None)
    return json.dumps({"numRecords": metadata.num_rows, "nullCount": null_count})


class _File:
    """One open data file."""

    def __init__(self, directory: Path, schema: pa.Schema) -> None:
        self.name = f"part-00000-{uuid.uuid4()}-c000.{COMPRESSION}.parquet"
        self.path = directory / self.name
        self._sink = self.path.open("wb")
        self._footer: list[pq.FileMetaData] = []  # the writer leaves the file's metadata here on close
        self._writer = pq.ParquetWriter(
            self._sink,
            schema,
            compression=COMPRESSION,
            dictionary_pagesize_limit=DICTIONARY_PAGE_BYTES,
            metadata_collector=self._footer,
        )

    @property
    def size(self) -> int:
        return self._sink.tell()

    def write(self, table: pa.Table) -> None:
        self._writer.write_table(table, row_group_size=ROW_GROUP_ROWS)

    def close(self, schema: pa.Schema) -> AddAction:
        self._writer.close()
        self._sink.close()
        stat = self.path.stat()
        return AddAction(self.name, stat.st_size, {}, int(stat.st_mtime * 1000), True, _stats(self._footer[0], schema))

    def abandon(self) -> None:
        with contextlib.suppress(Exception):
            self._writer.close()
        self._sink.close()


def _row_groups(batches: Iterable[pa.RecordBatch], schema: pa.Schema) -> Iterator[pa.Table]:
    """The batches regrouped into tables of `ROW_GROUP_ROWS` rows (the last one shorter)."""
    pending: list[pa.RecordBatch] = []
    rows = 0
    for batch in batches:
        while batch.num_rows:
            take = min(batch.num_rows, ROW_GROUP_ROWS - rows)
            pending.append(batch.slice(0, take))
            batch, rows = batch.slice(take), rows + take
            if rows == ROW_GROUP_ROWS:
                yield pa.Table.from_batches(pending, schema)
                pending, rows = [], 0
    if rows:
        yield pa.Table.from_batches(pending, schema)


@contextlib.contextmanager
def written(directory: Path, reader: pa.RecordBatchReader) -> Iterator[tuple[list[AddAction], int]]:
    """Write every row of `reader` into data files under `directory`; yields their add actions and
    the rows written. The files are removed again if the writing or the body (the commit) fails."""
    directory.mkdir(parents=True, exist_ok=True)
    schema = reader.schema
    actions: list[AddAction] = []
    files: list[Path] = []
    current: _File | None = None
    rows = 0
    try:
        for group in _row_groups(reader, schema):
            if current is None:
                current = _File(directory, schema)
                files.append(current.path)
            current.write(group)
            rows += group.num_rows
            if current.size >= FILE_BYTES:
                actions.append(current.close(schema))
                current = None
        if current is not None:
            actions.append(current.close(schema))
            current = None
        yield actions, rows
    except BaseException:
        if current is not None:
            current.abandon()
        for path in files:
            path.unlink(missing_ok=True)
        raise
