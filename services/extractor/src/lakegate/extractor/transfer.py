"""One read moved into staging: batches become parts, rows are counted, the greatest cursor value is kept.

Memory stays bounded whatever the size of the read: the reader hands over at most `queue_batches`
batches of about `batch_bytes` (`reader.py`), and each is written out before the next is taken.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from lakegate.common.contracts.runs import ExtractTable, StagedParts, TableRef
from lakegate.common.staging import DataFileStaging, PartWriter, StagingStore
from lakegate.common.telemetry import tracer
from lakegate.extractor.config import ExtractorSettings
from lakegate.extractor.cursors import CursorColumn, CursorValue
from lakegate.extractor.logins import Login
from lakegate.extractor.query import TableQuery
from lakegate.extractor.reader import read_table


@dataclass(frozen=True)
class Transferred:
    """What one read staged."""

    staged: StagedParts
    rows: int
    greatest: CursorValue | None  # the greatest cursor value among the rows; None without a cursor or rows


def data_files_for(command: ExtractTable) -> TableRef | None:
    """The table whose data files a run may be staged as: a full sync's (nothing to align with the stored table)."""
    return command.target if command.sync_mode == "full" else None


async def staged_writer(
    staging: StagingStore, run_id: str, attempt: str, query: TableQuery, data_files_for: TableRef | None
) -> PartWriter:
    """Where one read is staged: `data_files_for`'s own data files when this extractor can reach the lakehouse."""
    if data_files_for is not None and isinstance(staging, DataFileStaging):
        return await staging.file_writer(run_id, attempt, query.schema, data_files_for)
    return await staging.writer(run_id, attempt)


async def transfer(
    login: Login,
    snapshot: str,
    query: TableQuery,
    writer: PartWriter,
    settings: ExtractorSettings,
    *,
    cursor: CursorColumn | None,
    report: Callable[[int], Awaitable[None]],
) -> Transferred:
    """Read `query` in `snapshot` into `writer`, reporting the rows so far every `progress_interval` and at the end."""
    rows, staging = 0, 0.0
    greatest: CursorValue | None = None
    reported = time.monotonic()
    # The read and the staging interleave batch by batch, so one span holds both, with staging's share.
    with tracer(__name__).start_as_current_span("source read") as span:
        async with contextlib.aclosing(read_table(login, snapshot, query, settings)) as batches:
            async for batch in batches:
                began = time.monotonic()
                await _finished(writer.write(batch))
                staging += time.monotonic() - began
                rows += batch.num_rows
                if cursor is not None:
                    greatest = cursor.greatest([greatest, cursor.greatest_in(batch.column(cursor.name))])
                if time.monotonic() - reported >= settings.progress_interval:
                    await report(rows)
                    reported = time.monotonic()
        span.set_attributes({"lakegate.rows": rows, "lakegate.staging_seconds": round(staging, 3)})
    await report(rows)
    with tracer(__name__).start_as_current_span("staging flush") as span:
        staged = await writer.close()
        span.set_attributes({"lakegate.parts": staged.parts, "lakegate.bytes": staged.bytes})
    return Transferred(staged, rows, greatest)


async def _finished(write: Awaitable[None]) -> None:
    """Write a batch; when the work is cancelled meanwhile, finish the write first, then stop.

    A JetStream publish cut short may still be stored after the run's parts are deleted (the server
    stores it after answering the purge); a finished one is stored before, so the deletion removes it.
    """
    task = asyncio.ensure_future(write)
    try:
        await asyncio.shield(task)
    except asyncio.CancelledError:
        await asyncio.wait({task})
        raise
