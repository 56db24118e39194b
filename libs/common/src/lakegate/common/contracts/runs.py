"""Sync runs: the command that starts one, the steps it reports, and how anyone sees it."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from lakegate.common.contracts.base import Message, TenantScoped
from pydantic import Field

#: What a run's `deleted_rows` counts, the same wherever a run's outcome is told.
DELETED_ROWS_DESCRIPTION = (
    "Merge with detect_deletes: target rows deleted because the source no longer has their key; "
    "None when the run did not detect deletes."
)

SyncMode = Literal["full", "incremental", "merge"]
RunStatus = Literal["queued", "extracting", "loading", "succeeded", "failed", "cancelled"]
TERMINAL_STATUSES: frozenset[str] = frozenset({"succeeded", "failed", "cancelled"})


class TableRef(Message):
    """A table in the warehouse: `<catalog>.<schema>.<name>`."""

    catalog: str
    schema_name: str
    name: str

    def __str__(self) -> str:
        return f"{self.catalog}.{self.schema_name}.{self.name}"


class StartRun(TenantScoped):
    """Catalog: record a run and send it to the extractor."""

    connection_id: str
    table_name: str = Field(description="`table` or `schema.table` in the source.")
    sync_mode: SyncMode = "full"
    cursor_column: str | None = Field(
        default=None,
        description="Incremental/merge: the column whose growth marks new or changed rows; inferred when omitted.",
    )
    schedule_id: str | None = Field(default=None, description="Set when a schedule started the run.")
    detect_deletes: bool = Field(
        default=False,
        description="Merge only: also compare every primary key at the source with the target's, and delete the "
        "target rows whose key the source no longer has.",
    )


class Cursor(Message):
    """A high-water mark: the greatest cursor value a committed run has seen."""

    column: str
    value: str = Field(
        description="The value as text in a canonical form: integers and decimals as digits, timestamps as "
        "ISO 8601 (timestamptz normalised to UTC with '+00:00'), dates as YYYY-MM-DD, strings as they are."
    )
    source_type: str = Field(description="PostgreSQL type of the column, e.g. 'timestamp with time zone'.")
    snapshot: str | None = Field(
        default=None,
        description="The source snapshot (`pg_current_snapshot()` text, `xmin:xmax:xip,...`) the run that reached "
        "this value read in. The next run also reads rows at or before the value, within a window, whose writing "
        "transaction that snapshot could not see: rows committed late. None from sources before PostgreSQL 13.",
    )


class SchemaChange(Message):
    """A difference between the source's columns and the target table's, and what the load did about it."""

    column: str
    change: Literal["added", "dropped", "type_changed"]
    before: str | None = Field(default=None, description="Arrow type in the target before the run.")
    after: str | None = Field(default=None, description="Arrow type the source has now.")


class RunRef(TenantScoped):
    run_id: str


class ErrorInfo(Message):
    code: str = Field(description="Error code from lakegate's taxonomy, e.g. 'not_found'.")
    message: str = Field(description="What went wrong and what to do about it.")
    transient: bool = False


class ColumnMapping(Message):
    """How one source column was written to the warehouse."""

    name: str
    source_type: str
    arrow_type: str
    mapped: bool = Field(description="False when the source type had no explicit mapping and became text.")


class RunView(Message):
    """A run as the edge and any client see it."""

    run_id: str
    tenant_id: str
    connection_id: str
    source_table: str
    target: TableRef
    sync_mode: SyncMode
    status: RunStatus
    row_count: int | None = None
    bytes: int | None = None
    columns: list[ColumnMapping] = Field(default_factory=list)
    error: ErrorInfo | None = None
    created_at: datetime
    started_at: datetime | None = None
    finished_at: datetime | None = None
    cursor: Cursor | None = Field(default=None, description="Incremental/merge: the cursor after this run.")
    schema_changes: list[SchemaChange] = Field(default_factory=list)
    rows_extracted: int | None = None
    deleted_rows: int | None = Field(default=None, description=DELETED_ROWS_DESCRIPTION)
    schedule_id: str | None = None
    duration_seconds: float | None = Field(
        default=None, description="Seconds from start (or creation) to finish; None until the run finishes."
    )
    rows_per_second: float | None = Field(
        default=None, description="Rows written per second of duration; None until the run succeeds."
    )


class ExtractTable(Message):
    """Command `cmd.extract`: stream one source table out to staging."""

    tenant_id: str
    run_id: str
    connection_id: str
    source_schema: str
    source_table: str
    target: TableRef
    sync_mode: SyncMode
    cursor_column: str | None = Field(default=None, description="Asked for by the caller; inferred when None.")
    since: Cursor | None = Field(default=None, description="Incremental/merge: extract rows past this value only.")
    detect_deletes: bool = Field(
        default=False, description="Merge only: stage every primary key of the table as well (`Extracted.source_keys`)."
    )


class ExtractRange(Message):
    """Command `cmd.extract_range`: one slice of a large table, read in the coordinator's exported snapshot."""

    tenant_id: str
    run_id: str
    connection_id: str
    source_schema: str
    source_table: str
    snapshot: str = Field(description="`pg_export_snapshot()` of the coordinating transaction.")
    index: int = Field(description="Position of this range in the run, from 0.")
    count: int = Field(description="How many ranges the run has.")
    predicate: str = Field(
        description="The range as a SQL predicate built by the coordinator from quoted identifiers and "
        "literals, e.g. `ctid >= '(0,0)'::tid AND ctid < '(1000,0)'::tid`."
    )
    since: Cursor | None = None
    cursor_column: str | None = None
    attempt: str | None = Field(
        default=None,
        description="The coordinator's attempt (e.g. 'a1'): a restarted extraction has a new snapshot and a new "
        "attempt, so its ranges never mix with an earlier attempt's.",
    )
    data_files_for: TableRef | None = Field(
        default=None,
        description="Full syncs into the local lakehouse: stage the range as this table's Parquet data files "
        "(`StagedParts.store` 'datafiles') when this extractor can reach the lakehouse; parts otherwise.",
    )


