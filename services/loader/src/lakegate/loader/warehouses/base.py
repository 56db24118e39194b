"""The interface every warehouse implements: load a run atomically, answer SQL, list and describe tables."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Protocol

import pyarrow as pa
from lakegate.common.contracts.runs import SyncMode, TableRef
from lakegate.common.contracts.warehouse import QueryResult, TableDescription, TableList


@dataclass(frozen=True)
class LoadResult:
    """What one load committed, or found already committed by an earlier delivery of the same run."""

    row_count: int
    bytes: int
    version: int | None
    already_committed: bool


class Warehouse(Protocol):
    async def load(
        self,
        target: TableRef,
        schema: pa.Schema,
        batches: AsyncIterator[pa.RecordBatch],
        *,
        mode: SyncMode,
        run_id: str,
    ) -> LoadResult:
        """Commit every batch to `target` in one transaction, or nothing if `run_id` is already committed."""
        ...

    async def query(self, catalog: str, sql: str, max_rows: int, timeout: float) -> QueryResult:
        """Run one read-only statement over `catalog` and return at most `max_rows` rows as JSON values."""
        ...

    async def list_tables(self, catalog: str, layer: str) -> TableList:
        """The tables of `catalog` in one layer (bronze, silver or gold)."""
        ...

    async def describe(self, catalog: str, table_name: str) -> TableDescription:
        """Columns, size, version and properties of one table of `catalog`."""
        ...
