"""Statements over the local lakehouse in worker processes whose memory the OS caps.

DuckDB's `memory_limit` bounds its buffer manager, not everything a statement allocates: a list
built by `range(0, 20000000)` or a string built by `repeat` grows past it (measured: 1.9 GB under a
512 MB limit, 7 GB before the timeout for a larger range). So each statement runs in a worker
process forked from a server that has DuckDB, Arrow and deltalake loaded, and the worker sets the
soft `RLIMIT_AS` to the address space it holds once the statement's tables are open plus
`LAKEGATE_LOADER_QUERY_PROCESS_MEMORY`, and lifts it once the statement answered (SQL cannot call
`setrlimit`). An allocation past that fails inside the engine and the statement fails saying so;
if the process dies instead, only that call fails. The loader's own memory does not grow with the
query. The same deadline as in the thread still interrupts the statement; a process that outlives
it by `KILL_GRACE_SECONDS` is killed.

Workers are reused (`QueryProcesses`): a fork per statement cost ~100-200 ms here, most of it the
child opening its DuckDB database, unpickling its work and, under pytest or a script, importing the
parent's main module again; and the fork server's own start (importing the engine) cost the first
query 5-13 s. Now the loader starts the fork server and `QUERY_SLOTS` workers at start-up
(`warm`), each with its database open and one `SELECT 1` answered, and a statement goes to an idle
worker over its pipe. A worker keeps its Delta tables and their datasets (`OpenTables`) and uses
them again while the table has no new commit. A worker whose statement was cancelled, ran past its
deadline or out of memory, failed in an unexpected way, or was not read to its end is killed (or
ends itself) and replaced in the background; one whose resident memory grew by more than
`RETIRE_GROWTH` retires after its answer. A late cancel of a call reaches its worker only while
that call holds it.

Two kinds of work run so: a capped read (`CappedRead`: a query or preview, its rows turned into
JSON in the child) and a statement stream (`Statement`: a transform's rows, statistics, a view's
row count or columns), whose record batches the child sends to the loader one at a time while the
loader writes them, so a transform holds no more than a few batches in the loader either. A call
whose caller cancels it kills its process (`sqlengine.stop_on_cancel`) and fails `Cancelled`.
"""

from __future__ import annotations

import contextlib
import multiprocessing
import multiprocessing.connection
import resource
import signal
import threading
import time
from collections import OrderedDict
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, replace
from multiprocessing.context import ForkServerContext

import duckdb
import pyarrow as pa
import pyarrow.dataset as ds
from deltalake import DeltaTable
from lakegate.common.callstops import check_stopped, current_stop
from lakegate.common.contracts.runs import TableRef
from lakegate.common.contracts.warehouse import QueryResult
from lakegate.common.errors import InvalidInput, LakegateError, NotFound, WarehouseError
from lakegate.loader.results import query_result
from lakegate.loader.warehouses.sqlengine import (
    BATCH_ROWS,
    EngineLimits,
    Session,
    Stopped,
    session,
    stop_on_cancel,
    too_much_memory,
    warm_database,
)
from lakegate.loader.warehouses.tablestate import TableState, TableStates

#: Seconds past its timeout a query process may take to stop by itself before it is killed.
KILL_GRACE_SECONDS = 5.0
#: Idle workers kept ready; with `QUERY_SLOTS` statements at once (4 by default) a statement rarely waits
#: for a fork. An idle worker shares the fork server's pages and holds its own engine database (~10 MiB).
IDLE_WORKERS = 4
#: Resident memory a worker may keep beyond what it held when it started before it retires after a statement.
RETIRE_GROWTH = 256 * 1024 * 1024
#: Process names: idle, running a capped read, streaming a statement (tests look for the last two).
IDLE_NAME, QUERY_NAME, STATEMENT_NAME = "lakegate-query-idle", "lakegate-query", "lakegate-statement"
#: Seconds a new worker may take to open its engine (the first one also waits for the fork server to import it).
READY_SECONDS = 120.0
#: Delta tables a worker keeps open between statements.
OPEN_TABLES = 64
#: The errors a child sends back by name; anything else becomes a WarehouseError.
_ERRORS: dict[str, type[LakegateError]] = {
    "Stopped": Stopped,
    "NotFound": NotFound,
    "InvalidInput": InvalidInput,
    "WarehouseError": WarehouseError,
}


