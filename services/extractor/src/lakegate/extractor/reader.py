"""Streams one table out of PostgreSQL with ADBC, in a worker thread, inside a shared snapshot.

ADBC is synchronous, so its binary COPY runs in a thread and the event loop stays free. The thread
opens its own read-only session, begins a REPEATABLE READ READ ONLY transaction, adopts the snapshot
that the asyncpg session exported (so it reads exactly the state introspection saw), checks that the
transaction really is read-only, and converts every batch to the planned schema. Batches cross to
the event loop through a bounded queue: at most `queue_batches` wait in memory, whatever the size
of the table.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import re
import threading
from collections.abc import AsyncGenerator
from pathlib import Path
from typing import Any

import adbc_driver_manager
import adbc_driver_manager.dbapi
import pyarrow as pa
from adbc_driver_manager._reader import AdbcRecordBatchReader
from adbc_driver_postgresql import StatementOptions
from adbc_driver_postgresql import dbapi as adbc
from lakegate.common.errors import LakegateError, SourceError, TerminalError, Unavailable
from lakegate.extractor.config import ExtractorSettings
from lakegate.extractor.connections import (
    APPLICATION_NAME,
    SESSION_SETTINGS,
    is_transient_state,
    milliseconds,
    redact,
    where,
)
from lakegate.extractor.destinations import destination
from lakegate.extractor.logins import Login
from lakegate.extractor.query import TableQuery, bounded

SNAPSHOT_ID = re.compile(r"^[0-9A-Fa-f]+(-[0-9A-Fa-f]+)+$")
_SERVER_MESSAGE = re.compile(r"ERROR:\s+(.+?)\s*(?:\n|\. SQLSTATE|$)")


def _quoted(value: str) -> str:
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


def conninfo(login: Login, settings: ExtractorSettings, hostaddr: str | None = None) -> str:
    """A libpq `keyword='value'` connection string for ADBC; every value quoted.

    libpq connects to `hostaddr` (the address `destinations` checked) and keeps `host` for TLS;
    without it (bench probes), libpq resolves `host` itself.
    """
    address = login.address
    session = {**SESSION_SETTINGS, "statement_timeout": milliseconds(settings.extract_timeout)}
    params = {
        "host": address.host,
        **({"hostaddr": hostaddr} if hostaddr else {}),
        "port": str(address.port),
        "dbname": address.database,
        "user": address.user,
        "password": login.password.get_secret_value(),
        "connect_timeout": str(max(2, math.ceil(settings.connect_timeout))),
        "application_name": APPLICATION_NAME,
        "options": " ".join(f"-c {name}={value}" for name, value in session.items()),
    }
    return " ".join(f"{keyword}={_quoted(value)}" for keyword, value in params.items())


def connect_adbc(uri: str, driver: Path | None) -> adbc_driver_manager.dbapi.Connection:
    """An autocommit ADBC connection to `uri`, through `driver` (a driver library) or the wheel's own driver."""
    if driver is None:
        wheel: adbc_driver_manager.dbapi.Connection = adbc.connect(uri, autocommit=True)
        return wheel
    database = adbc_driver_manager.AdbcDatabase(driver=str(driver), uri=uri)
    try:
        connection = adbc_driver_manager.AdbcConnection(database)
    except BaseException:
        database.close()
        raise
    return adbc_driver_manager.dbapi.Connection(database, connection, autocommit=True)


def server_message(text: str) -> str:
    """The server's own words out of an ADBC error text, which also quotes the statement."""
    found = _SERVER_MESSAGE.search(text)
    return found.group(1).strip() if found else text.strip()


def reading_error(exc: BaseException, login: Login, query: TableQuery) -> BaseException:
    """What a failure while streaming `query` means to a user."""
    if isinstance(exc, LakegateError):
        return exc
    table, at = query.qualified, where(login.address)
    if isinstance(exc, adbc_driver_manager.Error):
        message = redact(server_message(str(exc)), login)
        sqlstate = exc.sqlstate
        if sqlstate == "25006":
            return SourceError(
                f"reading {table} at {at} tried to write ({message}): lakegate reads sources in a read-only "
                "transaction, so a view or function that writes cannot be synced; sync the tables it reads instead"
            )
        if sqlstate == "42501":
            return SourceError(
                f"user '{login.address.user}' may not read {table} at {at} ({message}): ask the owner to "
                f"GRANT SELECT ON {table} (and USAGE on its schema) TO {login.address.user}"
            )
        if sqlstate == "57014" and "statement timeout" in message:
            return SourceError(
                f"reading {table} at {at} took longer than the extract timeout ({message}): "
                "raise LAKEGATE_EXTRACTOR_EXTRACT_TIMEOUT, or sync a smaller view of the table"
            )
        if is_transient_state(sqlstate):
            return Unavailable(f"reading {table} at {at} failed for now ({message}); retrying")
        return SourceError(f"PostgreSQL at {at} refused to read {table}: {message}")
    if isinstance(exc, OSError):
        return Unavailable(f"reading {table} at {at} broke off ({redact(server_message(str(exc)), login)}); retrying")
    if isinstance(exc, pa.ArrowException):
        if "ERROR:" in str(exc):
            return SourceError(f"PostgreSQL at {at} refused to read {table}: {redact(server_message(str(exc)), login)}")
        return TerminalError(f"the rows of {table} at {at} could not be read as Arrow: {redact(str(exc), login)}")
    return exc


