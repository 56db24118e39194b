"""The local lakehouse: Delta Lake tables under a directory, gold views as files, SQL through DuckDB.

Tables live at `<root>/<catalog>/<layer>/<table>`, gold views at `<root>/<catalog>/gold/_views/`.
Every write is one Delta commit (a load carries its run id in the commit metadata, so a redelivered
load commits nothing twice); a write that fails before its commit leaves the table as it was. Row
counts and sizes come from the Delta log, never from scanning data. Every statement runs in a sealed
DuckDB session (`sqlengine`) over exactly the tables it names, after the guard (`sqlguard`) and the
translation to DuckDB (`duckdbsql`, which also inlines gold views).
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import functools
import json
import threading
from collections.abc import AsyncIterator, Callable, Hashable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

import pyarrow as pa
from deltalake import DeltaTable
from deltalake.exceptions import CommitFailedError, DeltaError
from lakegate.common.callstops import check_stopped, commit_point, in_thread
from lakegate.common.contracts.runs import SchemaChange, TableRef
from lakegate.common.contracts.warehouse import (
    QueryResult,
    TableDescription,
    TableList,
    TableSummary,
    WarehouseColumn,
)
from lakegate.common.deltatypes import conform, delta_schema
from lakegate.common.errors import Conflict, InvalidInput, NotFound, WarehouseError
from lakegate.common.rpc import Encoded
from lakegate.loader.mergekeys import merge_columns
from lakegate.loader.metastatements import describe_columns, show_schemas, show_tables
from lakegate.loader.results import query_result
from lakegate.loader.schemadrift import Drift, align, plan_drift
from lakegate.loader.sqlguard import (
    DescribeTarget,
    ReadQuery,
    ShowSchemas,
    ShowTables,
    check,
    check_select,
    unknown_table,
)
from lakegate.loader.sqlsize import SizeLimits
from lakegate.loader.tablenames import check_layer, check_ref, parse_table_name
from lakegate.loader.tablestats import count_all, read_stats, select_all, stats_query
from lakegate.loader.warehouses import deltaloads, deltalog
from lakegate.loader.warehouses.base import LoadPlan, LoadResult, Written
from lakegate.loader.warehouses.determinism import Determinism
from lakegate.loader.warehouses.duckdbsql import EngineQuery, to_engine
from lakegate.loader.warehouses.localviews import ViewFile, ViewStore
from lakegate.loader.warehouses.querycache import Answers, Plan, Plans
from lakegate.loader.warehouses.queryprocess import IDLE_WORKERS, CappedRead, QueryProcesses, Statement
from lakegate.loader.warehouses.spool import spooled
from lakegate.loader.warehouses.sqlengine import EngineLimits
from lakegate.loader.warehouses.tablestate import TableStates, view_state

T = TypeVar("T")
RUN_ID_KEY = deltalog.RUN_ID_KEY
#: Commit notes of a load besides its run id: the sync mode, the schema changes it made (JSON), and
#: the table's columns the source lacked (JSON), so that a dropped column is reported only once.
MODE_KEY = "lakegate.mode"
CHANGES_KEY = "lakegate.schema_changes"
ABSENT_KEY = "lakegate.absent_columns"
#: The source type of each column a sync wrote (JSON), kept from load to load for columns that stay.
SOURCE_TYPES_KEY = "lakegate.source_types"
#: Bytes of query answers kept by default (`LAKEGATE_LOADER_QUERY_CACHE_BYTES`).
QUERY_CACHE_BYTES = 64 * 1024 * 1024


@dataclass(frozen=True)
class Timeouts:
    """Seconds a statement may run: queries, previews and statistics; transforms (which write)."""

    query: float = 60.0
    transform: float = 600.0


class LocalLakehouse:
    """Delta tables under `root`, queried with DuckDB; implements `Warehouse`, `FileCommitter`, `Builder` and
    `CachedAnswers` (see `querycache`)."""

    def __init__(
        self,
        root: Path,
        *,
        limits: EngineLimits | None = None,
        timeouts: Timeouts | None = None,
        max_result_bytes: int = 4 * 1024 * 1024,
        queue_depth: int = 4,
        sql_limits: SizeLimits | None = None,
        idle_processes: int = IDLE_WORKERS,
        query_cache_bytes: int = QUERY_CACHE_BYTES,
    ) -> None:
        self.root = root
        self.views = ViewStore(root)
        self._limits = limits or EngineLimits()
        self._timeouts = timeouts or Timeouts()
        self._max_result_bytes = max_result_bytes
        self._queue_depth = queue_depth
        self.sql_limits = sql_limits or SizeLimits()
        self._processes = QueryProcesses(idle_processes)
        self._states = TableStates()
        self._plans = Plans(self._state)
        self.answers = Answers(query_cache_bytes)
        self._determinism: Determinism | None = None
        self._determinism_lock = threading.Lock()
        self._closed = False

    def warm(self) -> None:
        """Start the statement processes now rather than at the first query (blocks: seconds of imports)."""
        self._processes.warm(self._limits)
        # The guard and the translation load their SQL dialects on first use (~0.2 s): load them now too.
        to_engine(check_select("SELECT 1", "tenant_warm", lambda layer: []), lambda ref: None, limit=1)
        if self.answers.enabled:
            self._deterministic("SELECT 1")

    def close(self) -> None:
        """End the idle statement processes."""
        self._processes.close()
        with self._determinism_lock:
            self._closed = True
            if self._determinism is not None:
                self._determinism.close()
                self._determinism = None

    # names

    def table_path(self, ref: TableRef) -> Path:
        """Where a table's files live."""
        check_ref(ref)
        return self.root / ref.catalog / ref.schema_name / ref.name

    def tables_in(self, catalog: str, layer: str) -> list[str]:
        """Names of the Delta tables (and, in gold, the views) of one layer, sorted."""
        names = set(deltalog.delta_tables(self.root / catalog / layer))
        if layer == "gold":
            names.update(self.views.names(catalog))
        return sorted(names)

    def _existing(self, catalog: str, table_name: str) -> TableRef:
        ref = parse_table_name(catalog, table_name)
        if ref.name not in self.tables_in(catalog, ref.schema_name):
            raise NotFound(unknown_table(catalog, ref.schema_name, ref.name, self.tables_in(catalog, ref.schema_name)))
        return ref

    def _view(self, catalog: str) -> Callable[[TableRef], ReadQuery | None]:
        def lookup(ref: TableRef) -> ReadQuery | None:
            stored = self.views.read(ref) if ref.catalog == catalog else None
            if stored is None:
                return None
            return check_select(stored.sql, catalog, functools.partial(self.tables_in, catalog), self.sql_limits)

        return lookup

    def _stored_schema(self, ref: TableRef) -> pa.Schema | None:
        """The schema of a stored Delta table, None when there is none."""
        path = self.table_path(ref)
        if not DeltaTable.is_deltatable(str(path)):
            return None
        return pa.schema(DeltaTable(str(path)).schema().to_arrow())

    # plans and cached answers (`querycache`)

    def _state(self, ref: TableRef) -> Hashable:
        """What `ref` holds now (`tablestate`); None when it is gone."""
        table = self._states.delta(str(self.table_path(ref)))
        if ref.schema_name != "gold":
            return table
        view = view_state(str(self.views.path(ref)))
        return None if table is None and view is None else (table, view)

    def _deterministic(self, sql: str) -> bool:
        """Whether `sql` may be answered from the cache; False once the lakehouse is closed."""
        with self._determinism_lock:
            if self._closed:
                return False
            if self._determinism is None:
                # Opened on first use (`warm` at start, in its thread): reading DuckDB's functions takes ~0.3 s.
                self._determinism = Determinism()
            return self._determinism.deterministic(sql)

    def _plan(self, catalog: str, checked: ReadQuery, max_rows: int) -> Plan:
        """Translate a guarded query, noting the state of each table and view before it is read."""
        seen: dict[TableRef, Hashable] = {}

        def note(ref: TableRef) -> None:
            if ref not in seen:
                seen[ref] = self._state(ref)

        views = self._view(catalog)

        def view(ref: TableRef) -> ReadQuery | None:
            note(ref)
            return views(ref)

        def schema(ref: TableRef) -> pa.Schema | None:
            note(ref)
            return self._stored_schema(ref)

        engine = to_engine(checked, view, limit=max_rows + 1, schema_of=schema, limits=self.sql_limits)
        for ref in (*checked.tables, *engine.sources.values()):
            note(ref)  # only their existence was used: noted after is early enough
        reads = tuple(sorted(seen, key=str))
        state = tuple(seen[ref] for ref in reads)
        complete = all(found is not None for found in state)
        deterministic = complete and self.answers.enabled and self._deterministic(engine.sql)
        return Plan(engine, reads, state, deterministic)

    def cached_answer(self, catalog: str, sql: str, max_rows: int) -> Encoded[QueryResult] | None:
        """The kept answer of this exact statement over the tables as they are now, as its JSON; None when there
        is none.

        A few `stat` calls per table read and no parse: cheap enough for the event loop."""
        if not self.answers.enabled:
            return None
        plan = self._plans.get(catalog, sql, max_rows)
        if plan is None or not plan.deterministic:
            return None
        return self.answers.get(catalog, plan, max_rows)

    # running statements (blocking: call from a worker thread)

    def _statement(self, engine: EngineQuery, timeout: float) -> Statement:
        paths = {name: str(self.table_path(ref)) for name, ref in engine.sources.items()}
        return Statement(engine.sql, engine.sources, paths, timeout, self._limits)

    def _table(self, engine: EngineQuery, timeout: float) -> pa.Table:
        """A small whole result (statistics, a count, LIMIT 0), computed under the query process's cap."""
        with self._processes.stream(self._statement(engine, timeout)) as (schema, batches):
            return pa.Table.from_batches(list(batches), schema=schema)

    def _capped(self, engine: EngineQuery, max_rows: int, timeout: float) -> QueryResult:
        paths = {name: str(self.table_path(ref)) for name, ref in engine.sources.items()}
        read = CappedRead(engine.sql, engine.sources, paths, max_rows, self._max_result_bytes, timeout, self._limits)
        return self._processes.run(read)

    def _schema(self, catalog: str, ref: TableRef) -> pa.Schema:
        if self.views.read(ref) is None:
            return pa.schema(DeltaTable(str(self.table_path(ref))).schema().to_arrow())
        engine = to_engine(select_all(ref), self._view(catalog), limit=0, limits=self.sql_limits)
        return self._table(engine, self._timeouts.query).schema

    # Warehouse

    async def load(self, plan: LoadPlan, batches: AsyncIterator[pa.RecordBatch]) -> LoadResult:
        """Commit the run to `plan.target` in one Delta commit tagged with its run id (see `deltaloads`)."""
        target = plan.target
        columns = merge_columns(plan) if plan.mode == "merge" else None
        path = self.table_path(target)
        history = await asyncio.to_thread(deltalog.loads, path, plan.run_id)
        if history.commit is not None:
            return _result(history.commit, already_committed=True)
        existing = await asyncio.to_thread(deltalog.arrow_schema, path)
        incoming = delta_schema(plan.schema, target)
        drift = plan_drift(
            existing,
            incoming,
            table=str(target),
            replace=plan.mode == "full",
            absent_before=json.loads(history.latest_notes.get(ABSENT_KEY, "[]")),
        )

        async def aligned() -> AsyncIterator[pa.RecordBatch]:
            async for batch in batches:
                yield align(conform(batch, incoming, target), drift.schema)

        landing = deltaloads.Landing(
            path=path,
            drift=drift,
            exists=existing is not None,
            notes=_notes(plan, drift, history.latest_notes),
            depth=self._queue_depth,
            memory_bytes=self._limits.memory_bytes,
        )
        spool = functools.partial(spooled, self.root, plan.run_id, drift.schema, self._limits)
        await asyncio.to_thread(path.mkdir, parents=True, exist_ok=True)
        try:
            with _write_errors(target):
                if columns is not None:
                    keys = plan.source_keys() if plan.source_keys is not None else None
                    landed = await deltaloads.merge(landing, columns.spelled_as(drift.schema), aligned(), spool, keys)
                elif plan.mode == "incremental":
                    landed = await deltaloads.append(landing, aligned(), spool)
                else:
                    landed = await deltaloads.replace(landing, aligned())
        finally:
            # Arrow's allocator keeps what a load freed for later; between loads it is only resident
            # memory (measured: 70 MiB after writing 1M rows).
            await asyncio.to_thread(pa.default_memory_pool().release_unused)
        if not landed.committed:
            version = await asyncio.to_thread(lambda: DeltaTable(str(path)).version())
            deleted = 0 if columns is not None and plan.source_keys is not None else None
            return LoadResult(0, 0, version, already_committed=False, deleted_rows=deleted)
        return await _new_commit(path, plan)

    async def commit_files(self, plan: LoadPlan, files: Sequence[Path], rows: int) -> LoadResult | None:
        """Full: the extractor's data files become the table in one commit tagged with the run id (`adopt`)."""
        if plan.mode != "full":
            return None
        target = plan.target
        path = self.table_path(target)
        history = await asyncio.to_thread(deltalog.loads, path, plan.run_id)
        if history.commit is not None:
            return _result(history.commit, already_committed=True)
        existing = await asyncio.to_thread(deltalog.arrow_schema, path)
        incoming = delta_schema(plan.schema, target)
        drift = plan_drift(existing, incoming, table=str(target), replace=True)
        notes = _notes(plan, drift, history.latest_notes)
        with _write_errors(target):
            adopted = await asyncio.to_thread(deltaloads.adopt, path, files, drift.schema, rows, notes)
        if not adopted:
            return None
        return await _new_commit(path, plan)

    async def query(self, catalog: str, sql: str, max_rows: int, timeout: float) -> QueryResult:
        """Guard, translate and run one statement; see `lakegate.loader.results` for how values are written."""

        def run() -> QueryResult:
            plan = self._plans.get(catalog, sql, max_rows)
            if plan is None:
                checked = check(sql, catalog, functools.partial(self.tables_in, catalog), self.sql_limits)
                if not isinstance(checked, ReadQuery):
                    return metadata(checked)
                plan = self._plan(catalog, checked, max_rows)
                if all(found is not None for found in plan.state):
                    self._plans.put(catalog, sql, max_rows, plan)
            if plan.deterministic and (kept := self.answers.get(catalog, plan, max_rows)) is not None:
                # Kept since the handler asked `cached_answer` (a concurrent first call): read back, rarely.
                return QueryResult.model_validate_json(kept.json)
            answer = self._capped(plan.engine, max_rows, timeout)
            self.answers.put(catalog, plan, max_rows, answer)
            return answer

        def metadata(checked: ShowTables | ShowSchemas | DescribeTarget) -> QueryResult:
            if isinstance(checked, ShowTables):
                table = show_tables(checked.layer, self.tables_in(catalog, checked.layer), checked.pattern)
            elif isinstance(checked, DescribeTarget):
                table = describe_columns(self._schema(catalog, checked.ref))
            else:
                table = show_schemas()
            return query_result(table, max_rows, self._max_result_bytes)

        return await in_thread(run)

    async def preview(self, catalog: str, table_name: str, limit: int) -> QueryResult:
        """The first `limit` rows of one table or view, in storage order."""

        def run() -> QueryResult:
            ref = self._existing(catalog, table_name)
            engine = to_engine(select_all(ref), self._view(catalog), limit=limit + 1, limits=self.sql_limits)
            return self._capped(engine, limit, self._timeouts.query)

        return await in_thread(run)

    async def list_tables(self, catalog: str, layer: str, *, offset: int = 0, limit: int = 100) -> TableList:
        """One page of a layer's tables and views with row counts, sizes and versions."""
        layer = check_layer(layer)

        def summaries() -> TableList:
            names = self.tables_in(catalog, layer)
            page = names[offset : offset + limit]
            found = [self._summary(TableRef(catalog=catalog, schema_name=layer, name=name)) for name in page]
            more = offset + limit < len(names)
            return TableList(tables=found, next_offset=offset + limit if more else None)

        return await in_thread(summaries)

    def _summary(self, ref: TableRef) -> TableSummary:
        if self.views.read(ref) is not None:
            return TableSummary(
                ref=ref, layer=ref.schema_name, row_count=self._view_rows(ref), size_bytes=0, kind="view"
            )
        table = DeltaTable(str(self.table_path(ref)))
        added = deltalog.files(table)
        return TableSummary(
            ref=ref,
            layer=ref.schema_name,
            row_count=deltalog.row_count(table, added),
            size_bytes=deltalog.size(added),
            table_version=table.version(),
        )

    def _view_rows(self, ref: TableRef) -> int:
        """A view's rows, counted now; -1 when counting fails or runs past the query timeout."""
        try:
            engine = to_engine(count_all(ref), self._view(ref.catalog), limit=None, limits=self.sql_limits)
            counted = self._table(engine, self._timeouts.query)
        except (WarehouseError, NotFound, InvalidInput):
            return -1
        return int(counted.column("n")[0].as_py())

    async def describe(self, catalog: str, table_name: str, *, with_stats: bool = False) -> TableDescription:
        """Columns, row count, size, version and properties of one table or view; statistics when asked."""

        def description() -> TableDescription:
            ref = self._existing(catalog, table_name)
            schema = self._schema(catalog, ref)
            row_count, columns = -1, _plain_columns(schema)
            if with_stats:
                engine = to_engine(stats_query(ref, schema), self._view(catalog), limit=None, limits=self.sql_limits)
                row_count, columns = read_stats(schema, self._table(engine, self._timeouts.query))
            view = self.views.read(ref)
            if view is None:
                columns = _with_source_types(columns, deltalog.loads(self.table_path(ref), "").latest_notes)
            if view is not None:
                return TableDescription(
                    ref=ref,
                    columns=columns,
                    row_count=row_count if with_stats else self._view_rows(ref),
                    size_bytes=0,
                    kind="view",
                    properties={"view.definition": view.sql, "view.definedAt": view.defined_at.isoformat()},
                )
            table = DeltaTable(str(self.table_path(ref)))
            added = deltalog.files(table)
            return TableDescription(
                ref=ref,
                columns=columns,
                row_count=deltalog.row_count(table, added),
                size_bytes=deltalog.size(added),
                table_version=table.version(),
                properties=deltalog.properties(table),
            )

        return await in_thread(description)

    # Builder

    async def table_schema(self, ref: TableRef) -> tuple[pa.Schema, int]:
        """The schema and row count (from the log) of an existing Delta table."""

        def read() -> tuple[pa.Schema, int]:
            path = self.table_path(ref)
            if not DeltaTable.is_deltatable(str(path)):
                existing = self.tables_in(ref.catalog, ref.schema_name)
                raise NotFound(unknown_table(ref.catalog, ref.schema_name, ref.name, existing))
            table = DeltaTable(str(path))
            return pa.schema(table.schema().to_arrow()), deltalog.row_count(table)

        return await in_thread(read)

    async def create_table_as(self, target: TableRef, query: ReadQuery, *, note: Mapping[str, str]) -> Written:
        """Run the query in a sealed session and stream its rows into one overwrite commit of `target`."""
        if self.views.read(target) is not None:
            raise InvalidInput(f"{target} is a view; choose another table name")
        engine = to_engine(
            query, self._view(target.catalog), limit=None, schema_of=self._stored_schema, limits=self.sql_limits
        )
        path = self.table_path(target)

        def write() -> Written:
            with self._processes.stream(self._statement(engine, self._timeouts.transform)) as (schema, batches):
                table_schema = delta_schema(schema, target)
                rows = 0
                failure: list[Exception] = []

                def conformed() -> Iterator[pa.RecordBatch]:
                    nonlocal rows
                    try:
                        for batch in batches:
                            check_stopped()
                            rows += batch.num_rows
                            yield conform(batch, table_schema, target)
                        commit_point()  # every row is read: a cancel now fails the write, a later one is refused
                    except Exception as exc:
                        failure.append(exc)
                        raise

                path.mkdir(parents=True, exist_ok=True)
                reader = pa.RecordBatchReader.from_batches(table_schema, conformed())
                try:
                    with _write_errors(target):
                        version = deltalog.overwrite(path, reader, note)
                except Exception:
                    if failure:
                        # The writer only wraps the reader's error (a timeout, a failed cast, a cancel) in its own.
                        raise failure[0] from None
                    raise
                return Written(table_schema, rows, version)

        return await in_thread(write)

    async def create_view(self, ref: TableRef, query: ReadQuery, *, definition: str) -> Written:
        """Check the view runs (with no rows) and reaches no cycle, then store its definition."""

        def create() -> Written:
            if DeltaTable.is_deltatable(str(self.table_path(ref))):
                raise InvalidInput(f"{ref} is a table, not a view; choose another view name")
            engine = to_engine(
                query, self._view(ref.catalog), limit=0, root=ref, schema_of=self._stored_schema, limits=self.sql_limits
            )
            schema = self._table(engine, self._timeouts.query).schema
            stored = ViewFile(
                name=ref.name,
                sql=definition,
                upstream=sorted(query.tables, key=str),
                defined_at=dt.datetime.now(dt.UTC),
            )
            commit_point()  # checked: a cancel now stores nothing, a later one is refused
            self.views.write(ref, stored)
            return Written(schema, None, None)

        return await in_thread(create)

    async def replace_table(self, target: TableRef, data: pa.Table, *, note: Mapping[str, str]) -> Written:
        """Replace `target` with `data` in one overwrite commit."""
        if self.views.read(target) is not None:
            raise InvalidInput(f"{target} is a view; choose another table name")
        table_schema = delta_schema(data.schema, target)
        path = self.table_path(target)

        def write() -> Written:
            conformed = pa.Table.from_batches(
                [conform(batch, table_schema, target) for batch in data.to_batches()], schema=table_schema
            )
            check_stopped()
            path.mkdir(parents=True, exist_ok=True)
            failure: list[Exception] = []

            def batches() -> Iterator[pa.RecordBatch]:
                try:
                    for batch in conformed.to_batches():
                        check_stopped()
                        yield batch
                    commit_point()  # every row is written: a cancel now fails the write, a later one is refused
                except Exception as exc:
                    failure.append(exc)
                    raise

            try:
                with _write_errors(target):
                    version = deltalog.overwrite(path, pa.RecordBatchReader.from_batches(table_schema, batches()), note)
            except Exception:
                if failure:
                    raise failure[0] from None
                raise
            return Written(table_schema, data.num_rows, version)

        return await in_thread(write)