@dataclass(frozen=True)
class CappedRead:
    """One statement whose result is cut at `max_rows` rows and `max_result_bytes` of JSON."""

    sql: str
    sources: Mapping[str, TableRef]
    paths: Mapping[str, str]
    max_rows: int
    max_result_bytes: int
    timeout: float
    limits: EngineLimits


@dataclass(frozen=True)
class Statement:
    """One statement whose whole result is streamed back as record batches."""

    sql: str
    sources: Mapping[str, TableRef]
    paths: Mapping[str, str]
    timeout: float
    limits: EngineLimits


class OpenTables:
    """A worker's open Delta tables and their Arrow datasets, kept between statements. Two `stat` calls say
    whether a table is still at the version its dataset was made from (`tablestate`): then the dataset is
    used again as it is (measured: ~1 ms less per table per statement than catching the table up and making
    its dataset again); after a commit the table is caught up (~0.4 ms) rather than opened again (~2.5 ms).
    A table dropped and written again at the same path is another table and is opened afresh."""

    def __init__(self, most: int = OPEN_TABLES) -> None:
        self._most = most
        self._states = TableStates()
        self._open: OrderedDict[str, tuple[TableState, DeltaTable, ds.Dataset]] = OrderedDict()

    def dataset(self, path: str) -> ds.Dataset | None:
        """The Arrow dataset of the table's latest version; None when there is no table at `path`."""
        state = self._states.delta(path)
        if state is None:
            return None
        kept = self._open.pop(path, None)
        if kept is not None and kept[0] == state:
            table, dataset = kept[1], kept[2]
        else:
            if kept is not None and kept[0][:2] == state[:2]:
                table = kept[1]
                table.update_incremental()
            else:
                table = DeltaTable(path)
            dataset = table.to_pyarrow_dataset()
        # The version read, which a commit made since the `stat` calls may have moved past `state`.
        self._open[path] = ((state[0], state[1], table.version()), table, dataset)
        while len(self._open) > self._most:
            self._open.popitem(last=False)
        return dataset


def datasets(
    paths: Mapping[str, str], sources: Mapping[str, TableRef], tables: OpenTables | None = None
) -> dict[str, ds.Dataset]:
    """The Arrow dataset of each engine name's Delta table."""
    opened = {}
    for name, path in paths.items():
        if tables is not None:
            dataset = tables.dataset(path)
        else:
            dataset = DeltaTable(path).to_pyarrow_dataset() if DeltaTable.is_deltatable(path) else None
        if dataset is None:
            raise NotFound(f"table {sources[name]} no longer exists; a view that reads it must be defined again")
        opened[name] = dataset
    return opened


def collect(read: CappedRead, current: Session) -> QueryResult:
    """Read at most one row past the cap (or 4x the JSON byte limit in Arrow bytes) and convert."""
    schema, batches = current.batches(read.sql, min(read.max_rows + 1, BATCH_ROWS))
    kept: list[pa.RecordBatch] = []
    rows = size = 0
    more = False
    for batch in batches:
        kept.append(batch)
        rows, size = rows + batch.num_rows, size + batch.nbytes
        # Arrow bytes past 4x the JSON limit mean the JSON is past it too: stop reading early.
        if rows > read.max_rows or size > 4 * read.max_result_bytes:
            more = True
            break
    return query_result(pa.Table.from_batches(kept, schema), read.max_rows, read.max_result_bytes, more=more)


def run_in_thread(read: CappedRead) -> QueryResult:
    """The capped read in this process (when `EngineLimits.process_memory` is None)."""
    with session(datasets(read.paths, read.sources), read.sources, timeout=read.timeout, limits=read.limits) as current:
        return collect(read, current)


def _status(field: str) -> int:
    with open("/proc/self/status", encoding="ascii") as status:
        for line in status:
            if line.startswith(field):
                return int(line.split()[1]) * 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # pragma: no cover - not Linux


def _address_space() -> int:
    return _status("VmSize:")


def _resident() -> int:
    return _status("VmRSS:")


def _cap(limits: EngineLimits) -> None:
    """Cap this process's address space at what it holds now plus the statement's budget (soft limit only, so
    the worker can lift it again once the statement answered: SQL cannot call `setrlimit`)."""
    assert limits.process_memory is not None
    cap = _address_space() + limits.process_memory
    resource.setrlimit(resource.RLIMIT_AS, (cap, resource.RLIM_INFINITY))


