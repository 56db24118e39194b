"""The bridge from async staged batches to a blocking writer thread: bounded, and failing cleanly."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pyarrow as pa
import pytest
from lakegate.common.errors import TerminalError
from lakegate.loader.warehouses.bridge import write_in_thread

SCHEMA = pa.schema([("n", pa.int64())])


class Source:
    """An async batch source that counts how far it has run ahead."""

    def __init__(self, count: int, fail_at: int | None = None) -> None:
        self.count, self.fail_at = count, fail_at
        self.produced = 0

    async def batches(self) -> AsyncIterator[pa.RecordBatch]:
        for i in range(self.count):
            if i == self.fail_at:
                raise TerminalError(f"part {i} is broken")
            self.produced += 1
            yield pa.record_batch({"n": pa.array([i], pa.int64())})


async def test_the_reader_never_runs_more_than_the_queue_depth_ahead_of_the_writer() -> None:
    source = Source(200)
    lead: list[int] = []

    def write(reader: pa.RecordBatchReader) -> int:
        consumed = 0
        for _ in reader:
            consumed += 1
            lead.append(source.produced - consumed)
        return consumed

    assert await write_in_thread(SCHEMA, source.batches(), write, depth=4) == 200
    # The queue holds `depth`; the source may hold one more batch while it waits to put it.
    assert max(lead) <= 4 + 1


async def test_a_failing_source_stops_the_writer_and_its_own_error_comes_back() -> None:
    written: list[int] = []

    def write(reader: pa.RecordBatchReader) -> None:
        for batch in reader:
            written.append(batch.num_rows)

    with pytest.raises(TerminalError, match="part 3 is broken"):
        await write_in_thread(SCHEMA, Source(10, fail_at=3).batches(), write)

    assert written == [1, 1, 1]


async def test_a_failing_writer_stops_the_source() -> None:
    source = Source(1000)

    def write(reader: pa.RecordBatchReader) -> None:
        next(iter(reader))
        raise OSError("disk full")

    with pytest.raises(OSError, match="disk full"):
        await write_in_thread(SCHEMA, source.batches(), write, depth=2)

    assert source.produced < 10