async def _new_commit(path: Path, plan: LoadPlan) -> LoadResult:
    """The result of the commit `plan`'s run just made; its absence from the history is an error."""
    commit = await asyncio.to_thread(deltalog.find_commit, path, RUN_ID_KEY, plan.run_id)
    if commit is None:
        raise WarehouseError(f"the commit of run {plan.run_id} is missing from the history of {plan.target}")
    return _result(commit, already_committed=False)


def _result(commit: deltalog.Commit, *, already_committed: bool) -> LoadResult:
    """What a load commit wrote, with the schema changes it noted (the same for every delivery of the run)."""
    changes = tuple(SchemaChange.model_validate(found) for found in json.loads(commit.notes.get(CHANGES_KEY, "[]")))
    deleted = commit.notes.get(deltaloads.DELETED_KEY)
    return LoadResult(
        commit.row_count,
        commit.bytes,
        commit.version,
        already_committed,
        changes,
        deleted_rows=None if deleted is None else int(deleted),
    )


def _notes(plan: LoadPlan, drift: Drift, latest: Mapping[str, str]) -> dict[str, str]:
    """The notes a load's commit carries, its run id first."""
    return {
        RUN_ID_KEY: plan.run_id,
        MODE_KEY: plan.mode,
        CHANGES_KEY: json.dumps([change.model_dump(mode="json") for change in drift.changes]),
        ABSENT_KEY: json.dumps(list(drift.absent)),
        SOURCE_TYPES_KEY: _source_types(plan, drift.schema, latest),
    }


