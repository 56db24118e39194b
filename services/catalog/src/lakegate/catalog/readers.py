"""A few connections of their own for the catalog's hot reads, handed out without asyncpg's pool machinery.

A listing is one statement; through `asyncpg.Pool` its acquire and release cost more of the
catalog's CPU than the statement itself (a shielded task, an inactivity timer and a queue per
call: ~50-100 us here against ~55 us for the query; bench/README.md). `Readers` keeps up to `size`
connections, opened when first needed, in a plain list; a request takes one without awaiting when
one is idle, or waits in line for the next one given back. Each connection prepares a statement
once and runs it as its `PreparedStatement` after that (asyncpg's `Connection.fetchval` looks the
statement up in its cache, checks, times and wraps each call: a dozen Python calls). Nothing of
the data is cached: every read asks PostgreSQL, so what any replica committed is what the next
read sees.

A connection that fails (closed by the server, or a read cancelled midway, which can leave it
inside a statement) is closed and its place opened again on demand; a read that found its
connection gone is asked once more on a new one. A prepared statement the server no longer
accepts (its tables changed: `InvalidCachedStatementError`) is prepared anew and run again on the
same connection, which is fine. A statement's own error (a `PostgresError` on a live connection)
leaves the connection in use.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Awaitable, Callable
from typing import Any

import asyncpg
from asyncpg.prepared_stmt import PreparedStatement

Connect = Callable[[], Awaitable[asyncpg.Connection]]


class Readers:
    """Up to `size` connections for single-statement reads."""

    def __init__(self, connect: Connect, size: int) -> None:
        if size < 1:
            raise ValueError(f"Readers needs at least one connection, not {size}")
        self._connect, self._size = connect, size
        self._idle: list[asyncpg.Connection] = []
        self._waiting: deque[asyncio.Future[asyncpg.Connection | None]] = deque()
        self._open = 0  # connections opened (idle or in use) and openings under way
        self._prepared: dict[asyncpg.Connection, dict[str, PreparedStatement]] = {}
        self._closed = False

    @property
    def size(self) -> int:
        """How many connections there may be."""
        return self._size

    async def fetchval(self, query: str, *args: object) -> object:
        """The first column of the first row of `query` (prepared once on each connection, then run as such).

        A read that finds its connection gone (the server restarted, or ended it) is asked once more
        on a new one: it is a read, so asking twice changes nothing.
        """
        return await self._read(query, lambda statement: statement.fetchval(*args))

    async def fetch(self, query: str, *args: object) -> list[asyncpg.Record]:
        """Every row of `query`, asked once more on a new connection like `fetchval`."""
        rows: list[asyncpg.Record] = await self._read(query, lambda statement: statement.fetch(*args))
        return rows

    async def _read(self, query: str, run: Callable[[PreparedStatement], Awaitable[Any]]) -> Any:
        for last in (False, True):
            conn = await self._take()
            try:
                prepared = self._prepared[conn]
                statement = prepared.get(query)
                if statement is None:
                    statement = prepared[query] = await conn.prepare(query)
                try:
                    value = await run(statement)
                except asyncpg.InvalidCachedStatementError:
                    statement = prepared[query] = await conn.prepare(query)
                    value = await run(statement)
            except asyncio.CancelledError:
                self._drop(conn)  # cancelled midway: the connection may still be inside the statement
                raise
            except Exception as exc:
                if isinstance(exc, asyncpg.PostgresError) and not _lost(conn, exc):
                    self._give(conn)  # the statement failed; the connection is fine
                    raise
                # The connection is gone or in a state of asyncpg's own (InternalClientError): never reuse it.
                self._drop(conn)
                if last:
                    raise
                continue
            self._give(conn)
            return value
        raise AssertionError("unreachable")

    async def close(self) -> None:
        """Close the idle connections; one still in use is closed when it is given back."""
        self._closed = True
        idle, self._idle = self._idle, []
        for conn in idle:
            self._open -= 1
            self._prepared.pop(conn, None)
            await conn.close(timeout=5)
        while self._waiting:
            waiter = self._waiting.popleft()
            if not waiter.done():
                waiter.set_exception(asyncpg.InterfaceError("the catalog's readers are closed"))

    async def _take(self) -> asyncpg.Connection:
        while True:
            if self._closed:
                raise asyncpg.InterfaceError("the catalog's readers are closed")
            while self._idle:
                conn = self._idle.pop()
                if not conn.is_closed():
                    return conn
                self._open -= 1
                self._prepared.pop(conn, None)
            if self._open < self._size:
                self._open += 1
                try:
                    conn = await self._connect()
                    self._prepared[conn] = {}
                    return conn
                except BaseException:
                    self._open -= 1
                    self._wake(None)
                    raise
            waiter: asyncio.Future[asyncpg.Connection | None] = asyncio.get_running_loop().create_future()
            self._waiting.append(waiter)
            try:
                handed = await waiter
            except asyncio.CancelledError:
                if waiter.done() and not waiter.cancelled() and waiter.exception() is None:
                    # handed a connection (or room for one) just as this request was cancelled: pass it on
                    late = waiter.result()
                    if late is None:
                        self._wake(None)
                    else:
                        self._give(late)
                raise
            if handed is not None:
                return handed
            # None: a connection was dropped, so there is room to open one; go round again.

    def _give(self, conn: asyncpg.Connection) -> None:
        if self._closed or conn.is_closed():
            self._drop(conn)
            return
        if not self._wake(conn):
            self._idle.append(conn)

    def _drop(self, conn: asyncpg.Connection) -> None:
        self._open -= 1
        self._prepared.pop(conn, None)
        conn.terminate()
        self._wake(None)

    def _wake(self, conn: asyncpg.Connection | None) -> bool:
        """Hand `conn` (or, with None, the room to open one) to the first request waiting; False if none waits."""
        while self._waiting:
            waiter = self._waiting.popleft()
            if not waiter.done():
                waiter.set_result(conn)
                return True
        return False


def _lost(conn: asyncpg.Connection, exc: asyncpg.PostgresError) -> bool:
    """Whether a server error says the connection is gone, rather than that its statement failed."""
    # 08: connection exception; 57: operator intervention (the server shuts down or ended this backend).
    return conn.is_closed() or str(exc.sqlstate or "")[:2] in {"08", "57"}
