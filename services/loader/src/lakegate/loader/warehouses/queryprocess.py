"""Statements over the local lakehouse in a child process whose memory the OS caps.

DuckDB's `memory_limit` bounds its buffer manager, not everything a statement allocates: a list
built by `range(0, 20000000)` or a string built by `repeat` grows past it (measured: 1.9 GB under a
512 MB limit, 7 GB before the timeout for a larger range). So each capped read runs in a process
forked from a server that has DuckDB, Arrow and deltalake loaded (a fork costs milliseconds), and
that process sets `RLIMIT_AS` to the address space it holds once its tables are open plus
`LAKEGATE_LOADER_QUERY_PROCESS_MEMORY`. An allocation past that fails inside the engine and the
statement fails saying so; if the process dies instead, only that call fails. The loader's own
memory does not grow with the query. The same deadline as in the thread still interrupts the
statement; a process that outlives it by `KILL_GRACE_SECONDS` is killed.

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
import threading
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, replace
from multiprocessing.context import ForkServerContext

import pyarrow as pa
import pyarrow.dataset as ds
from deltalake import DeltaTable
from lakegate.common.callstops import current_stop
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
)

#: Seconds past its timeout a query process may take to stop by itself before it is killed.
KILL_GRACE_SECONDS = 5.0
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


def datasets(paths: Mapping[str, str], sources: Mapping[str, TableRef]) -> dict[str, ds.Dataset]:
    """The Arrow dataset of each engine name's Delta table."""
    opened = {}
    for name, path in paths.items():
        if not DeltaTable.is_deltatable(path):
            raise NotFound(f"table {sources[name]} no longer exists; a view that reads it must be defined again")
        opened[name] = DeltaTable(path).to_pyarrow_dataset()
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


def _address_space() -> int:
    with open("/proc/self/status", encoding="ascii") as status:
        for line in status:
            if line.startswith("VmSize:"):
                return int(line.split()[1]) * 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # pragma: no cover - not Linux


def _child(read: CappedRead, send: multiprocessing.connection.Connection) -> None:
    read = replace(read, limits=read.limits.in_capped_process())
    try:
        opened = datasets(read.paths, read.sources)
        with session(opened, read.sources, timeout=read.timeout, limits=read.limits) as current:
            _cap(read.limits)
            answer: object = ("ok", collect(read, current))
    except MemoryError:
        answer = ("error", "WarehouseError", str(too_much_memory(read.limits)))
    except LakegateError as exc:
        answer = ("error", type(exc).__name__, str(exc))
    except Exception as exc:
        answer = ("error", "WarehouseError", f"the statement failed: {exc}")
    try:
        send.send(answer)
    except MemoryError:
        send.send(("error", "WarehouseError", str(too_much_memory(read.limits))))
    finally:
        send.close()


def _cap(limits: EngineLimits) -> None:
    assert limits.process_memory is not None
    cap = _address_space() + limits.process_memory
    resource.setrlimit(resource.RLIMIT_AS, (cap, cap))


def _stream_child(statement: Statement, send: multiprocessing.connection.Connection) -> None:
    limits = statement.limits.in_capped_process()
    try:
        opened = datasets(statement.paths, statement.sources)
        with session(opened, statement.sources, timeout=statement.timeout, limits=limits) as current:
            _cap(limits)
            schema, batches = current.batches(statement.sql)
            send.send(("schema", schema))
            for batch in batches:
                send.send(("batch", batch))
        answer: object = ("end",)
    except MemoryError:
        answer = ("error", "WarehouseError", str(too_much_memory(limits)))
    except LakegateError as exc:
        answer = ("error", type(exc).__name__, str(exc))
    except (BrokenPipeError, ConnectionResetError):
        return  # the loader stopped listening (the call was cancelled or failed): nothing to tell it
    except Exception as exc:
        answer = ("error", "WarehouseError", f"the statement failed: {exc}")
    try:
        send.send(answer)
    except MemoryError:
        send.send(("error", "WarehouseError", str(too_much_memory(limits))))
    except (BrokenPipeError, ConnectionResetError):
        pass
    finally:
        send.close()


class QueryProcesses:
    """Starts one child process per capped read, from a fork server that has the engine loaded."""

    def __init__(self) -> None:
        self._context: ForkServerContext | None = None
        self._lock = threading.Lock()

    def _ctx(self) -> ForkServerContext:
        with self._lock:
            if self._context is None:
                context = multiprocessing.get_context("forkserver")
                assert isinstance(context, ForkServerContext)
                context.set_forkserver_preload([__name__])
                self._context = context
            return self._context

    def run(self, read: CappedRead) -> QueryResult:
        """The capped read's result, computed in a child process; blocks (call from a worker thread)."""
        if read.limits.process_memory is None:
            return run_in_thread(read)
        context = self._ctx()
        receive, send = context.Pipe(duplex=False)
        child = context.Process(target=_child, args=(read, send), daemon=True, name="lakegate-query")
        child.start()
        stop_on_cancel(child.kill)  # a cancelled request ends its process: the statement stops with it
        send.close()
        try:
            if not receive.poll(read.timeout + KILL_GRACE_SECONDS):
                raise Stopped(
                    f"the statement ran longer than {read.timeout:g}s and was stopped; "
                    "filter or aggregate more, or add a LIMIT"
                )
            try:
                answer = receive.recv()
            except EOFError:
                child.join(KILL_GRACE_SECONDS)
                if (stop := current_stop()) is not None and stop.requested:
                    raise stop.error() from None
                raise _died(read.limits.in_capped_process(), child.exitcode) from None
        finally:
            receive.close()
            if child.is_alive():
                child.kill()
            child.join()
        return _unpack(answer)

    @contextlib.contextmanager
    def stream(self, statement: Statement) -> Iterator[tuple[pa.Schema, Iterator[pa.RecordBatch]]]:
        """The statement's schema and batches, computed in a child process as they are read; the process
        ends when the block does. Blocks: use from a worker thread."""
        if statement.limits.process_memory is None:
            opened = datasets(statement.paths, statement.sources)
            with session(opened, statement.sources, timeout=statement.timeout, limits=statement.limits) as current:
                yield current.batches(statement.sql)
            return
        context = self._ctx()
        receive, send = context.Pipe(duplex=False)
        child = context.Process(target=_stream_child, args=(statement, send), daemon=True, name="lakegate-statement")
        child.start()
        stop_on_cancel(child.kill)
        send.close()
        deadline = time.monotonic() + statement.timeout + KILL_GRACE_SECONDS

        def next_message() -> tuple[object, ...]:
            if not receive.poll(max(0.0, deadline - time.monotonic())):
                raise Stopped(
                    f"the statement ran longer than {statement.timeout:g}s and was stopped; "
                    "filter or aggregate more, or add a LIMIT"
                )
            try:
                message: tuple[object, ...] = receive.recv()
            except EOFError:
                child.join(KILL_GRACE_SECONDS)
                if (stop := current_stop()) is not None and stop.requested:
                    raise stop.error() from None
                raise _died(statement.limits.in_capped_process(), child.exitcode) from None
            if message[0] == "error":
                _unpack(message)
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
            schema = first[1]
            if first[0] != "schema" or not isinstance(schema, pa.Schema):
                raise WarehouseError("the statement's process sent an answer the loader does not understand")
            yield schema, batches()
        finally:
            receive.close()
            if child.is_alive():
                child.kill()
            child.join()


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
