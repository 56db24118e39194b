"""A load on Databricks: staged Parquet → `COPY INTO` a staging table → one commit to the target.

    full          CREATE OR REPLACE TABLE target TBLPROPERTIES ('lakegate.run_id' = <run>) AS SELECT ... FROM stage
    incremental   mark lakegate.pending_run = <run>;  INSERT INTO target ... SELECT ... FROM stage;  mark run_id
    merge         mark lakegate.pending_run = <run>;  MERGE INTO target USING (stage, one row per key) ...;  mark run_id

Exactly once: a full load names its run in the same commit that replaces the table. An append or a
merge cannot set a property in its own commit, so the run is first named as pending; a redelivered
run that finds itself pending reads the table's history, and if a write follows the pending mark
(nothing else writes a bronze table) it only finishes the mark. So a redelivered load never commits
twice, and one that crashed before its commit commits once. Everything here blocks: it runs in a
worker thread on one `Session`.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import pyarrow as pa
from lakegate.common.contracts.runs import SchemaChange, SyncMode, TableRef
from lakegate.common.errors import NotFound, WarehouseError
from lakegate.loader.warehouses.base import LoadResult
from lakegate.loader.warehouses.databricks import statements as sql
from lakegate.loader.warehouses.databricks.client import Session
from lakegate.loader.warehouses.databricks.drift import compare, refuse_incompatible
from lakegate.loader.warehouses.databricks.layout import Location
from lakegate.loader.warehouses.databricks.parts import StagedFiles
from lakegate.loader.warehouses.databricks.typemap import Column

log = logging.getLogger(__name__)

#: Operations in a table's history that wrote data.
DATA_OPERATIONS = frozenset(
    {"WRITE", "MERGE", "CREATE TABLE AS SELECT", "REPLACE TABLE AS SELECT", "CREATE OR REPLACE TABLE AS SELECT"}
)


@dataclass(frozen=True)
class HistoryEntry:
    version: int
    operation: str
    parameters: dict[str, str]
    metrics: dict[str, str]
    timestamp: Any = None

    @property
    def rows(self) -> int:
        metrics = self.metrics
        if self.operation == "MERGE":
            return int(metrics.get("numSourceRows", 0))
        return int(metrics.get("numOutputRows", 0))

    @property
    def bytes(self) -> int:
        metrics = self.metrics
        return int(metrics.get("numOutputBytes") or metrics.get("numTargetBytesAdded") or 0)


def _mapping(value: Any) -> dict[str, str]:
    if value is None:
        return {}
    pairs = value.items() if isinstance(value, dict) else value
    return {str(k): str(v) for k, v in pairs}


def read_history(session: Session, target: Location, doing: str, limit: int = 20) -> list[HistoryEntry]:
    """The table's latest commits, newest first."""
    table = session.table(sql.history(target), doing=doing)
    entries = []
    for row in table.slice(0, limit).to_pylist():
        entries.append(
            HistoryEntry(
                version=int(row["version"]),
                operation=str(row.get("operation") or ""),
                parameters=_mapping(row.get("operationParameters")),
                metrics=_mapping(row.get("operationMetrics")),
                timestamp=row.get("timestamp"),
            )
        )
    return entries


def read_properties(session: Session, target: Location, doing: str) -> dict[str, str] | None:
    """The table's properties, or None when it does not exist."""
    try:
        table = session.table(sql.show_properties(target), doing=doing)
    except NotFound:
        return None
    return {str(row["key"]): str(row["value"]) for row in table.to_pylist()}


def read_schema(session: Session, target: Location, doing: str) -> pa.Schema | None:
    """The table's columns as Arrow, or None when it does not exist."""
    try:
        return session.table(sql.probe(target), doing=doing).schema
    except NotFound:
        return None


def _latest_write(entries: Sequence[HistoryEntry], target: Location) -> HistoryEntry:
    for entry in entries:
        if entry.operation in DATA_OPERATIONS:
            return entry
    raise WarehouseError(f"the history of {target} has no data commit among its latest {len(entries)} commits")


