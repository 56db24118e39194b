"""What a Delta table's log says without scanning data: row counts, sizes, commits and properties."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import pyarrow as pa
from deltalake import CommitProperties, DeltaTable, WriterProperties, write_deltalake
from deltalake import Schema as DeltaSchema
from deltalake.transaction import AddAction, create_table_with_add_actions
from lakegate.loader.warehouses import datafiles
from lakegate.loader.warehouses.base import OPERATION_NOTE

#: Commit metadata key naming the run that wrote a load.
RUN_ID_KEY = "lakegate.run_id"
#: Commit metadata key holding the rows a load committed, when the operation's own metrics would not say.
ROWS_KEY = "lakegate.rows"
#: Every commit note lakegate writes starts with this.
NOTE_PREFIX = "lakegate."


@dataclass(frozen=True)
class Commit:
    """One load's commit: its version, the rows and bytes it wrote, and lakegate's notes on it."""

    version: int
    row_count: int
    bytes: int
    notes: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Loads:
    """What a table's history says about loads: the commit of one run, if any, and the latest load's notes."""

    commit: Commit | None
    latest_notes: Mapping[str, str]


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
            return _commit(path, entry)
    return None


def loads(path: Path, run_id: str) -> Loads:
    """The commit of `run_id` (a redelivered load finds its own) and the notes of the latest load."""
    if not DeltaTable.is_deltatable(str(path)):
        return Loads(None, {})
    latest: Mapping[str, str] | None = None
    for entry in DeltaTable(str(path)).history():  # newest first
        if RUN_ID_KEY not in entry:
            continue
        if latest is None:
            latest = _notes(entry)
        if entry[RUN_ID_KEY] == run_id:
            return Loads(_commit(path, entry), latest)
    return Loads(None, latest or {})


def _notes(entry: Mapping[str, Any]) -> dict[str, str]:
    return {key: str(value) for key, value in entry.items() if key.startswith(NOTE_PREFIX)}


def _commit(path: Path, entry: Mapping[str, Any]) -> Commit:
    version = int(entry["version"])
    notes = _notes(entry)
    metrics: Mapping[str, Any] = entry.get("operationMetrics") or {}
    if ROWS_KEY in notes:
        rows = int(notes[ROWS_KEY])
    elif "num_added_rows" in metrics:
        rows = int(metrics["num_added_rows"])
    else:  # written before loads noted their rows: a full load, so the version holds exactly what it wrote
        rows = row_count(DeltaTable(str(path), version=version))
    return Commit(version, rows, committed_bytes(path, version), notes)


def committed_bytes(path: Path, version: int) -> int:
    """Bytes of the data files one commit added, from its log entry (0 once the log entry has been cleaned up)."""
    entry = path / "_delta_log" / f"{version:020d}.json"
    if not entry.is_file():
        return 0
    total = 0
    with entry.open(encoding="utf-8") as lines:
        for line in lines:
            action = json.loads(line) if line.strip() else {}
            if "add" in action:
                total += int(action["add"].get("size") or 0)
    return total


def arrow_schema(path: Path) -> pa.Schema | None:
    """The current schema of the table at `path`, or None when there is no table."""
    if not DeltaTable.is_deltatable(str(path)):
        return None
    return pa.schema(DeltaTable(str(path)).schema().to_arrow())


#: delta-rs's writer, for what it still writes (appends that add columns, merges): row groups of
#: 128 Ki rows bound what it buffers per file, and the compression must be named, since properties
#: without one make it write uncompressed pages (161 MiB for the bench's 1M rows; 29 MiB in zstd).
WRITER = WriterProperties(max_row_group_size=131_072, compression="ZSTD")


def write(
    path: Path,
    data: pa.RecordBatchReader | pa.Table,
    *,
    mode: Literal["append", "overwrite"],
    metadata: Mapping[str, str],
    evolve: bool = False,
) -> None:
    """One commit: append (adding new columns when `evolve`) or replace the table, schema too.

    The data files are written by `datafiles` (bounded memory); only an append that adds columns
    goes through delta-rs's writer, which merges the schema in the same commit.
    """
    if evolve and mode == "append":
        write_deltalake(
            str(path),
            data,
            mode=mode,
            schema_mode="merge",
            writer_properties=WRITER,
            commit_properties=CommitProperties(custom_metadata=dict(metadata)),
        )
        return
    reader = data if isinstance(data, pa.RecordBatchReader) else data.to_reader()
    with datafiles.written(path, reader) as (actions, rows):
        commit(path, actions, mode=mode, schema=reader.schema, metadata={ROWS_KEY: str(rows), **metadata})


def commit(
    path: Path,
    actions: Sequence[AddAction],
    *,
    mode: Literal["append", "overwrite"],
    schema: pa.Schema,
    metadata: Mapping[str, str],
) -> None:
    """One commit of data files already in the table's directory (creating the table if there is none)."""
    properties = CommitProperties(custom_metadata=dict(metadata))
    if DeltaTable.is_deltatable(str(path)):
        DeltaTable(str(path)).create_write_transaction(list(actions), mode, schema, commit_properties=properties)
    else:
        create_table_with_add_actions(
            str(path), DeltaSchema.from_arrow(schema), list(actions), "error", commit_properties=properties
        )


#: Aliases of the two sides of a MERGE, for predicates to name them.
TARGET, SOURCE = "t", "s"


def merge(
    path: Path,
    source: pa.RecordBatchReader,
    *,
    on: str,
    replace_when: str | None,
    metadata: Mapping[str, str],
    evolve: bool,
    memory_bytes: int | None = None,
) -> None:
    """One MERGE commit: rows matched `on` are replaced (when `replace_when` holds), the others inserted.

    The source is streamed (never collected), and past `memory_bytes` the engine spills to disk.
    """
    (
        DeltaTable(str(path))
        .merge(
            source,
            predicate=on,
            source_alias=SOURCE,
            target_alias=TARGET,
            merge_schema=evolve,
            writer_properties=WRITER,
            streamed_exec=True,
            max_spill_size=memory_bytes,
            commit_properties=CommitProperties(custom_metadata=dict(metadata)),
        )
        .when_matched_update_all(predicate=replace_when)
        .when_not_matched_insert_all()
        .execute()
    )


def overwrite(path: Path, data: pa.RecordBatchReader | pa.Table, metadata: Mapping[str, str]) -> int:
    """Replace the table at `path` (schema too) in one commit carrying `metadata`; returns the new version."""
    write(path, data, mode="overwrite", metadata=metadata)
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