def _uncap() -> None:
    resource.setrlimit(resource.RLIMIT_AS, (resource.RLIM_INFINITY, resource.RLIM_INFINITY))


def _failure(exc: BaseException, limits: EngineLimits) -> tuple[tuple[object, ...], bool]:
    """The answer for a statement that raised `exc`, and whether its worker may serve another statement."""
    if isinstance(exc, MemoryError):
        return ("error", "WarehouseError", str(too_much_memory(limits))), False
    if isinstance(exc, LakegateError):
        # A stopped or out-of-memory statement may leave the engine in a state not worth trusting again.
        reusable = not isinstance(exc, Stopped) and not isinstance(
            exc.__cause__, (MemoryError, duckdb.OutOfMemoryException)
        )
        return ("error", type(exc).__name__, str(exc)), reusable
    return ("error", "WarehouseError", f"the statement failed: {exc}"), False


def _read(read: CappedRead, send: multiprocessing.connection.Connection, tables: OpenTables) -> bool:
    limits = read.limits.in_capped_process()
    try:
        opened = datasets(read.paths, read.sources, tables)
        with session(opened, read.sources, timeout=read.timeout, limits=limits) as current:
            _cap(limits)
            answer: tuple[object, ...] = ("ok", collect(replace(read, limits=limits), current))
        reusable = True
    except Exception as exc:
        answer, reusable = _failure(exc, limits)
    return _finish(send, answer, reusable, limits)


def _stream(statement: Statement, send: multiprocessing.connection.Connection, tables: OpenTables) -> bool:
    limits = statement.limits.in_capped_process()
    try:
        opened = datasets(statement.paths, statement.sources, tables)
        with session(opened, statement.sources, timeout=statement.timeout, limits=limits) as current:
            _cap(limits)
            schema, batches = current.batches(statement.sql)
            send.send(("schema", schema))
            for batch in batches:
                send.send(("batch", batch))
        answer: tuple[object, ...] = ("end",)
        reusable = True
    except (BrokenPipeError, ConnectionResetError):
        return False  # the loader stopped listening (the call was cancelled or failed): nothing to tell it
    except Exception as exc:
        answer, reusable = _failure(exc, limits)
    return _finish(send, answer, reusable, limits)


def _finish(
    send: multiprocessing.connection.Connection, answer: tuple[object, ...], reusable: bool, limits: EngineLimits
) -> bool:
    """Send the statement's last message (still under its cap); whether the worker may go on."""
    try:
        try:
            send.send(("final", answer, reusable))
        except MemoryError:
            reusable = False
            send.send(("final", ("error", "WarehouseError", str(too_much_memory(limits))), reusable))
    except (BrokenPipeError, ConnectionResetError):
        return False
    return reusable


def _serve(conn: multiprocessing.connection.Connection, limits: EngineLimits) -> None:
    """A worker: statements one at a time until the loader closes the pipe or a statement left it unfit.

    The engine's database is opened before the first statement arrives, so a statement pays neither the
    fork nor the connect. A worker whose resident memory grew by more than `RETIRE_GROWTH` since it started
    (memory kept by allocators after a big result) ends after its answer and is replaced."""
    # Ctrl-C in a terminal reaches the whole process group: the loader ends its workers itself (and a worker
    # whose loader is gone reads the end of its pipe), so a worker does not print a traceback for it.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    with contextlib.suppress(Exception):
        warm_database(limits.in_capped_process())
        # The first statement of a process and its first result pay one-time set-up (~0.1-0.2 s): pay it here.
        with session({}, {}, timeout=READY_SECONDS, limits=limits.in_capped_process()) as current:
            query_result(current.table("SELECT 1"), 1, 1024)
    tables = OpenTables()
    start = _resident()
    try:
        conn.send(("ready",))
    except (BrokenPipeError, ConnectionResetError):
        return
    while True:
        try:
            job = conn.recv()
            conn.send(("took",))
        except (EOFError, OSError):
            return
        if isinstance(job, CappedRead):
            reusable = _read(job, conn, tables)
        elif isinstance(job, Statement):
            reusable = _stream(job, conn, tables)
        else:
            return
        _uncap()
        if not reusable or _resident() > start + RETIRE_GROWTH:
            return


