"""One measured read of a source table, in a process of its own: `python -m bench.probe PATH ...`.

The parent (`bench.extraction`) starts a fresh interpreter for every measurement, so a path's
peak memory is its own and not what an earlier path left behind. The probe prints one JSON line:
seconds of work (connecting included, interpreter start and imports not), rows, Arrow bytes,
resident memory when the work starts, and the process's RSS high-water mark when it ends.

Paths (all read the same table through the same read-only login):

    copy-psql        psql: COPY (SELECT * ...) TO STDOUT (FORMAT binary) > /dev/null; no decoding at all
    copy-asyncpg     asyncpg copy_from_query(..., format='binary') into a callable that discards
    copy-planned     as copy-asyncpg, but COPY of the extractor's own SELECT (its ::text casts, clamps)
    adbc-raw         ADBC PostgreSQL driver, SELECT *, Arrow batches discarded: the driver alone
    adbc-planned     ADBC, the extractor's SELECT, no conversion to the planned schema
    extractor        the extractor's worker path for a table read as one stream: source_snapshot,
                     resolve_table, then transfer → read_table (ADBC in a thread, convert, bound, queue)
                     into a staging writer that keeps nothing
    extractor-staged extractor, and the writer encodes every batch as staged parts (zstd Arrow IPC), no NATS
    extractor-files  extractor, and the writer writes every batch as the lakehouse's Parquet data files
                     (`DataFileStaging`, as a full sync with LAKEGATE_EXTRACTOR_LAKEHOUSE_DIR) in a temporary directory
    asyncpg-fetch    asyncpg cursor fetch of the extractor's SELECT, rows → Arrow, then its convert
    ranges-2/4       extractor, but the table split by the extractor's own block ranges (ctid, TID Range Scans)
                     into 2 or 4 reads at once in this one process, as that many replicas would read them
    extractor-files-2  extractor-files, but in 2 block ranges read at once, each writing its own data files
"""

from __future__ import annotations

import argparse
import asyncio
import json
import resource
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from dataclasses import asdict, dataclass, replace
from datetime import UTC, datetime
from pathlib import Path

import asyncpg
import psutil
import pyarrow as pa
from adbc_driver_postgresql import StatementOptions
from lakegate.common.contracts.runs import StagedParts, TableRef
from lakegate.common.contracts.sources import SourceAddress, SourceInfo
from lakegate.common.names import SourceTableName
from lakegate.common.staging import DataFileStaging, MemoryStaging, PartWriter, encode_bounded
from lakegate.devstack.postgres import server_binaries
from lakegate.extractor.config import ExtractorSettings
from lakegate.extractor.connections import connect
from lakegate.extractor.introspection import describe_source, resolve_table
from lakegate.extractor.logins import Credentials, Login
from lakegate.extractor.query import TableQuery
from lakegate.extractor.ranges import block_ranges
from lakegate.extractor.reader import connect_adbc, conninfo
from lakegate.extractor.snapshots import source_snapshot
from lakegate.extractor.transfer import transfer
from pydantic import SecretStr

from bench.memory import SAMPLE_INTERVAL, high_water

SOURCE = "source 'bench'"
#: Rows per asyncpg fetch in the row path: bounded, like the extractor's batches.
FETCH_ROWS = 50_000


@dataclass
class Tally:
    """What one path read."""

    rows: int = 0
    arrow_bytes: int = 0
    staged_bytes: int = 0
    child_peak_rss: int = 0

    def add(self, batch: pa.RecordBatch) -> None:
        self.rows += batch.num_rows
        self.arrow_bytes += batch.nbytes


@dataclass(frozen=True)
class Target:
    """The table to read and the login to read it with."""

    login: Login
    table: str
    settings: ExtractorSettings

    @property
    def name(self) -> SourceTableName:
        return SourceTableName("public", self.table)

    @property
    def select_all(self) -> str:
        return f'SELECT * FROM public."{self.table}"'

    async def planned(self) -> TableQuery:
        """The extractor's plan for the table, resolved as the worker resolves it."""
        async with connect(self.login, self.settings, source="bench") as conn:
            return (await resolve_table(conn, self.name, SOURCE)).query

    async def asyncpg(self) -> asyncpg.Connection:
        address = self.login.address
        return await asyncpg.connect(
            host=address.host,
            port=address.port,
            user=address.user,
            password=self.login.password.get_secret_value(),
            database=address.database,
        )


async def _discard(_chunk: bytes) -> None:
    """COPY output that goes nowhere."""


async def copy_psql(target: Target, tally: Tally) -> None:
    address = target.login.address
    command = [
        str(server_binaries() / "psql"),
        "-X",
        "-q",
        "-v",
        "ON_ERROR_STOP=1",
        "-h",
        address.host,
        "-p",
        str(address.port),
        "-U",
        address.user,
        "-d",
        address.database,
        "-c",
        f"COPY ({target.select_all}) TO STDOUT (FORMAT binary)",
    ]
    env = {"PGPASSWORD": target.login.password.get_secret_value(), "PATH": "/usr/bin:/bin"}
    proc = await asyncio.create_subprocess_exec(*command, stdout=asyncio.subprocess.DEVNULL, env=env)
    # psql's own peak: its high-water mark, read until it exits (the last reading is a lower bound).
    while True:
        tally.child_peak_rss = max(tally.child_peak_rss, high_water(proc.pid) or 0)
        try:
            await asyncio.wait_for(proc.wait(), SAMPLE_INTERVAL)
            break
        except TimeoutError:
            continue
    if proc.returncode != 0:
        raise RuntimeError(f"psql exited with code {proc.returncode}")