def already_committed(session: Session, target: Location, run_id: str) -> LoadResult | None:
    """The earlier commit of `run_id` to `target`, finishing its mark if a crash interrupted it."""
    doing = f"checking whether run {run_id} is already in {target}"
    properties = read_properties(session, target, doing)
    if properties is None:
        return None
    if properties.get(sql.RUN_ID_KEY) == run_id:
        entry = _latest_write(read_history(session, target, doing), target)
        return LoadResult(entry.rows, entry.bytes, entry.version, already_committed=True)
    if properties.get(sql.PENDING_KEY) != run_id:
        return None
    entries = read_history(session, target, doing)
    mark = next(
        (i for i, e in enumerate(entries) if e.operation == "SET TBLPROPERTIES" and run_id in str(e.parameters)), None
    )
    writes = [e for e in entries[:mark] if e.operation in DATA_OPERATIONS] if mark is not None else []
    if not writes:
        return None  # the write never happened (or its mark is out of sight): load again
    ours = writes[-1]  # the first write after the mark
    log.info("run %s wrote %s (version %d) before stopping; finishing its mark", run_id, target, ours.version)
    session.execute(sql.set_properties(target, {sql.RUN_ID_KEY: run_id}), doing=doing)
    return LoadResult(ours.rows, ours.bytes, ours.version, already_committed=True)


@dataclass(frozen=True)
class Commit:
    """One run's staged files and where they go."""

    ref: TableRef
    target: Location
    stage: Location
    cols: Sequence[Column]
    mode: SyncMode
    run_id: str
    keys: Sequence[str] = ()
    cursor: str | None = None


def _staged_schema(cols: Sequence[Column]) -> pa.Schema:
    return pa.schema([pa.field(c.name, c.staged) for c in cols])


def commit(session: Session, plan: Commit, staged: StagedFiles) -> LoadResult:
    """Load the staged files into the staging table, then commit them to the target in one statement."""
    target, stage, cols = plan.target, plan.stage, plan.cols
    doing = f"loading run {plan.run_id} into {plan.ref}"
    existing = read_schema(session, target, doing)
    drift = compare(existing, _staged_schema(cols)) if existing is not None else None
    if drift is not None and plan.mode != "full":
        refuse_incompatible(drift, plan.ref)
    session.execute(sql.create_stage(stage, cols), doing=doing)
    if staged.files:
        copied = session.table(sql.copy_into(stage, staged.directory), doing=doing)
        _check_copied(copied, staged, plan)
    changes: list[SchemaChange] = []
    if plan.mode == "full":
        session.execute(sql.replace_from(target, stage, cols, {sql.RUN_ID_KEY: plan.run_id}), doing=doing)
        changes = drift.changes() if drift is not None else []
    else:
        if drift is None:
            session.execute(sql.create_if_missing(target, cols), doing=doing)
        elif drift.added:
            added = [c for c in cols if c.name.lower() in {f.name.lower() for f in drift.added}]
            session.execute(sql.add_columns(target, added), doing=doing)
        if drift is not None:
            changes = [c for c in drift.changes() if c.change != "type_changed"]
        session.execute(sql.set_properties(target, {sql.PENDING_KEY: plan.run_id}), doing=doing)
        if plan.mode == "merge":
            write = sql.merge_from(target, stage, cols, plan.keys, plan.cursor)
        else:
            write = sql.append_from(target, stage, cols)
        # Applying a merge twice leaves the same rows, so it may be retried; an append may not.
        session.execute(write, doing=doing, idempotent=plan.mode == "merge")
        session.execute(sql.set_properties(target, {sql.RUN_ID_KEY: plan.run_id}), doing=doing)
    entry = _latest_write(read_history(session, target, doing), target)
    return LoadResult(staged.rows, staged.bytes, entry.version, already_committed=False, schema_changes=tuple(changes))


def _check_copied(copied: pa.Table, staged: StagedFiles, plan: Commit) -> None:
    if "num_inserted_rows" not in copied.column_names or copied.num_rows == 0:
        return
    inserted = int(copied.column("num_inserted_rows")[0].as_py() or 0)
    if inserted != staged.rows:
        raise WarehouseError(
            f"COPY INTO loaded {inserted} of the {staged.rows} staged rows of run {plan.run_id} into the staging "
            f"table of {plan.ref}; nothing was committed. Start the sync again"
        )
