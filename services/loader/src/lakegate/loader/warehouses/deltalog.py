"""What a Delta table's log says without scanning data: row counts, sizes, commits and properties."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyarrow as pa
from deltalake import CommitProperties, DeltaTable, write_deltalake
from lakegate.loader.warehouses.base import OPERATION_NOTE

#: Commit metadata key naming the run that wrote a load.
RUN_ID_KEY = "lakegate.run_id"


@dataclass(frozen=True)
class Commit:
    version: int
    row_count: int
    bytes: int


def first_line(exc: BaseException) -> str:
    """delta-rs appends a Rust backtrace to its messages; the first line says what happened."""
    return str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__


def files(table: DeltaTable) -> pa.Table:
    return pa.table(table.get_add_actions(flatten=True))


def row_count(table: DeltaTable, added: pa.Table | None = None) -> int:
    """Rows of the current version, from the `add` actions' statistics (counted only if a writer left none)."""
    counts = (added if added is not None else files(table)).column("num_records").to_pylist()
    if any(count is None for count in counts):
        return int(table.count())
    return int(sum(counts))


def size(added: pa.Table) -> int:
    return int(sum(added.column("size_bytes").to_pylist()))


def find_commit(path: Path, key: str, value: str) -> Commit | None:
    """The commit whose metadata has `key = value`, if the table has one."""
    if not DeltaTable.is_deltatable(str(path)):
        return None
    for entry in DeltaTable(str(path)).history():
        if entry.get(key) == value:
            # A full load replaces every file, so the table as of that version is exactly what it wrote.
            committed = DeltaTable(str(path), version=int(entry["version"]))
            added = files(committed)
            return Commit(committed.version(), row_count(committed, added), size(added))
    return None


def overwrite(path: Path, data: pa.RecordBatchReader | pa.Table, metadata: Mapping[str, str]) -> int:
    """Replace the table at `path` (schema too) in one commit carrying `metadata`; returns the new version."""
    write_deltalake(
        str(path),
        data,
        mode="overwrite",
        schema_mode="overwrite",
        commit_properties=CommitProperties(custom_metadata=dict(metadata)),
    )
    return DeltaTable(str(path)).version()


def properties(table: DeltaTable) -> dict[str, str]:
    """Configuration, protocol versions, the last operation and its time, and the last run id."""
    history: list[dict[str, Any]] = table.history()
    found = {key: str(value) for key, value in table.metadata().configuration.items() if value is not None}
    protocol = table.protocol()
    found["delta.minReaderVersion"] = str(protocol.min_reader_version)
    found["delta.minWriterVersion"] = str(protocol.min_writer_version)
    if history:
        last = history[0]
        found["delta.lastOperation"] = str(last.get("operation", ""))
        stamp = dt.datetime.fromtimestamp(int(last["timestamp"]) / 1000, tz=dt.UTC)
        found["delta.lastCommitTimestamp"] = stamp.isoformat()
        if OPERATION_NOTE in last:
            found[OPERATION_NOTE] = str(last[OPERATION_NOTE])
    run_id = next((str(entry[RUN_ID_KEY]) for entry in history if RUN_ID_KEY in entry), None)
    if run_id is not None:
        found[RUN_ID_KEY] = run_id
    return found


def delta_tables(directory: Path) -> Iterator[str]:
    """Names of the Delta tables in a layer directory; a directory without a Delta log is no table."""
    if directory.is_dir():
        yield from (p.name for p in directory.iterdir() if (p / "_delta_log").is_dir())
