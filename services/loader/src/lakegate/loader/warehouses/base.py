"""The interfaces a warehouse implements: `Warehouse` (load, query, inspect) and the optional `Builder`.

What is warehouse-neutral lives outside this package and is shared: the SQL guard (`sqlguard`), the
silver spec → syntax tree (`silver`), statistics queries (`tablestats`) and file parsing (`uploads`).
A warehouse only renders guarded trees in its own dialect, runs them and stores the results.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol, runtime_checkable

import pyarrow as pa
from lakegate.common.contracts.runs import SchemaChange, SyncMode, TableRef
from lakegate.common.contracts.warehouse import QueryResult, TableDescription, TableList
from lakegate.common.rpc import Encoded
from lakegate.loader.sqlguard import ReadQuery

#: Commit note naming what wrote a table other than a load: `transform` or `upload`.
OPERATION_NOTE = "lakegate.operation"


@dataclass(frozen=True)
class LoadPlan:
    """What one run asks of the warehouse.

    `full` replaces the table; `incremental` appends; `merge` upserts on `keys`, and when one batch
    holds several rows of a key the one with the greatest `cursor` wins (ties: the last one staged).
    Schema drift: a column new at the source is added; a column gone from the source stays and is
    NULL in new rows; a type that cannot be widened fails the load naming the column, changing nothing.
    """

    target: TableRef
    schema: pa.Schema
    mode: SyncMode
    run_id: str
    keys: tuple[str, ...] = ()
    cursor: str | None = None
    source_types: Mapping[str, str] = field(default_factory=dict)  # column → its type at the source
    #: Merge with detect_deletes: every primary key at the source (read once); the table's other keys are deleted.
    source_keys: Callable[[], AsyncIterator[pa.RecordBatch]] | None = None


@dataclass(frozen=True)
class LoadResult:
    """What one load committed, or found already committed by an earlier delivery of the same run."""

    row_count: int
    bytes: int
    version: int | None
    already_committed: bool
    schema_changes: tuple[SchemaChange, ...] = ()
    #: Merge with detect_deletes: rows deleted because the source no longer has them; None otherwise.
    deleted_rows: int | None = None


@dataclass(frozen=True)
class Written:
    """A table or view that was just created or replaced."""

    schema: pa.Schema
    row_count: int | None
    version: int | None


class Warehouse(Protocol):
    async def load(self, plan: LoadPlan, batches: AsyncIterator[pa.RecordBatch]) -> LoadResult:
        """Commit every batch to `plan.target` in one transaction, or nothing if `plan.run_id` is already there."""
        ...

    async def query(self, catalog: str, sql: str, max_rows: int, timeout: float) -> QueryResult:
        """Run one read-only statement over `catalog` and return at most `max_rows` rows as JSON values."""
        ...

    async def preview(self, catalog: str, table_name: str, limit: int) -> QueryResult:
        """The first `limit` rows of one table or view."""
        ...

    async def list_tables(self, catalog: str, layer: str, *, offset: int = 0, limit: int = 100) -> TableList:
        """One page of the tables (and views) of `catalog` in one layer, sorted by name."""
        ...

    async def describe(self, catalog: str, table_name: str, *, with_stats: bool = False) -> TableDescription:
        """Columns, size, version and properties of one table; per-column statistics when asked."""
        ...


@runtime_checkable
class CachedAnswers(Protocol):
    """Optional ability: answer a statement asked before from memory, without a statement slot."""

    def cached_answer(self, catalog: str, sql: str, max_rows: int) -> Encoded[QueryResult] | None:
        """The kept answer of this statement over the tables as they are now, as its JSON, or None; never blocks
        for long."""
        ...


@runtime_checkable
class FileCommitter(Protocol):
    """Optional ability: commit data files already written in the warehouse's own format, without rewriting them."""

    async def commit_files(self, plan: LoadPlan, files: Sequence[Path], rows: int) -> LoadResult | None:
        """Make `files` (`rows` rows in all) the run's one commit, or find it already made; None when they
        cannot be taken as they are (the caller then loads their rows instead)."""
        ...


class Builder(Protocol):
    """Optional ability: build tables and views from guarded queries, and store uploaded data."""

    def tables_in(self, catalog: str, layer: str) -> list[str]:
        """Names of the tables and views of one layer, for the guard to resolve against."""
        ...

    async def table_schema(self, ref: TableRef) -> tuple[pa.Schema, int]:
        """The schema and row count of an existing table; `NotFound` names the tables that exist."""
        ...

    async def create_table_as(self, target: TableRef, query: ReadQuery, *, note: Mapping[str, str]) -> Written:
        """Replace `target` with the query's rows in one atomic commit; a failure leaves it as it was."""
        ...

    async def create_view(self, ref: TableRef, query: ReadQuery, *, definition: str) -> Written:
        """Create or replace a view defined by `query` (`definition` is its Databricks SQL)."""
        ...

    async def replace_table(self, target: TableRef, data: pa.Table, *, note: Mapping[str, str]) -> Written:
        """Replace `target` with `data` in one atomic commit."""
        ...
