"""DuckDB as the SQL engine of the local lakehouse: one sealed connection per statement, stopped on time.

Each session gets a fresh DuckDB connection that sees only the tables the statement names
(registered as Arrow datasets, temporary views of that connection alone). The connection is a
cursor of an in-memory database that each worker thread opens once and keeps (opening a
database costs ~25 ms of CPU, most of a `query_sql SELECT 1`; a cursor ~1 ms). A thread runs one
statement at a time, so every statement still has its database's memory limit and threads to
itself; the database holds nothing of its own (no tables, its configuration locked), so a
statement sees nothing of the ones before it. A kept database holds ~10 MiB after heavy
statements, so a loader with its default six worker threads may keep ~60 MiB more than before.
A session cannot read or write files or URLs, look up Python variables,
load extensions, spill to a temporary directory or change its own configuration. DuckDB's own
parser must agree that the SQL is exactly one SELECT. A timer interrupts the connection when the
timeout passes, and reading stops at the next batch if the engine was between batches. Calls block:
run them in a worker thread.
"""

from __future__ import annotations

import asyncio
import atexit
import contextlib
import re
import threading
from collections.abc import Callable, Iterator, Mapping
from contextvars import ContextVar
from dataclasses import dataclass, replace

import duckdb
import pyarrow as pa
import pyarrow.dataset as ds
from lakegate.common.callstops import current_stop, when_stopped
from lakegate.common.contracts.runs import TableRef
from lakegate.common.errors import LakegateError, WarehouseError

#: Rows per Arrow batch read from DuckDB.
BATCH_ROWS = 8192
_SIZE = re.compile(r"(\d+(?:\.\d+)?)\s*([KMGT]?i?B?)", re.IGNORECASE)
_UNITS = {"B": 1, "K": 1024, "M": 1024**2, "G": 1024**3, "T": 1024**4}


def size_bytes(text: str) -> int | None:
    """A size such as '512MB', '2GiB' or '1024' in bytes; None when it is not spelled so."""
    found = _SIZE.fullmatch(text.strip())
    if found is None:
        return None
    unit = found.group(2).upper().replace("I", "").rstrip("B") or "B"
    return int(float(found.group(1)) * _UNITS[unit])


def size_text(size: int) -> str:
    """A size in bytes as people write it: '1GB', '128MB'."""
    for unit in ("GB", "MB", "KB"):
        scale = _UNITS[unit[0]]
        if size >= scale:
            return f"{size / scale:g}{unit}"
    return f"{size}B"


@dataclass(frozen=True)
class EngineLimits:
    """What one statement may use of the machine."""

    threads: int = 4
    memory_limit: str = "512MB"
    #: Bytes of address space a query's own process may add once its tables are open (see
    #: `queryprocess`); None runs queries in the loader's process, bounded by `memory_limit` alone.
    process_memory: int | None = None

    @property
    def process_memory_text(self) -> str:
        """`process_memory` as people write it."""
        if self.process_memory is None:
            return "unbounded"
        return size_text(self.process_memory)

    def in_capped_process(self) -> EngineLimits:
        """The limits a statement has in its capped process: the engine's own limit at most half the process's
        budget, so that what the engine manages fails cleanly at its limit first (past the OS cap, a scan's
        allocations fail in ways DuckDB does not always survive: measured, a stall until the timeout or a
        crash), and the cap is left for what the engine does not see (lists, strings)."""
        if self.process_memory is None:
            return self
        half = self.process_memory // 2
        engine = self.memory_bytes
        if engine is not None and engine <= half:
            return self
        return replace(self, memory_limit=size_text(half))

    @property
    def memory_bytes(self) -> int | None:
        """`memory_limit` in bytes, for engines that want a number; None for a spelling such as '80%'."""
        return size_bytes(self.memory_limit)