class _Worker:
    """One capped worker process and the loader's end of its pipe; killed at most while leased."""

    def __init__(self, context: ForkServerContext, limits: EngineLimits) -> None:
        self.limits = limits
        self.conn, child = context.Pipe(duplex=True)
        self.process = context.Process(target=_serve, args=(child, limits), daemon=True, name=IDLE_NAME)
        self.process.start()
        child.close()
        self._lock = threading.Lock()
        self._leased = False
        self._ready = False

    def ready(self) -> bool:
        """Wait until the worker has its engine open; False when it died first or is not ready in time."""
        if not self._ready:
            try:
                self._ready = self.conn.poll(READY_SECONDS) and self.conn.recv() == ("ready",)
            except (EOFError, OSError):
                return False
        return self._ready

    def lease(self, name: str) -> None:
        with self._lock:
            self._leased = True
            self.process.name = name

    def release(self) -> None:
        """Back to idle: a late cancel of the call that used it no longer reaches it."""
        with self._lock:
            self._leased = False
            self.process.name = IDLE_NAME

    def kill_if_leased(self) -> None:
        with self._lock:
            if self._leased:
                self.process.kill()

    def end(self) -> None:
        with contextlib.suppress(OSError):
            self.conn.close()
        if self.process.is_alive():
            self.process.kill()
        self.process.join()


class QueryProcesses:
    """A few capped worker processes, forked from a fork server that has the engine loaded, reused across
    statements; a worker whose statement was cancelled, timed out, ran out of memory or failed oddly is
    killed (or retires itself) and replaced."""

    def __init__(self, idle: int = IDLE_WORKERS) -> None:
        self._idle_most = idle
        self._context: ForkServerContext | None = None
        self._lock = threading.Lock()
        self._idle: list[_Worker] = []
        self._closed = False

    def _ctx(self) -> ForkServerContext:
        with self._lock:
            if self._context is None:
                context = multiprocessing.get_context("forkserver")
                assert isinstance(context, ForkServerContext)
                # `__main__` too: else every worker imports the loader's main module again (under pytest, pytest).
                context.set_forkserver_preload(["__main__", __name__])
                self._context = context
            return self._context

    def warm(self, limits: EngineLimits) -> None:
        """Start the fork server and the idle workers now (blocks for seconds: call from a thread at start)."""
        if limits.process_memory is None:
            return
        self._refill(limits)

    def _refill(self, limits: EngineLimits) -> None:
        context = self._ctx()
        while True:
            with self._lock:
                if self._closed or len(self._idle) >= self._idle_most:
                    return
            worker = _Worker(context, limits)
            if not worker.ready():
                worker.end()
                return
            with self._lock:
                if not self._closed and len(self._idle) < self._idle_most:
                    self._idle.append(worker)
                    continue
            worker.end()
            return

    def _refill_later(self, limits: EngineLimits) -> None:
        threading.Thread(target=self._refill, args=(limits,), daemon=True, name="lakegate-query-refill").start()

    def _acquire(self, limits: EngineLimits, name: str) -> _Worker:
        context = self._ctx()
        worker = None
        with self._lock:
            while self._idle:
                candidate = self._idle.pop()
                # An idle worker sends nothing: a readable pipe is the end of a dead one.
                if candidate.limits == limits and candidate.process.is_alive() and not candidate.conn.poll():
                    worker = candidate
                    break
                candidate.end()
        if worker is None:
            worker = _Worker(context, limits)
        if not worker.ready():
            worker.end()
            raise WarehouseError(
                "the statement's process did not start; try again, and if it keeps failing restart the loader"
            )
        worker.lease(name)
        stop_on_cancel(worker.kill_if_leased)  # a cancelled request ends its process: the statement stops with it
        return worker

    def _give_back(self, worker: _Worker, reusable: bool) -> None:
        worker.release()
        with self._lock:
            if reusable and not self._closed and len(self._idle) < self._idle_most and worker.process.is_alive():
                self._idle.append(worker)
                return
        worker.end()
        self._refill_later(worker.limits)

    def _start(self, work: CappedRead | Statement, name: str) -> _Worker:
        """A worker that took `work`; workers that died while idle are passed over."""
        check_stopped()  # a call cancelled already would only kill the worker it is given
        for _ in range(self._idle_most + 1):  # every idle worker may be dead; then a new one
            worker = self._acquire(work.limits, name)
            try:
                worker.conn.send(work)
                # The worker says it took the work before it starts: one that died idle (killed from outside)
                # has run nothing of it, so the work goes to another.
                if worker.conn.poll(READY_SECONDS) and worker.conn.recv() == ("took",):
                    return worker
            except (EOFError, OSError):
                pass
            self._give_back(worker, reusable=False)
            if (stop := current_stop()) is not None and stop.requested:
                raise stop.error()  # the cancel killed it: do not hand the call to (and kill) another
        raise WarehouseError("the statement's process could not be reached; try again")

    def close(self) -> None:
        """End every idle worker; workers in use end when their statement does."""
        with self._lock:
            self._closed = True
            idle, self._idle = self._idle, []
        for worker in idle:
            worker.end()

    def run(self, read: CappedRead) -> QueryResult:
        """The capped read's result, computed in a worker process; blocks (call from a worker thread)."""
        if read.limits.process_memory is None:
            return run_in_thread(read)
        worker = self._start(read, QUERY_NAME)
        reusable = False
        try:
            message = _receive(worker, time.monotonic() + read.timeout + KILL_GRACE_SECONDS, read)
            if message[0] != "final":
                raise WarehouseError("the query's process sent an answer the loader does not understand")
            _, answer, keep = message
            reusable = keep is True
            return _unpack(answer)
        finally:
            self._give_back(worker, reusable)

    @contextlib.contextmanager
    def stream(self, statement: Statement) -> Iterator[tuple[pa.Schema, Iterator[pa.RecordBatch]]]:
        """The statement's schema and batches, computed in a worker process as they are read; a worker whose
        stream was not read to its end is killed when the block ends. Blocks: use from a worker thread."""
        if statement.limits.process_memory is None:
            opened = datasets(statement.paths, statement.sources)
            with session(opened, statement.sources, timeout=statement.timeout, limits=statement.limits) as current:
                yield current.batches(statement.sql)
            return
        worker = self._start(statement, STATEMENT_NAME)
        deadline = time.monotonic() + statement.timeout + KILL_GRACE_SECONDS
        reusable = False

        def next_message() -> tuple[object, ...]:
            nonlocal reusable
            message = _receive(worker, deadline, statement)
            if message[0] == "final":
                _, answer, keep = message
                reusable = keep is True
                if isinstance(answer, tuple) and answer[:1] == ("end",):
                    return answer
                _unpack(answer)
                raise WarehouseError("the statement's process sent an answer the loader does not understand")
            return message

        def batches() -> Iterator[pa.RecordBatch]:
            while True:
                message = next_message()
                if message[0] == "end":
                    return
                batch = message[1]
                assert isinstance(batch, pa.RecordBatch)
                yield batch

        try:
            first = next_message()
            schema = first[1] if len(first) > 1 else None
            if first[0] != "schema" or not isinstance(schema, pa.Schema):
                raise WarehouseError("the statement's process sent an answer the loader does not understand")
            yield schema, batches()
        finally:
            self._give_back(worker, reusable)


