"""Hand an async stream of record batches to a blocking writer running in a thread.

Writers such as `deltalake.write_deltalake` pull from a `pyarrow.RecordBatchReader` and block, so
they run in a worker thread while the event loop keeps fetching staged parts. A bounded queue
between them keeps at most `depth` batches in memory: the fetcher waits when the writer is behind.
An error on either side stops both; the writer then sees the reader fail and commits nothing.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable, Iterator
from typing import TypeVar

import pyarrow as pa
from lakegate.common.errors import Unavailable

T = TypeVar("T")

#: Seconds the writer waits for the next batch before it gives up; staging answers far sooner.
IDLE_LIMIT = 600.0


class _End:
    """Marks the end of the stream in the queue."""


class _Abort(Exception):
    """Raised into the writer when the loop side stops first (cancellation, shutdown)."""


async def write_in_thread(
    schema: pa.Schema,
    batches: AsyncIterator[pa.RecordBatch],
    write: Callable[[pa.RecordBatchReader], T],
    *,
    depth: int = 4,
) -> T:
    """Run `write(reader)` in a thread, feeding the reader from `batches`; re-raise the first failure."""
    loop = asyncio.get_running_loop()
    queue: asyncio.Queue[pa.RecordBatch | BaseException | _End] = asyncio.Queue(depth)
    failure: list[BaseException] = []

    async def pump() -> None:
        try:
            async for batch in batches:
                await queue.put(batch)
        except Exception as exc:
            failure.append(exc)
            await queue.put(exc)
        else:
            await queue.put(_End())
        finally:
            aclose = getattr(batches, "aclose", None)
            if aclose is not None:  # close the source now, not when it is garbage-collected
                await aclose()

    def reader_batches() -> Iterator[pa.RecordBatch]:
        while True:
            try:
                item = asyncio.run_coroutine_threadsafe(queue.get(), loop).result(IDLE_LIMIT)
            except TimeoutError as exc:
                stalled = Unavailable(f"no staged batch arrived for {IDLE_LIMIT:g}s; the load will be retried")
                failure.append(stalled)
                raise stalled from exc
            if isinstance(item, _End):
                return
            if isinstance(item, BaseException):
                raise item
            yield item

    pumping = asyncio.create_task(pump())
    try:
        return await asyncio.to_thread(write, pa.RecordBatchReader.from_batches(schema, reader_batches()))
    except BaseException:
        if failure:
            # The writer only wraps the reader's error in its own; the original says what went wrong
            # and whether retrying can help.
            raise failure[0] from None
        raise
    finally:
        pumping.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await pumping
        _unblock(queue)


def _unblock(queue: asyncio.Queue[pa.RecordBatch | BaseException | _End]) -> None:
    """Make sure a writer still waiting for a batch wakes up and fails instead of hanging."""
    while not queue.empty():
        queue.get_nowait()
    queue.put_nowait(_Abort("the load stopped before every batch was written"))