def too_much_memory(limits: EngineLimits) -> WarehouseError:
    """The refusal of a statement that needed more memory than `limits` allow, naming their settings."""
    if limits.process_memory is None:
        return WarehouseError(
            f"the statement needed more memory than one query may use ({limits.memory_limit}): filter or "
            "aggregate more, or add a LIMIT; the limit is LAKEGATE_LOADER_QUERY_MEMORY_LIMIT"
        )
    return WarehouseError(
        f"the statement needed more memory than one query may use ({limits.memory_limit} in the engine, "
        f"{limits.process_memory_text} for its process): filter or aggregate more, build smaller lists and "
        "strings, or add a LIMIT; the limits are LAKEGATE_LOADER_QUERY_MEMORY_LIMIT and "
        "LAKEGATE_LOADER_QUERY_PROCESS_MEMORY"
    )


#: Stops of the sessions opened for the current request (the context reaches `asyncio.to_thread`).
_STOPS: ContextVar[list[Callable[[], None]] | None] = ContextVar("lakegate_loader_session_stops", default=None)


@contextlib.contextmanager
def interruptible() -> Iterator[None]:
    """Interrupt every session opened inside when the awaiting task is cancelled (its caller gave up):
    the statement stops in the engine's thread too, instead of running on to its timeout."""
    stops: list[Callable[[], None]] = []
    token = _STOPS.set(stops)
    try:
        yield
    except asyncio.CancelledError:
        for stop in stops:
            stop()
        raise
    finally:
        _STOPS.reset(token)


def stop_on_cancel(stop: Callable[[], None]) -> None:
    """Call `stop` when the request is cancelled: at once when its caller cancels it (`callstops`), or when
    the task inside `interruptible` is cancelled (nothing outside either)."""
    if (stops := _STOPS.get()) is not None:
        stops.append(stop)
    when_stopped(stop)


class Stopped(WarehouseError):
    """The statement ran past its timeout and was interrupted."""


_DATABASES = threading.local()
#: Every database opened, so that the process closes them before it exits (DuckDB's bindings report an
#: open connection at interpreter exit as leaked).
_OPENED: list[duckdb.DuckDBPyConnection] = []
_OPENED_LOCK = threading.Lock()


def _database(limits: EngineLimits) -> duckdb.DuckDBPyConnection:
    """This thread's sealed in-memory database for `limits`, opened on first use."""
    databases: dict[EngineLimits, duckdb.DuckDBPyConnection] = _DATABASES.__dict__.setdefault("by_limits", {})
    database = databases.get(limits)
    if database is None:
        database = databases[limits] = _connect(limits)
        database.execute("SET lock_configuration = true")
        with _OPENED_LOCK:
            _OPENED.append(database)
    return database


def warm_database(limits: EngineLimits) -> None:
    """Open this thread's database for `limits` now, so the first statement does not pay for it."""
    _database(limits)


@atexit.register
def _close_databases() -> None:
    with _OPENED_LOCK:
        for database in _OPENED:
            with contextlib.suppress(duckdb.Error):
                database.close()
        _OPENED.clear()


def _connect(limits: EngineLimits) -> duckdb.DuckDBPyConnection:
    con = duckdb.connect(
        ":memory:",
        config={
            "enable_external_access": False,
            "python_enable_replacements": False,
            "autoinstall_known_extensions": False,
            "autoload_known_extensions": False,
            "allow_community_extensions": False,
            "temp_directory": "",
            "threads": limits.threads,
            "memory_limit": limits.memory_limit,
        },
    )
    # Databricks evaluates zoned timestamps in UTC by default; so must DuckDB, whatever the host's zone.
    # GLOBAL: every cursor of the database starts with it (the progress bar is off by default there).
    con.execute("SET GLOBAL TimeZone = 'UTC'")
    return con


def _readable(message: str, sources: Mapping[str, TableRef]) -> str:
    """DuckDB's message with engine names turned back into the names the caller wrote."""
    for name, ref in sources.items():
        message = message.replace(name, f"{ref.schema_name}.{ref.name}")
    return message