async def _copy(target: Target, sql: str) -> None:
    conn = await target.asyncpg()
    try:
        await conn.copy_from_query(sql, output=_discard, format="binary")
    finally:
        await conn.close()


async def copy_asyncpg(target: Target, tally: Tally) -> None:
    await _copy(target, target.select_all)


async def copy_planned(target: Target, tally: Tally) -> None:
    await _copy(target, (await target.planned()).sql)


def _adbc_stream(target: Target, sql: str, tally: Tally) -> None:
    uri = conninfo(target.login, target.settings)
    with connect_adbc(uri, target.settings.adbc_driver) as conn, conn.cursor() as cursor:
        cursor.adbc_statement.set_options(
            **{StatementOptions.BATCH_SIZE_HINT_BYTES.value: str(target.settings.batch_bytes)}
        )
        cursor.execute(sql)
        for batch in cursor.fetch_record_batch():
            tally.add(batch)


async def adbc_raw(target: Target, tally: Tally) -> None:
    await asyncio.to_thread(_adbc_stream, target, target.select_all, tally)


async def adbc_planned(target: Target, tally: Tally) -> None:
    sql = (await target.planned()).sql
    await asyncio.to_thread(_adbc_stream, target, sql, tally)


class DiscardingWriter:
    """A staging writer that keeps nothing: it counts, and with `encode` turns every batch into parts as
    `JetStreamStaging` does (zstd Arrow IPC, bounded) before dropping them, so no NATS is involved."""

    def __init__(self, tally: Tally, max_part_bytes: int, *, encode: bool) -> None:
        self._tally, self._max, self._encode = tally, max_part_bytes, encode
        self._parts = self._bytes = 0

    async def write(self, batch: pa.RecordBatch) -> None:
        self._tally.add(batch)
        if self._encode:
            parts = encode_bounded(batch, self._max)
            size = sum(map(len, parts))
            self._parts += len(parts)
            self._bytes += size
            self._tally.staged_bytes += size

    async def close(self) -> StagedParts:
        return StagedParts(store="memory", location="discarded", parts=self._parts, bytes=self._bytes)


def _credentials(login: Login) -> Credentials:
    """What the catalog would hand the extractor for a source named `bench`."""
    source = SourceInfo(
        connection_id="bench", tenant_id="bench", name="bench", address=login.address, created_at=datetime.now(UTC)
    )
    return Credentials(source, login)


async def _no_progress(_rows: int) -> None:
    """Progress goes nowhere: the probe measures the read."""


class CountingWriter:
    """Counts every batch on its way to another staging writer."""

    def __init__(self, tally: Tally, writer: PartWriter) -> None:
        self._tally, self._writer = tally, writer

    async def write(self, batch: pa.RecordBatch) -> None:
        self._tally.add(batch)
        await self._writer.write(batch)

    async def close(self) -> StagedParts:
        staged = await self._writer.close()
        self._tally.staged_bytes += staged.bytes
        return staged


async def _extract(
    target: Target,
    tally: Tally,
    *,
    encode: bool,
    ranges: int = 0,
    files: DataFileStaging | None = None,
) -> None:
    """What `Extractor.extract` does for a full run, from the credentials on, with a writer that keeps nothing.

    `ranges` > 0 reads the extractor's own block ranges (`ranges.block_ranges`) at once in this
    process, as that many replicas would read them; 0 reads one stream, as `Extractor._in_one` does.
    """
    settings, credentials = target.settings, _credentials(target.login)
    async with source_snapshot(credentials, settings) as snapshot:
        relation = await resolve_table(snapshot.conn, target.name, describe_source(credentials))
        bounds = block_ranges(relation.pages, ranges) if ranges else []
        queries = [relation.query.where(bound.sql) for bound in bounds] or [relation.query]

        async def read(index: int, query: TableQuery) -> None:
            writer: PartWriter = DiscardingWriter(tally, settings.max_part_bytes, encode=encode)
            if files is not None:
                table = TableRef(catalog="tenant_bench", schema_name="bronze", name=target.name.table)
                writer = CountingWriter(tally, await files.file_writer("bench", f"r{index}", query.schema, table))
            await transfer(target.login, snapshot.id, query, writer, settings, cursor=None, report=_no_progress)

        await asyncio.gather(*(read(index, query) for index, query in enumerate(queries)))


async def extractor(target: Target, tally: Tally) -> None:
    await _extract(target, tally, encode=False)


async def extractor_staged(target: Target, tally: Tally) -> None:
    await _extract(target, tally, encode=True)


