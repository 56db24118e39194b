"""Statements on a Databricks SQL warehouse: pooled DB-API connections, worker threads, deadlines, retries.

The connector is synchronous, so each unit of work runs in a worker thread on one connection taken
from a small pool. A unit has a deadline: when it passes, the running statement is cancelled and
the unit fails as `Stopped`. A statement the warehouse refused for a passing reason (starting,
throttled) is tried again with backoff when running it twice is harmless; a lost commit race is
always tried again, since the losing statement committed nothing.

`Connection` and `Cursor` are the part of DB-API 2.0 (plus the connector's Arrow fetches) lakegate
uses: `databricks.sql.connect(...)` returns one, and so does the recording connection in the tests.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import queue
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, Protocol, TypeVar

import pyarrow as pa
from lakegate.common.errors import Conflict, LakegateError, Unavailable
from lakegate.loader.warehouses.databricks.errors import Stopped, translate

log = logging.getLogger(__name__)
T = TypeVar("T")


class Cursor(Protocol):
    def execute(self, operation: str, parameters: Any = None) -> Any: ...

    def fetchall_arrow(self) -> pa.Table: ...

    def fetchmany_arrow(self, size: int) -> pa.Table: ...

    def cancel(self) -> None: ...

    def close(self) -> None: ...


class Connection(Protocol):
    def cursor(self) -> Cursor: ...

    def close(self) -> None: ...


Connect = Callable[[], Connection]


@dataclass(frozen=True)
class Backoff:
    """How often, and after which pauses, a statement refused for a passing reason is tried again."""

    retries: int = 4
    pauses: tuple[float, ...] = (1.0, 2.0, 5.0, 10.0)

    def pause(self, attempt: int) -> float:
        return self.pauses[min(attempt, len(self.pauses) - 1)] if self.pauses else 0.0


class Session:
    """One connection used by one thread, until its deadline."""

    def __init__(self, connection: Connection, timeout: float, backoff: Backoff) -> None:
        self._connection, self._timeout, self._backoff = connection, timeout, backoff
        self._expired = threading.Event()
        self._lock = threading.Lock()
        self._running: Cursor | None = None
        self.broken = False

    def expire(self) -> None:
        """Cancel whatever runs now, and refuse anything after."""
        self._expired.set()
        with self._lock:
            running = self._running
        if running is not None:
            with contextlib.suppress(Exception):
                running.cancel()

    def _stopped(self, doing: str) -> Stopped:
        return Stopped(
            f"{doing} ran longer than {self._timeout:g}s and was cancelled on the SQL warehouse; "
            "filter or aggregate more, add a LIMIT, or raise the timeout"
        )

    @contextlib.contextmanager
    def _cursor(self, doing: str) -> Iterator[Cursor]:
        if self._expired.is_set():
            raise self._stopped(doing)
        cursor = self._connection.cursor()
        with self._lock:
            self._running = cursor
        try:
            yield cursor
        except LakegateError:
            raise
        except Exception as exc:
            if self._expired.is_set():
                raise self._stopped(doing) from exc
            error = translate(exc, doing)
            if isinstance(error, Unavailable):
                self.broken = True  # the connection may be the problem; do not hand it to the next unit
            raise error from exc
        finally:
            with self._lock:
                self._running = None
            with contextlib.suppress(Exception):
                cursor.close()

    def _attempts(self, doing: str, idempotent: bool, run: Callable[[], T]) -> T:
        attempt = 0
        while True:
            try:
                return run()
            except (Unavailable, Conflict) as exc:
                retry = isinstance(exc, Conflict) or idempotent
                if not retry or attempt >= self._backoff.retries or self._expired.is_set():
                    raise
                log.info("retrying %s after: %s", doing, exc)
                time.sleep(self._backoff.pause(attempt))
                attempt += 1

    def execute(self, sql: str, *, doing: str, idempotent: bool = True) -> None:
        """Run a statement whose result is not needed."""

        def run() -> None:
            with self._cursor(doing) as cursor:
                cursor.execute(sql)

        self._attempts(doing, idempotent, run)

    def table(self, sql: str, *, doing: str, idempotent: bool = True) -> pa.Table:
        """Run a statement and read its whole (small) result as Arrow."""

        def run() -> pa.Table:
            with self._cursor(doing) as cursor:
                cursor.execute(sql)
                return cursor.fetchall_arrow()

        return self._attempts(doing, idempotent, run)

    def capped(
        self, sql: str, *, doing: str, rows: int, arrow_bytes: int, batch: int = 10_000
    ) -> tuple[pa.Table, bool]:
        """Read a result until more than `rows` rows or `arrow_bytes` bytes arrived; True when it was cut."""

        def run() -> tuple[pa.Table, bool]:
            with self._cursor(doing) as cursor:
                cursor.execute(sql)
                kept: list[pa.Table] = []
                count = size = 0
                while True:
                    chunk = cursor.fetchmany_arrow(min(batch, rows + 1))
                    if chunk.num_rows == 0:
                        break
                    kept.append(chunk)
                    count, size = count + chunk.num_rows, size + chunk.nbytes
                    if count > rows or size > arrow_bytes:
                        return pa.concat_tables(kept), True
                if not kept:
                    return cursor.fetchall_arrow(), False
                return pa.concat_tables(kept), False

        return self._attempts(doing, True, run)


class SqlClient:
    """Runs units of work on pooled connections in worker threads."""

    def __init__(self, connect: Connect, *, connections: int = 4, backoff: Backoff | None = None) -> None:
        self._connect = connect
        self._idle: queue.LifoQueue[Connection] = queue.LifoQueue(connections)
        self._backoff = backoff or Backoff()

    def _acquire(self, doing: str) -> Connection:
        with contextlib.suppress(queue.Empty):
            return self._idle.get_nowait()
        try:
            return self._connect()
        except LakegateError:
            raise
        except Exception as exc:
            raise translate(exc, f"a connection for {doing}") from exc

    def _release(self, connection: Connection, broken: bool) -> None:
        if not broken:
            with contextlib.suppress(queue.Full):
                self._idle.put_nowait(connection)
                return
        with contextlib.suppress(Exception):
            connection.close()

    def run_blocking(self, work: Callable[[Session], T], *, timeout: float, doing: str) -> T:
        """Run `work` on a pooled connection in this thread, cancelled once `timeout` seconds pass."""
        connection = self._acquire(doing)
        session = Session(connection, timeout, self._backoff)
        timer = threading.Timer(timeout, session.expire)
        timer.daemon = True
        timer.start()
        try:
            return work(session)
        except BaseException as exc:
            # An error lakegate understood leaves the connection usable; anything else may not have.
            session.broken = session.broken or not isinstance(exc, LakegateError)
            raise
        finally:
            timer.cancel()
            self._release(connection, session.broken)

    async def run(self, work: Callable[[Session], T], *, timeout: float, doing: str) -> T:
        """Run `work` in a worker thread on a pooled connection, cancelled once `timeout` seconds pass."""
        return await asyncio.to_thread(self.run_blocking, work, timeout=timeout, doing=doing)

    def close(self) -> None:
        """Close every idle connection."""
        while True:
            try:
                connection = self._idle.get_nowait()
            except queue.Empty:
                return
            with contextlib.suppress(Exception):
                connection.close()