class Session:
    """A sealed connection with its tables registered and a deadline."""

    def __init__(
        self, con: duckdb.DuckDBPyConnection, sources: Mapping[str, TableRef], timeout: float, limits: EngineLimits
    ) -> None:
        self._con, self._sources, self._timeout, self._limits = con, sources, timeout, limits
        self._expired = threading.Event()
        self._closed = threading.Event()

    def expire(self) -> None:
        """Stop whatever runs now, and anything read after."""
        self._expired.set()
        self._interrupt()

    def _interrupt(self) -> None:
        # An interrupt reaches only a statement that runs: one that starts just after would run on, so
        # interrupt again, every 0.2 s, until the session closes.
        if self._closed.is_set():
            return
        with contextlib.suppress(duckdb.Error):
            self._con.interrupt()
        again = threading.Timer(0.2, self._interrupt)
        again.daemon = True
        again.start()

    def close(self) -> None:
        """No more interrupts: the connection is closing."""
        self._closed.set()

    def _stopped(self) -> LakegateError:
        if (stop := current_stop()) is not None and stop.requested:
            return stop.error()  # interrupted because its caller cancelled it, not by the timeout
        return Stopped(
            f"the statement ran longer than {self._timeout:g}s and was stopped; "
            "filter or aggregate more, or add a LIMIT"
        )

    def _check_one_select(self, sql: str) -> None:
        try:
            statements = self._con.extract_statements(sql)
        except duckdb.Error as exc:
            raise WarehouseError(f"the local engine could not parse the translated SQL: {exc}") from exc
        if len(statements) != 1 or statements[0].type != duckdb.StatementType.SELECT:
            # The guard let through something DuckDB reads differently; refuse rather than guess.
            raise WarehouseError("the translated SQL is not exactly one SELECT; rewrite the query more plainly")

    @contextlib.contextmanager
    def _errors(self) -> Iterator[None]:
        try:
            yield
        except duckdb.InterruptException as exc:
            raise self._stopped() from exc
        except duckdb.OutOfMemoryException as exc:
            raise too_much_memory(self._limits) from exc
        except duckdb.Error as exc:
            if self._expired.is_set():
                raise self._stopped() from exc
            raise WarehouseError(f"the statement failed: {_readable(str(exc), self._sources)}") from exc

    def batches(self, sql: str, rows_per_batch: int = BATCH_ROWS) -> tuple[pa.Schema, Iterator[pa.RecordBatch]]:
        """The result's schema and its batches, produced as they are read."""
        self._check_one_select(sql)
        if self._expired.is_set():
            raise self._stopped()
        with self._errors():
            reader = self._con.sql(sql).to_arrow_reader(rows_per_batch)

        def read() -> Iterator[pa.RecordBatch]:
            while True:
                if self._expired.is_set():
                    raise self._stopped()
                with self._errors():
                    try:
                        batch = reader.read_next_batch()
                    except StopIteration:
                        return
                yield batch

        return reader.schema, read()

    def table(self, sql: str) -> pa.Table:
        """The whole result; for results known to be small (statistics, counts, LIMIT 0)."""
        schema, batches = self.batches(sql)
        return pa.Table.from_batches(list(batches), schema=schema)


@contextlib.contextmanager
def session(
    datasets: Mapping[str, ds.Dataset],
    sources: Mapping[str, TableRef],
    *,
    timeout: float,
    limits: EngineLimits,
) -> Iterator[Session]:
    """A sealed DuckDB session over `datasets`, interrupted `timeout` seconds after it opens."""
    con = _database(limits).cursor()
    try:
        for name, dataset in datasets.items():
            con.register(name, dataset)
        current = Session(con, sources, timeout, limits)
        stop_on_cancel(current.expire)
        timer = threading.Timer(timeout, current.expire)
        timer.daemon = True
        timer.start()
        try:
            yield current
        finally:
            timer.cancel()
            current.close()
    finally:
        con.close()