class RangeExtracted(Message):
    """Step `run.<id>.range`: one range is staged."""

    tenant_id: str
    run_id: str
    index: int
    row_count: int
    staged: StagedParts
    max_cursor: str | None = None
    attempt: str | None = Field(default=None, description="`ExtractRange.attempt` of the range this answers.")


class RangeFailed(Message):
    """Step `run.<id>.range`: one range cannot be extracted; the coordinator fails the run."""

    tenant_id: str
    run_id: str
    index: int
    attempt: str | None = Field(default=None, description="`ExtractRange.attempt` of the range this answers.")
    error: ErrorInfo


class Extracting(Message):
    """Step `run.<id>.extracting`: an extractor took the run."""

    tenant_id: str
    run_id: str
    attempt: str


class StagedParts(Message):
    """Where the parts of one extraction attempt wait for the loader."""

    store: Literal["jetstream", "memory", "directory", "datafiles"] = Field(
        default="jetstream",
        description="`datafiles`: the rows are already the local lakehouse's Parquet data files, written by the "
        "extractor under the lakehouse's staging directory; the loader commits them without rewriting them.",
    )
    location: str = Field(
        description="Subject (jetstream), path (directory) or `<run_id>/<attempt>` under the lakehouse's staging "
        "directory (datafiles) holding the parts."
    )
    parts: int = Field(description="Parts staged (datafiles: data files).")
    bytes: int = Field(description="Compressed bytes staged.")
    files: list[str] = Field(
        default_factory=list, description="datafiles: the names of the data files at `location`, in order."
    )


class Extracted(Message):
    """Step `run.<id>.extracted`: every part is staged; the loader may commit."""

    tenant_id: str
    run_id: str
    target: TableRef
    sync_mode: SyncMode
    arrow_schema: str = Field(description="The Arrow schema of every part, as base64 Arrow IPC.")
    columns: list[ColumnMapping]
    row_count: int
    staged: StagedParts
    primary_key: list[str] = Field(default_factory=list, description="The source table's primary key columns.")
    ranges: list[StagedParts] = Field(
        default_factory=list,
        description="Parallel extraction: the staged parts of every range after `staged`, in order; the "
        "loader commits `staged` and all of these as one.",
    )
    cursor: Cursor | None = Field(
        default=None, description="Incremental/merge: the greatest cursor value in the extracted rows (or `since`)."
    )
    source_keys: StagedParts | None = Field(
        default=None,
        description="Merge with detect_deletes: the primary key columns of every row at the source, read in the "
        "same snapshot as the rows; target rows whose key is not among them are deleted in the merge's commit.",
    )


class Streaming(Message):
    """Step `run.<id>.streaming`: an extraction attempt starts staging parts; a loader may load them as they arrive.

    Published before the attempt's first part, with everything `Extracted` says that is known up
    front. `Extracted` (same `location`) still ends the attempt: it gives the part and row counts
    and the cursor, and only then does the loader commit. Only single-stream `full` and
    `incremental` attempts staged as JetStream parts send it; every other run is loaded on `Extracted`.
    """

    tenant_id: str
    run_id: str
    attempt: str = Field(description="The extraction attempt (`Extracting.attempt`) whose parts these are.")
    target: TableRef
    sync_mode: SyncMode
    arrow_schema: str = Field(description="The Arrow schema of every part, as base64 Arrow IPC.")
    columns: list[ColumnMapping]
    location: str = Field(description="The staging subject the attempt's parts are published on, in order.")
    primary_key: list[str] = Field(default_factory=list, description="The source table's primary key columns.")
    cursor_column: str | None = Field(default=None, description="Incremental: the column the cursor is kept on.")


class Loading(Message):
    """Step `run.<id>.loading`: a loader took the staged parts."""

    tenant_id: str
    run_id: str


class Loaded(Message):
    """Step `run.<id>.loaded`: the warehouse committed the run."""

    tenant_id: str
    run_id: str
    target: TableRef
    row_count: int
    bytes: int
    table_version: int | None = Field(default=None, description="Delta table version of the commit, if any.")
    schema_changes: list[SchemaChange] = Field(default_factory=list)
    deleted_rows: int | None = Field(default=None, description=DELETED_ROWS_DESCRIPTION)


class Failed(Message):
    """Step `run.<id>.failed`: the run cannot finish; the target is as it was."""

    tenant_id: str
    run_id: str
    step: str = Field(description="Which step failed: 'extract' or 'load'.")
    error: ErrorInfo


class CancelRun(TenantScoped):
    run_id: str


class Progress(Message):
    """Core-NATS `progress.<run_id>`: lossy, for showing progress only."""

    run_id: str
    step: Literal["extracting", "loading"]
    rows: int
    range_index: int | None = Field(
        default=None,
        description="Parallel extraction: `rows` counts this range only (sum the latest of every range); "
        "None when `rows` counts the whole run.",
    )
