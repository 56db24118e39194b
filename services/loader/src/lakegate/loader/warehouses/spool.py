"""A run's incoming rows spooled to Parquet under the lakehouse, so a merge needs only a few batches of memory.

    <lakehouse>/_scratch/<run_id>/incoming.parquet   every staged row in staged order, with its ordinal
    <lakehouse>/_scratch/<run_id>/keys.parquet       merge with detect_deletes: every primary key at the source
    <lakehouse>/_scratch/<run_id>/spill/             where DuckDB spills while it deduplicates

Rows reach the file through the bounded bridge (`bridge.write_in_thread`), one row group per batch.
Deduplication runs in DuckDB over the file with a memory limit and spills to disk beyond it; its
result is read back in batches. The directory goes when the load ends, however it ends; a loader
killed mid-load leaves it to the redelivery of the same run (which starts afresh), and
directories left for longer than `STALE_AFTER` are swept by the next spool.
"""

from __future__ import annotations

import contextlib
import shutil
import time
from collections.abc import Iterator
from pathlib import Path

import duckdb
import pyarrow as pa
import pyarrow.dataset as ds
import pyarrow.parquet as pq
from lakegate.common.errors import WarehouseError
from lakegate.loader.mergekeys import MergeColumns
from lakegate.loader.schemadrift import align
from lakegate.loader.warehouses.sqlengine import BATCH_ROWS, EngineLimits

#: The ordinal of each row in staged order; ties between rows of one key go to the later one.
SEQ = "__lakegate_seq"
SCRATCH = "_scratch"
STALE_AFTER = 86400.0


def quote(name: str) -> str:
    """A DuckDB identifier, whatever characters the source gave the column."""
    return '"' + name.replace('"', '""') + '"'


def latest_per_key(columns: MergeColumns, relation: str) -> str:
    """One row per key: the greatest cursor (NULL is oldest), then the last staged."""
    order = [f"{quote(columns.cursor)} DESC NULLS LAST"] if columns.cursor else []
    return (
        f"SELECT * EXCLUDE ({quote(SEQ)}) FROM {relation} QUALIFY row_number() OVER ("
        f"PARTITION BY {', '.join(map(quote, columns.keys))} ORDER BY {', '.join([*order, f'{quote(SEQ)} DESC'])}) = 1"
    )


def same_key(columns: MergeColumns, target: str, source: str) -> str:
    """SQL (DuckDB and DataFusion alike): the two rows have the same key."""
    return " AND ".join(f"{target}.{quote(key)} = {source}.{quote(key)}" for key in columns.keys)


def incoming_wins(columns: MergeColumns, target: str, source: str, *, cursor_in_target: bool) -> str:
    """SQL (DuckDB and DataFusion alike): the incoming row replaces the stored one, unless the stored one is newer.

    NULL is the oldest cursor: a stored NULL is always replaced, an incoming NULL never replaces a value.
    The lakehouse's own merge applies the same rule in Arrow compute (`deltamerge._wins`).
    """
    if not columns.cursor or not cursor_in_target:
        return "TRUE"
    column = quote(columns.cursor)
    return f"({target}.{column} IS NULL OR COALESCE({source}.{column} >= {target}.{column}, FALSE))"


