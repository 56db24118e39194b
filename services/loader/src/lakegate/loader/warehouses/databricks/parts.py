"""A run's batches as Parquet parts in the staging Volume, one bounded file at a time.

Batches are cast to the staged schema (see `typemap`), numbered, and written to an in-memory
Parquet file; once it holds `file_bytes` of Arrow data it is uploaded as `part-<n>.parquet` under
the run's own directory and the next one starts. So memory stays bounded whatever the table size,
and a retried run writes the same names again instead of adding files.
"""

from __future__ import annotations

import asyncio
import io
from collections.abc import AsyncIterator
from dataclasses import dataclass

import pyarrow as pa
import pyarrow.parquet as pq
from lakegate.common.contracts.runs import TableRef
from lakegate.loader.warehouses.databricks.typemap import staged_batch
from lakegate.loader.warehouses.databricks.volumes import VolumeFiles


@dataclass(frozen=True)
class StagedFiles:
    """What a run put in its directory."""

    directory: str
    files: int
    rows: int
    bytes: int


class _PartWriter:
    def __init__(self, volume: VolumeFiles, directory: str, schema: pa.Schema) -> None:
        self._volume, self._directory, self._schema = volume, directory, schema
        self._buffer: io.BytesIO | None = None
        self._writer: pq.ParquetWriter | None = None
        self.pending = 0
        self.files = 0
        self.bytes = 0

    def write(self, batch: pa.RecordBatch) -> None:
        if self._writer is None:
            self._buffer = io.BytesIO()
            self._writer = pq.ParquetWriter(self._buffer, self._schema, compression="zstd")
        self._writer.write_batch(batch)
        self.pending += batch.nbytes

    def flush(self) -> None:
        """Upload the current file, if it has rows."""
        if self._writer is None or self._buffer is None:
            return
        self._writer.close()
        data = self._buffer.getvalue()
        self._volume.put(f"{self._directory}/part-{self.files:05d}.parquet", data)
        self.files += 1
        self.bytes += len(data)
        self._writer, self._buffer, self.pending = None, None, 0


async def stage_parts(
    volume: VolumeFiles,
    directory: str,
    schema: pa.Schema,
    batches: AsyncIterator[pa.RecordBatch],
    *,
    target: TableRef,
    file_bytes: int,
) -> StagedFiles:
    """Write every batch to Parquet parts under `directory`; a bad batch stops it before the commit."""
    writer = _PartWriter(volume, directory, schema)
    rows = 0
    async for batch in batches:
        staged = staged_batch(batch, schema, rows, target)
        rows += batch.num_rows
        await asyncio.to_thread(writer.write, staged)
        if writer.pending >= file_bytes:
            await asyncio.to_thread(writer.flush)
    await asyncio.to_thread(writer.flush)
    return StagedFiles(directory, writer.files, rows, writer.bytes)
