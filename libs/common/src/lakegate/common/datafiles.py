"""The local lakehouse's data files: Parquet written by pyarrow as the rows stream in.

delta-rs's `write_deltalake` holds 130-170 MiB more than the batches it is given while it writes
(measured on 1M rows of the bench's mixed table), which alone took the loader past its 512 MiB
budget. Here rows go to zstd Parquet as they arrive: at most one row group (`ROW_GROUP_ROWS`) is
held before it is encoded, and a file is closed once it passes `FILE_BYTES`. Each file is described
by a `DataFile` whose statistics give its row count and the null count of every top-level column
(what a Delta `add` action carries). Min and max are left out: delta-rs treats missing bounds as
unknown, while a bound written at the wrong precision (Delta keeps instants to the millisecond)
would make readers skip rows.

Files are named as delta-rs names them. Two services write them: the loader (`written`, in
`lakegate.loader.warehouses.datafiles`) and the extractor, which stages a full sync into the local
lakehouse as these files (`lakegate.common.staging.DataFileStaging`), so the loader only commits.
A file that no commit references is invisible to every reader.
"""

from __future__ import annotations

import contextlib
import json
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

ROW_GROUP_ROWS = 131_072
FILE_BYTES = 128 * 1024 * 1024
COMPRESSION = "zstd"
#: A column chunk's dictionary stops growing at 64 KiB and the rest of the chunk is written plain:
#: low-cardinality columns keep their dictionaries, while keys, instants and free text stop paying
#: for a dictionary zstd does better without. Measured on the bench's 1M mixed rows: 0.87 s and
#: 29 MiB with the default 1 MiB, 0.48 s and 16 MiB with this.
DICTIONARY_PAGE_BYTES = 64 * 1024


def dictionary_columns(schema: pa.Schema) -> list[str]:
    """The columns worth a dictionary: strings and binaries (a status, a country), where one saves readers work.

    Numbers, decimals, dates and instants are written plain: zstd packs their plain pages as small as
    a dictionary would, and hashing every value into one costs the writer more than it saves. On the
    bench's 1M mixed rows: ~10% less Parquet CPU, 35.7 -> 35.0 MiB (measured, docs/overlapping-phases.md).
    """
    return [
        field.name
        for field in schema
        if pa.types.is_string(field.type)
        or pa.types.is_large_string(field.type)
        or pa.types.is_binary(field.type)
        or pa.types.is_large_binary(field.type)
    ]


@dataclass(frozen=True)
class DataFile:
    """One finished data file, as a Delta `add` action describes it."""

    name: str
    size: int
    modified_ms: int
    stats: str  # Delta's statistics JSON: numRecords and nullCount

    @property
    def rows(self) -> int:
        return int(json.loads(self.stats)["numRecords"])


def stats(metadata: pq.FileMetaData, schema: pa.Schema) -> str:
    """Delta's per-file statistics: rows, and nulls of each column stored as one Parquet column."""
    leaves = {metadata.schema.column(i).path: i for i in range(metadata.num_columns)}
    null_count: dict[str, int] = {}
    for field in schema:
        leaf = leaves.get(field.name)
        if leaf is None:  # a list or struct spans several Parquet columns: no count
            continue
        counts = [metadata.row_group(g).column(leaf).statistics for g in range(metadata.num_row_groups)]
        if all(found is not None and found.has_null_count for found in counts):
            null_count[field.name] = sum(found.null_count for found in counts if found is not None)
    return json.dumps({"numRecords": metadata.num_rows, "nullCount": null_count})


def describe(path: Path, schema: pa.Schema) -> DataFile:
    """A finished data file described from its footer."""
    stat = path.stat()
    return DataFile(path.name, stat.st_size, int(stat.st_mtime * 1000), stats(pq.read_metadata(path), schema))


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
            use_dictionary=dictionary_columns(schema),
            dictionary_pagesize_limit=DICTIONARY_PAGE_BYTES,
            metadata_collector=self._footer,
        )

    @property
    def size(self) -> int:
        return self._sink.tell()

    def write(self, table: pa.Table) -> None:
        self._writer.write_table(table, row_group_size=ROW_GROUP_ROWS)

    def close(self, schema: pa.Schema) -> DataFile:
        self._writer.close()
        self._sink.close()
        stat = self.path.stat()
        return DataFile(self.name, stat.st_size, int(stat.st_mtime * 1000), stats(self._footer[0], schema))

    def abandon(self) -> None:
        with contextlib.suppress(Exception):
            self._writer.close()
        self._sink.close()


class DataFileWriter:
    """Rows in, data files out under `directory`: row groups of `ROW_GROUP_ROWS`, files of about `FILE_BYTES`.

    Blocking (call it from a worker thread). `close` finishes the last file; `abandon` removes every
    file it wrote.
    """

    def __init__(self, directory: Path, schema: pa.Schema) -> None:
        directory.mkdir(parents=True, exist_ok=True)
        self.directory, self.schema = directory, schema
        self.files: list[DataFile] = []
        self.rows = 0
        self._paths: list[Path] = []
        self._pending: list[pa.RecordBatch] = []
        self._pending_rows = 0
        self._current: _File | None = None

    def write(self, batch: pa.RecordBatch) -> None:
        """Take one batch; a row group is encoded whenever `ROW_GROUP_ROWS` rows are waiting."""
        while batch.num_rows:
            take = min(batch.num_rows, ROW_GROUP_ROWS - self._pending_rows)
            self._pending.append(batch.slice(0, take))
            batch, self._pending_rows = batch.slice(take), self._pending_rows + take
            if self._pending_rows == ROW_GROUP_ROWS:
                self._flush()

    def close(self) -> list[DataFile]:
        """Write what is waiting and finish the open file; the files written, in order."""
        if self._pending_rows:
            self._flush()
        if self._current is not None:
            self.files.append(self._current.close(self.schema))
            self._current = None
        return self.files

    def abandon(self) -> None:
        """Stop and remove every file written so far."""
        if self._current is not None:
            self._current.abandon()
            self._current = None
        for path in self._paths:
            path.unlink(missing_ok=True)
        self._pending, self._pending_rows = [], 0

    def _flush(self) -> None:
        group = pa.Table.from_batches(self._pending, self.schema)
        self._pending, self._pending_rows = [], 0
        if self._current is None:
            self._current = _File(self.directory, self.schema)
            self._paths.append(self._current.path)
        self._current.write(group)
        self.rows += group.num_rows
        if self._current.size >= FILE_BYTES:
            self.files.append(self._current.close(self.schema))
            self._current = None


def batches(paths: list[Path], batch_rows: int = 65_536) -> Iterator[pa.RecordBatch]:
    """The rows of data files, in order, a bounded batch at a time."""
    for path in paths:
        with pq.ParquetFile(path) as file:
            yield from file.iter_batches(batch_size=batch_rows)