class _End:
    """Put on the queue after the last batch."""


class _Producer:
    """The worker thread's side: read, convert, hand over; stop early when asked."""

    def __init__(
        self,
        login: Login,
        snapshot: str,
        query: TableQuery,
        settings: ExtractorSettings,
        loop: asyncio.AbstractEventLoop,
        queue: asyncio.Queue[pa.RecordBatch | BaseException | _End],
        hostaddr: str,
    ) -> None:
        self._login, self._snapshot, self._query, self._settings = login, snapshot, query, settings
        self._hostaddr = hostaddr
        self._loop, self._queue = loop, queue
        self._stopped = threading.Event()
        self._lock = threading.Lock()
        self._cursor: Any = None

    def run(self) -> None:
        try:
            self._read()
        except BaseException as exc:  # handed to the event loop, which raises it there
            self._put(exc)
        else:
            self._put(_End())

    def stop(self) -> None:
        """Ask the thread to finish; cancels the running statement (safe from another thread)."""
        self._stopped.set()
        with self._lock:
            if self._cursor is not None:
                with contextlib.suppress(Exception):
                    self._cursor.adbc_cancel()

    def _put(self, item: pa.RecordBatch | BaseException | _End) -> bool:
        """Wait for room in the queue; False once the consumer has gone."""
        if self._stopped.is_set():
            return False
        with contextlib.suppress(RuntimeError):  # the loop is closing: nobody is listening
            asyncio.run_coroutine_threadsafe(self._queue.put(item), self._loop).result()
        return not self._stopped.is_set()

    def _read(self) -> None:
        uri = conninfo(self._login, self._settings, self._hostaddr)
        with connect_adbc(uri, self._settings.adbc_driver) as conn:
            cursor = conn.cursor()
            with self._lock:
                self._cursor = cursor
            try:
                if not self._stopped.is_set():
                    self._stream(cursor)
            finally:
                with self._lock:
                    self._cursor = None
                    cursor.close()

    def _stream(self, cursor: Any) -> None:
        cursor.execute("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
        cursor.execute(f"SET TRANSACTION SNAPSHOT '{self._snapshot}'")
        cursor.execute(
            "SELECT pg_catalog.current_setting('transaction_isolation'), "
            "pg_catalog.current_setting('transaction_read_only')"
        )
        isolation, read_only = cursor.fetchone()
        if (isolation, read_only) != ("repeatable read", "on"):
            raise TerminalError(
                f"the reading transaction at {where(self._login.address)} is {isolation}, read_only={read_only}, "
                "not repeatable read and read-only; refusing to read"
            )
        cursor.adbc_statement.set_options(
            **{StatementOptions.BATCH_SIZE_HINT_BYTES.value: str(self._settings.batch_bytes)}
        )
        cursor.execute(self._query.sql)
        # Not `fetch_record_batch()`: pyarrow's own reader turns a server error met mid-stream into a
        # bare ArrowInvalid; ADBC's reader raises it as an ADBC error that keeps its SQLSTATE.
        stream = cursor.fetch_arrow()
        for raw in AdbcRecordBatchReader._import_from_c(stream.address):
            if self._stopped.is_set():
                return
            batch = self._query.convert(raw)
            for piece in bounded(batch, self._settings.batch_rows, self._settings.batch_bytes):
                if not self._put(piece):
                    return
        cursor.execute("COMMIT")


async def read_table(
    login: Login, snapshot: str, query: TableQuery, settings: ExtractorSettings
) -> AsyncGenerator[pa.RecordBatch, None]:
    """The table's rows as batches of the planned schema, read in the exported `snapshot`.

    Use it inside `contextlib.aclosing`, so that leaving early stops the thread.
    """
    if not SNAPSHOT_ID.match(snapshot):
        raise TerminalError(f"{snapshot!r} is not a PostgreSQL snapshot id")
    queue: asyncio.Queue[pa.RecordBatch | BaseException | _End] = asyncio.Queue(maxsize=settings.queue_batches)
    hostaddr = await destination(login.address, settings)
    producer = _Producer(login, snapshot, query, settings, asyncio.get_running_loop(), queue, hostaddr)
    thread = asyncio.ensure_future(asyncio.to_thread(producer.run))
    finished = False
    try:
        while True:
            item = await queue.get()
            if isinstance(item, _End):
                finished = True
                return
            if isinstance(item, BaseException):
                finished = True
                error = reading_error(item, login, query)
                if error is item:
                    raise item
                raise error from item
            yield item
    finally:
        if not finished:
            producer.stop()
        while not queue.empty():  # frees a thread waiting to put, so it can see it must stop
            queue.get_nowait()
        await thread