class Spool:
    """The spooled rows of one run and the DuckDB queries over them."""

    def __init__(self, directory: Path, schema: pa.Schema, limits: EngineLimits) -> None:
        self.directory = directory
        self.schema = schema
        self._limits = limits
        self._file = directory / "incoming.parquet"
        self._keys = directory / "keys.parquet"
        self._distinct_keys: dict[MergeColumns, int] = {}
        #: Rows written to the spool.
        self.rows = 0

    def write(self, reader: pa.RecordBatchReader) -> int:
        """Write every batch with its ordinal; returns the rows written. Blocking."""
        spooled = self.schema.append(pa.field(SEQ, pa.int64(), nullable=False))
        rows = 0
        with pq.ParquetWriter(self._file, spooled, compression="lz4") as writer:
            for batch in reader:
                seq = pa.array(range(rows, rows + batch.num_rows), pa.int64())
                writer.write_batch(pa.RecordBatch.from_arrays([*batch.columns, seq], schema=spooled))
                rows += batch.num_rows
        self.rows = rows
        return rows

    def write_keys(self, reader: pa.RecordBatchReader) -> int:
        """Write the source's primary keys (detect_deletes); returns how many. Blocking."""
        rows = 0
        with pq.ParquetWriter(self._keys, reader.schema, compression="lz4") as writer:
            for batch in reader:
                writer.write_batch(batch)
                rows += batch.num_rows
        return rows

    def deleted_keys(self, columns: MergeColumns, target: ds.Dataset) -> pa.Table:
        """The keys the target holds and the source no longer has: an anti-join in DuckDB, spilling past its limit.

        Only the result (the deleted keys) is held in memory.
        """
        keys = ", ".join(f"t.{quote(key)}" for key in columns.keys)
        match = " AND ".join(f"k.{quote(key)} = t.{quote(key)}" for key in columns.keys)
        sql = f"SELECT {keys} FROM target AS t WHERE NOT EXISTS (SELECT 1 FROM source_keys AS k WHERE {match})"
        with self._engine(target) as con:
            con.register("source_keys", ds.dataset(self._keys, format="parquet"))
            try:
                return con.sql(sql).to_arrow_table()
            except (duckdb.Error, pa.ArrowException) as exc:
                raise WarehouseError(f"comparing the source's keys with the table's failed in DuckDB: {exc}") from exc

    def batches(self) -> Iterator[pa.RecordBatch]:
        """The spooled rows as they were staged, without their ordinals."""
        # Row group after row group, each read when it is needed: `pre_buffer` (and a dataset scanner)
        # would read the whole file's column chunks first (+350 MiB for a 3M-row spool, measured).
        spooled = pq.ParquetFile(self._file, pre_buffer=False)
        for batch in spooled.iter_batches(batch_size=BATCH_ROWS, columns=self.schema.names, use_threads=False):
            yield align(batch, self.schema)

    def count_keys(self, columns: MergeColumns) -> int:
        """How many distinct keys the run holds: the rows a merge offers the table."""
        if columns not in self._distinct_keys:
            sql = f"SELECT count(*) FROM (SELECT DISTINCT {', '.join(map(quote, columns.keys))} FROM incoming)"
            with self._engine() as con:
                found = con.execute(sql).fetchone()
            self._distinct_keys[columns] = int(found[0]) if found else 0
        return self._distinct_keys[columns]

    def latest_per_key(self, columns: MergeColumns) -> Iterator[pa.RecordBatch]:
        """One row per key, with the spool's schema. Blocking.

        When every key came once, the usual case (one snapshot of a table whose primary key it is),
        the spooled rows are already that, and are read back as they are: DuckDB's window, whose
        memory grows with the run (+550 MiB for 3M rows, measured), runs only when keys repeat.
        """
        if self.count_keys(columns) == self.rows:
            yield from self.batches()
            return
        yield from self._read(latest_per_key(columns, "incoming"))

    def merged_into(
        self, target: ds.Dataset, columns: MergeColumns, *, cursor_in_target: bool
    ) -> Iterator[pa.RecordBatch]:
        """The whole table after the merge: stored rows no incoming row replaces, then the winning incoming rows."""
        wins = incoming_wins(columns, "t", "s", cursor_in_target=cursor_in_target)
        key = same_key(columns, "t", "s")
        sql = (
            f"WITH s AS ({latest_per_key(columns, 'incoming')}) "
            f"SELECT t.* FROM target AS t WHERE NOT EXISTS (SELECT 1 FROM s WHERE {key} AND {wins}) "
            "UNION ALL BY NAME "
            f"SELECT s.* FROM s WHERE NOT EXISTS (SELECT 1 FROM target AS t WHERE {key} AND NOT {wins})"
        )
        yield from self._read(sql, target=target)

    def _read(self, sql: str, target: ds.Dataset | None = None) -> Iterator[pa.RecordBatch]:
        with self._engine(target) as con:
            try:
                reader = con.sql(sql).to_arrow_reader(BATCH_ROWS)
                for batch in reader:
                    yield align(batch, self.schema)
            except (duckdb.Error, pa.ArrowException) as exc:
                raise WarehouseError(f"merging the run's rows failed in DuckDB: {exc}") from exc

    @contextlib.contextmanager
    def _engine(self, target: ds.Dataset | None = None) -> Iterator[duckdb.DuckDBPyConnection]:
        spill = self.directory / "spill"
        spill.mkdir(exist_ok=True)
        try:
            con = duckdb.connect(
                ":memory:",
                config={
                    "python_enable_replacements": False,
                    "autoinstall_known_extensions": False,
                    "autoload_known_extensions": False,
                    "threads": self._limits.threads,
                    "memory_limit": self._limits.memory_limit,
                    "temp_directory": str(spill),
                    # The ordinal decides ties, not the order of results; not keeping it saves memory.
                    "preserve_insertion_order": False,
                },
            )
        except duckdb.Error as exc:
            raise WarehouseError(f"could not open DuckDB to merge the run's rows: {exc}") from exc
        try:
            con.execute("SET TimeZone = 'UTC'")
            con.register("incoming", ds.dataset(self._file, format="parquet"))
            if target is not None:
                con.register("target", target)
            yield con
        finally:
            con.close()


@contextlib.contextmanager
def spooled(root: Path, run_id: str, schema: pa.Schema, limits: EngineLimits) -> Iterator[Spool]:
    """A fresh spool for one run under `root`, removed when the body ends."""
    scratch = root / SCRATCH
    _sweep(scratch)
    directory = scratch / run_id
    shutil.rmtree(directory, ignore_errors=True)  # left by an attempt that was killed
    directory.mkdir(parents=True)
    try:
        yield Spool(directory, schema, limits)
    finally:
        shutil.rmtree(directory, ignore_errors=True)


def _sweep(scratch: Path) -> None:
    """Remove spools that no load has touched for a day: their loaders died and nobody came back."""
    if not scratch.is_dir():
        return
    cutoff = time.time() - STALE_AFTER
    for entry in scratch.iterdir():
        with contextlib.suppress(OSError):
            if entry.stat().st_mtime < cutoff:
                shutil.rmtree(entry, ignore_errors=True)