def _source_types(plan: LoadPlan, schema: pa.Schema, latest: Mapping[str, str]) -> str:
    """The table's columns' source types after the load: the run's, then those stored for columns it lacked."""
    stored: dict[str, str] = json.loads(latest.get(SOURCE_TYPES_KEY, "{}")) if plan.mode != "full" else {}
    given = {name.lower(): source for name, source in plan.source_types.items()}
    kept = {name.lower(): source for name, source in stored.items()}
    types = {f.name: given.get(f.name.lower(), kept.get(f.name.lower())) for f in schema}
    return json.dumps({name: source for name, source in types.items() if source is not None})


def _with_source_types(columns: list[WarehouseColumn], notes: Mapping[str, str]) -> list[WarehouseColumn]:
    types: dict[str, str] = json.loads(notes.get(SOURCE_TYPES_KEY, "{}"))
    return [column.model_copy(update={"source_type": types.get(column.name)}) for column in columns]


def _plain_columns(schema: pa.Schema) -> list[WarehouseColumn]:
    return [WarehouseColumn(name=f.name, type=str(f.type), nullable=f.nullable) for f in schema]


@contextlib.contextmanager
def _write_errors(target: TableRef) -> Iterator[None]:
    """Turn delta-rs and Arrow write errors into lakegate's: a lost commit race is transient, the rest terminal."""
    try:
        yield
    except CommitFailedError as exc:
        raise Conflict(f"another writer committed to {target} at the same time ({deltalog.first_line(exc)})") from exc
    except DeltaError as exc:
        raise WarehouseError(f"writing {target} failed: {deltalog.first_line(exc)}") from exc
    except (pa.ArrowNotImplementedError, pa.ArrowTypeError, pa.ArrowInvalid) as exc:
        # The same rows and files fail the same way on every delivery: end the run on the first.
        raise WarehouseError(
            f"loading {target} failed on what its data files hold ({deltalog.first_line(exc)}); nothing was "
            "committed. Run a full sync of the table, which rewrites its files"
        ) from exc