async def extractor_files(target: Target, tally: Tally) -> None:
    with tempfile.TemporaryDirectory(prefix="lakegate-bench-") as lakehouse:
        await _extract(target, tally, encode=False, files=DataFileStaging(MemoryStaging(), Path(lakehouse)))


async def extractor_files_2(target: Target, tally: Tally) -> None:
    with tempfile.TemporaryDirectory(prefix="lakegate-bench-") as lakehouse:
        files = DataFileStaging(MemoryStaging(), Path(lakehouse))
        await _extract(target, tally, encode=False, ranges=2, files=files)


async def ranges_2(target: Target, tally: Tally) -> None:
    await _extract(target, tally, encode=False, ranges=2)


async def ranges_4(target: Target, tally: Tally) -> None:
    await _extract(target, tally, encode=False, ranges=4)


def _as_text_where_decoded(query: TableQuery) -> TableQuery:
    """The extractor's query, with the columns it finishes on the client (uuid, json) read as text."""
    plans = tuple(replace(plan, select=plan.text_expression("{c}"), decode=None) for plan in query.plans)
    return replace(query, plans=plans)


def _read_as(plan_select: str, arrow_type: pa.DataType) -> pa.DataType:
    """The type asyncpg's values arrive as: text for columns selected as ::text."""
    return pa.string() if plan_select.endswith("::pg_catalog.text") else arrow_type


async def asyncpg_fetch(target: Target, tally: Tally) -> None:
    conn = await target.asyncpg()
    try:
        async with conn.transaction(isolation="repeatable_read", readonly=True):
            query = _as_text_where_decoded((await resolve_table(conn, target.name, SOURCE)).query)
            types = [_read_as(plan.select, plan.arrow_type) for plan in query.plans]
            cursor = await conn.cursor(query.sql)
            while rows := await cursor.fetch(FETCH_ROWS):
                by_column = zip(*rows, strict=True)
                columns = [pa.array(values, type=kind) for values, kind in zip(by_column, types, strict=True)]
                raw = pa.RecordBatch.from_arrays(columns, names=[plan.name for plan in query.plans])
                tally.add(query.convert(raw))
    finally:
        await conn.close()


PATHS: dict[str, Callable[[Target, Tally], Awaitable[None]]] = {
    "copy-psql": copy_psql,
    "copy-asyncpg": copy_asyncpg,
    "copy-planned": copy_planned,
    "adbc-raw": adbc_raw,
    "adbc-planned": adbc_planned,
    "extractor": extractor,
    "extractor-staged": extractor_staged,
    "extractor-files": extractor_files,
    "extractor-files-2": extractor_files_2,
    "asyncpg-fetch": asyncpg_fetch,
    "ranges-2": ranges_2,
    "ranges-4": ranges_4,
}


@dataclass(frozen=True)
class ProbeResult:
    """One line of the probe's output."""

    path: str
    seconds: float
    rows: int
    arrow_bytes: int
    staged_bytes: int
    cpu_seconds: float
    start_rss: int
    peak_rss: int
    child_peak_rss: int | None


def _cpu_seconds() -> float:
    """CPU used by this process and the children it waited for (psql), in seconds."""
    return sum(
        usage.ru_utime + usage.ru_stime
        for usage in (resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN))
    )


async def measure(path: str, target: Target) -> ProbeResult:
    """Run one path once and say how long it took and how much memory the process held at most."""
    tally = Tally()
    start_rss = psutil.Process().memory_info().rss
    cpu_started, started = _cpu_seconds(), time.perf_counter()
    await PATHS[path](target, tally)
    seconds, cpu_seconds = time.perf_counter() - started, _cpu_seconds() - cpu_started
    return ProbeResult(
        path=path,
        seconds=seconds,
        rows=tally.rows,
        arrow_bytes=tally.arrow_bytes,
        staged_bytes=tally.staged_bytes,
        cpu_seconds=cpu_seconds,
        start_rss=start_rss,
        peak_rss=high_water() or 0,
        child_peak_rss=tally.child_peak_rss or None,
    )


def main(argv: list[str] | None = None) -> None:
    """Parse the arguments, measure once, print the result as JSON."""
    parser = argparse.ArgumentParser(prog="python -m bench.probe", description=__doc__.splitlines()[0])
    parser.add_argument("path", choices=sorted(PATHS))
    parser.add_argument("--host", required=True)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--database", required=True)
    parser.add_argument("--user", required=True)
    parser.add_argument("--table", required=True)
    args = parser.parse_args(argv)
    # The password comes on stdin, so it shows in no process listing.
    password = sys.stdin.readline().rstrip("\n")
    login = Login(
        SourceAddress(host=args.host, port=args.port, database=args.database, user=args.user), SecretStr(password)
    )
    # The bench's source runs on this machine, which the extractor refuses unless told otherwise.
    settings = ExtractorSettings(allow_private_sources=True)
    result = asyncio.run(measure(args.path, Target(login, args.table, settings)))
    print(json.dumps(asdict(result)))


if __name__ == "__main__":
    main()
