"""Results of the catalog tools: datasets with their lineage, and the whole lakehouse in one view."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from lakegate.common.contracts.catalog import Dataset
from lakegate.common.contracts.runs import ColumnMapping
from lakegate.edge.results.base import ToolResult
from lakegate.edge.results.sources import SourceSummary
from pydantic import Field

DatasetKind = Literal["synced", "silver", "gold", "upload"]
Via = Literal["sync", "transform", "view", "upload"]
#: Columns each table shows in a listing (list_datasets, get_metadata); describe_table shows them all.
#: A wide table must not push a listing of every table past a client's message limit (1 MiB).
LISTED_COLUMNS = 100
#: Most JSON bytes of one listing answer, well under the 1 MiB a client takes in one message.
LISTING_BYTES = 512 * 1024


class DatasetColumn(ToolResult):
    name: str
    type: str = Field(description="The Arrow type of the column in the lakehouse.")
    source_type: str = Field(description="The type it had where it came from (PostgreSQL, bronze, or the file).")

    @classmethod
    def of(cls, column: ColumnMapping) -> DatasetColumn:
        return cls(name=column.name, type=column.arrow_type, source_type=column.source_type)


class DatasetInfo(ToolResult):
    """A lakehouse table the catalog knows, and where it came from."""

    table_name: str = Field(description="`<catalog>.<layer>.<name>`, as written in SQL.")
    layer: str
    kind: DatasetKind = Field(description="synced from PostgreSQL, a silver transform, a gold view, or an upload.")
    connection_id: str | None = Field(default=None, description="The source it was synced from (synced only).")
    source_table: str | None = Field(default=None, description="`schema.table` in that source (synced only).")
    upstream: list[str] = Field(default_factory=list, description="Lakehouse tables it was built from.")
    keys: list[str] = Field(default_factory=list, description="Known key columns (the source's primary key).")
    definition: str | None = Field(default=None, description="SQL that defines it (silver, gold).")
    row_count: int | None = None
    columns: list[DatasetColumn] = Field(
        default_factory=list, description=f"The first {LISTED_COLUMNS} columns; describe_table shows every one."
    )
    column_count: int = Field(default=0, description="How many columns the table has.")
    columns_truncated: bool = Field(default=False, description="True when `columns` shows only some of them.")
    last_run_id: str | None = Field(default=None, description="The last sync run; get_sync_run shows it.")
    last_synced_at: datetime | None = Field(default=None, description="When the last successful sync finished.")
    updated_at: datetime

    @classmethod
    def of(cls, dataset: Dataset) -> DatasetInfo:
        return cls(
            table_name=str(dataset.target),
            layer=dataset.target.schema_name,
            kind=dataset.kind,
            connection_id=dataset.connection_id,
            source_table=dataset.source_table,
            upstream=[str(ref) for ref in dataset.upstream],
            keys=dataset.keys,
            definition=dataset.definition,
            row_count=dataset.row_count,
            columns=[DatasetColumn.of(c) for c in dataset.columns[:LISTED_COLUMNS]],
            column_count=len(dataset.columns),
            columns_truncated=len(dataset.columns) > LISTED_COLUMNS,
            last_run_id=dataset.last_run_id,
            last_synced_at=dataset.last_synced_at,
            updated_at=dataset.updated_at,
        )


class DatasetListResult(ToolResult):
    """Your datasets with their lineage and last sync."""

    datasets: list[DatasetInfo]
    next_offset: int | None = Field(default=None, description="Pass as `offset` for the next page; None at the end.")
    truncated: bool = Field(
        default=False, description="True when this page holds fewer datasets than asked, to stay a readable size."
    )

    @classmethod
    def page(cls, datasets: list[DatasetInfo], offset: int, next_offset: int | None) -> DatasetListResult:
        """The datasets that fit in `LISTING_BYTES`; the rest are left to the next page."""
        kept: list[DatasetInfo] = []
        size = 0
        for dataset in datasets:
            size += len(dataset.model_dump_json())
            if kept and size > LISTING_BYTES:
                return cls(datasets=kept, next_offset=offset + len(kept), truncated=True)
            kept.append(dataset)
        return cls(datasets=kept, next_offset=next_offset)


class TableMetadata(ToolResult):
    """One table of the lakehouse: what is in it, where it came from, what was built from it."""

    table_name: str = Field(description="`<catalog>.<layer>.<name>`, as written in SQL.")
    name: str
    layer: str
    kind: DatasetKind | Literal["unrecorded"] = Field(
        description="How it was made; `unrecorded` when the catalog holds no record of it."
    )
    in_lakehouse: bool = Field(description="False when the catalog knows it but the warehouse no longer has it.")
    row_count: int | None = None
    size_bytes: int | None = None
    version: int | None = None
    source: str | None = Field(default=None, description="`<source name>:<schema.table>` for synced tables.")
    connection_id: str | None = None
    upstream: list[str] = Field(default_factory=list, description="Tables (or the source table) it was built from.")
    downstream: list[str] = Field(default_factory=list, description="Tables built from it.")
    keys: list[str] = Field(default_factory=list, description="Known key columns.")
    columns: list[DatasetColumn] = Field(
        default_factory=list, description=f"The first {LISTED_COLUMNS} columns; describe_table shows every one."
    )
    column_count: int = Field(default=0, description="How many columns the table has.")
    columns_truncated: bool = Field(default=False, description="True when `columns` shows only some of them.")
    definition: str | None = None
    last_synced_at: datetime | None = None
    last_run_id: str | None = None


class LineageEdge(ToolResult):
    upstream: str = Field(description="A table, or `<source name>:<schema.table>` for a PostgreSQL table.")
    downstream: str
    via: Via


class MetadataResult(ToolResult):
    """Everything in your lakehouse at once: sources, tables of every layer, lineage and keys."""

    catalog: str = Field(description="Your catalog; every table is `<catalog>.<layer>.<name>`.")
    sources: list[SourceSummary]
    tables: list[TableMetadata] = Field(description="Bronze, then silver, then gold; by name within a layer.")
    lineage: list[LineageEdge] = Field(description="source table → bronze → silver → gold.")
    hint: str = Field(description="What to do next.")
    truncated: bool = Field(
        default=False,
        description="True when the tables' columns were left out to keep the answer a readable size "
        "(each table's `columns_truncated` is set); describe_table shows a table's columns.",
    )

    def within(self, budget: int = LISTING_BYTES) -> MetadataResult:
        """This view, without the tables' columns when it would be larger than `budget` JSON bytes."""
        if len(self.model_dump_json()) <= budget:
            return self
        tables = [t.model_copy(update={"columns": [], "columns_truncated": t.column_count > 0}) for t in self.tables]
        return self.model_copy(update={"tables": tables, "truncated": True})