def _receive(worker: _Worker, deadline: float, work: CappedRead | Statement) -> tuple[object, ...]:
    """The worker's next message, or the call's error if it answers nothing before `deadline` or dies."""
    if not worker.conn.poll(max(0.0, deadline - time.monotonic())):
        raise Stopped(
            f"the statement ran longer than {work.timeout:g}s and was stopped; filter or aggregate more, or add a LIMIT"
        )
    try:
        message: tuple[object, ...] = worker.conn.recv()
    except (EOFError, OSError):
        worker.process.join(KILL_GRACE_SECONDS)
        if (stop := current_stop()) is not None and stop.requested:
            raise stop.error() from None
        raise _died(work.limits.in_capped_process(), worker.process.exitcode) from None
    return message


def _died(limits: EngineLimits, exitcode: int | None) -> WarehouseError:
    error = too_much_memory(limits)
    return WarehouseError(f"the statement's process ended (exit code {exitcode}) before it answered; {error}")


def _unpack(answer: object) -> QueryResult:
    """The result in a child's answer; its error raised as the class it was sent as."""
    match answer:
        case ("ok", QueryResult() as result):
            return result
        case ("error", str(kind), str(message)):
            raise _ERRORS.get(kind, WarehouseError)(message)
    raise WarehouseError("the query's process sent an answer the loader does not understand")
