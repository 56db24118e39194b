"""The local lakehouse: Delta Lake tables under a directory, SQL through DuckDB.

Tables live at `<root>/<catalog>/<layer>/<table>`. A load is one Delta commit that carries the run
id in its commit metadata (`lakegate.run_id`), so a redelivered load finds its commit in the
table's history and commits nothing twice. A load that fails before its commit leaves the table as
it was: Delta's commit is the single atomic step. Row counts and sizes come from the Delta log,
never from scanning the data.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import functools
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.dataset as ds
from deltalake import CommitProperties, DeltaTable, write_deltalake
from deltalake.exceptions import CommitFailedError, DeltaError
from lakegate.common.contracts.runs import SyncMode, TableRef
from lakegate.common.contracts.warehouse import (
    QueryResult,
    TableDescription,
    TableList,
    TableSummary,
    WarehouseColumn,
)
from lakegate.common.errors import Conflict, NotFound, Unsupported, WarehouseError
from lakegate.loader.results import query_result
from lakegate.loader.sqlguard import guard
from lakegate.loader.tablenames import check_layer, check_ref, parse_table_name
from lakegate.loader.warehouses.base import LoadResult
from lakegate.loader.warehouses.bridge import write_in_thread
from lakegate.loader.warehouses.deltatypes import conform, delta_schema
from lakegate.loader.warehouses.sqlengine import EngineLimits, execute

RUN_ID_KEY = "lakegate.run_id"


@dataclass(frozen=True)
class _Commit:
    version: int
    row_count: int
    bytes: int


def _first_line(exc: BaseException) -> str:
    # delta-rs appends a Rust backtrace to its messages; the first line says what happened.
    return str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__


def _files(table: DeltaTable) -> pa.Table:
    return pa.table(table.get_add_actions(flatten=True))


def _row_count(table: DeltaTable, files: pa.Table) -> int:
    counts = files.column("num_records").to_pylist()
    if any(count is None for count in counts):  # a writer without statistics; count the data instead
        return int(table.count())
    return int(sum(counts))


def _size(files: pa.Table) -> int:
    return int(sum(files.column("size_bytes").to_pylist()))


def _find_commit(path: Path, run_id: str) -> _Commit | None:
    """The commit that carries `run_id` in its metadata, if the table has one."""
    if not DeltaTable.is_deltatable(str(path)):
        return None
    for entry in DeltaTable(str(path)).history():
        if entry.get(RUN_ID_KEY) == run_id:
            # A full load replaces every file, so the table as of that version is exactly what it wrote.
            committed = DeltaTable(str(path), version=int(entry["version"]))
            files = _files(committed)
            return _Commit(committed.version(), _row_count(committed, files), _size(files))
    return None


def _overwrite(path: Path, run_id: str, reader: pa.RecordBatchReader) -> None:
    write_deltalake(
        str(path),
        reader,
        mode="overwrite",
        schema_mode="overwrite",
        commit_properties=CommitProperties(custom_metadata={RUN_ID_KEY: run_id}),
    )


class LocalLakehouse:
    """Delta tables under `root`, queried with DuckDB; implements `Warehouse`."""

    def __init__(
        self,
        root: Path,
        *,
        limits: EngineLimits | None = None,
        max_result_bytes: int = 4 * 1024 * 1024,
        queue_depth: int = 4,
    ) -> None:
        self.root = root
        self._limits = limits or EngineLimits()
        self._max_result_bytes = max_result_bytes
        self._queue_depth = queue_depth

    def table_path(self, ref: TableRef) -> Path:
        """Where a table's files live."""
        check_ref(ref)
        return self.root / ref.catalog / ref.schema_name / ref.name

    def tables_in(self, catalog: str, layer: str) -> list[str]:
        """Names of the Delta tables of one layer, sorted; a directory without a Delta log is no table."""
        directory = self.root / catalog / layer
        if not directory.is_dir():
            return []
        return sorted(p.name for p in directory.iterdir() if (p / "_delta_log").is_dir())

    async def load(
        self,
        target: TableRef,
        schema: pa.Schema,
        batches: AsyncIterator[pa.RecordBatch],
        *,
        mode: SyncMode,
        run_id: str,
    ) -> LoadResult:
        """Replace `target` with every batch in one Delta commit tagged with `run_id`."""
        if mode != "full":
            raise Unsupported(f"{mode} sync is not supported by the local lakehouse yet; sync {target} in full mode")
        path = self.table_path(target)
        earlier = await asyncio.to_thread(_find_commit, path, run_id)
        if earlier is not None:
            return LoadResult(earlier.row_count, earlier.bytes, earlier.version, already_committed=True)
        table_schema = delta_schema(schema, target)
        rows = 0

        async def conformed() -> AsyncIterator[pa.RecordBatch]:
            nonlocal rows
            async for batch in batches:
                rows += batch.num_rows
                yield conform(batch, table_schema, target)

        await asyncio.to_thread(path.mkdir, parents=True, exist_ok=True)
        try:
            await write_in_thread(
                table_schema, conformed(), functools.partial(_overwrite, path, run_id), depth=self._queue_depth
            )
        except CommitFailedError as exc:
            raise Conflict(f"another writer committed to {target} at the same time ({_first_line(exc)})") from exc
        except DeltaError as exc:
            raise WarehouseError(f"writing {target} failed: {_first_line(exc)}") from exc
        commit = await asyncio.to_thread(_find_commit, path, run_id)
        if commit is None:
            raise WarehouseError(f"the commit of run {run_id} is missing from the history of {target}")
        return LoadResult(rows, commit.bytes, commit.version, already_committed=False)

    async def query(self, catalog: str, sql: str, max_rows: int, timeout: float) -> QueryResult:
        """Guard, translate and run one query; see `lakegate.loader.results` for how values are written."""
        guarded = guard(sql, catalog, functools.partial(self.tables_in, catalog), max_rows)

        def run() -> pa.Table:
            datasets: dict[str, ds.Dataset] = {
                name: DeltaTable(str(self.table_path(ref))).to_pyarrow_dataset()
                for name, ref in guarded.sources.items()
            }
            return execute(guarded.sql, datasets, guarded.sources, timeout=timeout, limits=self._limits)

        table = await asyncio.to_thread(run)
        return await asyncio.to_thread(query_result, table, max_rows, self._max_result_bytes)

    async def list_tables(self, catalog: str, layer: str) -> TableList:
        """Every table of one layer with its row count, size and version, from the Delta log."""
        layer = check_layer(layer)

        def summaries() -> list[TableSummary]:
            found = []
            for name in self.tables_in(catalog, layer):
                ref = TableRef(catalog=catalog, schema_name=layer, name=name)
                table = DeltaTable(str(self.table_path(ref)))
                files = _files(table)
                found.append(
                    TableSummary(
                        ref=ref,
                        layer=layer,
                        row_count=_row_count(table, files),
                        size_bytes=_size(files),
                        version=table.version(),
                    )
                )
            return found

        return TableList(tables=await asyncio.to_thread(summaries))

    async def describe(self, catalog: str, table_name: str) -> TableDescription:
        """Columns, row count, size, version and properties (including the last run id) of one table."""
        ref = parse_table_name(catalog, table_name)
        path = self.table_path(ref)

        def description() -> TableDescription:
            if not DeltaTable.is_deltatable(str(path)):
                raise NotFound(_missing(ref, self.tables_in(catalog, ref.schema_name)))
            table = DeltaTable(str(path))
            files = _files(table)
            schema = pa.schema(table.schema().to_arrow())
            return TableDescription(
                ref=ref,
                columns=[WarehouseColumn(name=f.name, type=str(f.type), nullable=f.nullable) for f in schema],
                row_count=_row_count(table, files),
                size_bytes=_size(files),
                version=table.version(),
                properties=_properties(table),
            )

        return await asyncio.to_thread(description)


def _missing(ref: TableRef, existing: Sequence[str]) -> str:
    if not existing:
        return f"table {ref} does not exist: the {ref.schema_name} layer has no tables yet"
    return f"table {ref} does not exist; tables in {ref.schema_name}: {', '.join(existing)}"


def _properties(table: DeltaTable) -> dict[str, str]:
    history: list[dict[str, Any]] = table.history()
    properties = {key: str(value) for key, value in table.metadata().configuration.items() if value is not None}
    protocol = table.protocol()
    properties["delta.minReaderVersion"] = str(protocol.min_reader_version)
    properties["delta.minWriterVersion"] = str(protocol.min_writer_version)
    if history:
        last = history[0]
        properties["delta.lastOperation"] = str(last.get("operation", ""))
        stamp = dt.datetime.fromtimestamp(int(last["timestamp"]) / 1000, tz=dt.UTC)
        properties["delta.lastCommitTimestamp"] = stamp.isoformat()
    run_id = next((str(entry[RUN_ID_KEY]) for entry in history if RUN_ID_KEY in entry), None)
    if run_id is not None:
        properties[RUN_ID_KEY] = run_id
    return properties
