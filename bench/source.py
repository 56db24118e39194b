"""The source side of the benchmarks: a throwaway PostgreSQL cluster and the mixed-type table it holds.

The table has every common column type (and a nullable text), one `updated_at` for incremental
syncs, and is vacuumed and read once after loading, so no measurement pays for setting hint bits
or for a cold cache that the ones after it do not.
"""

from __future__ import annotations

import contextlib
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import asyncpg
from lakegate.devstack.ports import free_port
from lakegate.devstack.postgres import PASSWORD_ROLE, PostgresCluster

DATABASE = "bench_source"
READER = "bench_reader"
#: Not a secret: a throwaway cluster on loopback, deleted when the run ends.
READER_PASSWORD = "bench-reader-password"

MIXED_DDL = """
CREATE TABLE {table} (
    id bigint PRIMARY KEY,
    customer_id int NOT NULL,
    quantity smallint NOT NULL,
    note text NOT NULL,
    amount numeric(12, 2) NOT NULL,
    weight double precision NOT NULL,
    paid boolean NOT NULL,
    created_at timestamptz NOT NULL,
    local_time timestamp NOT NULL,
    ref uuid NOT NULL,
    attrs jsonb NOT NULL,
    comment text,
    updated_at timestamptz NOT NULL
);
INSERT INTO {table}
SELECT g,
       ((g * 7919) % 100000)::int,
       (g % 300)::smallint,
       'order ' || g,
       ((g * 37) % 1000000) / 100.0,
       g * 0.5,
       g % 3 = 0,
       timestamptz '2020-01-01 00:00:00+00' + g * interval '1 second',
       timestamp '2020-01-01 00:00:00' + g * interval '1 minute',
       md5(g::text)::uuid,
       jsonb_build_object('g', g, 'tag', 'näme', 'ok', g % 2 = 0),
       CASE WHEN g % 5 = 0 THEN NULL ELSE 'comment number ' || g END,
       timestamptz '2024-01-01 00:00:00+00'
FROM generate_series(1::bigint, {rows}) AS g;
"""

#: The columns of the mixed table and their PostgreSQL types, for the report.
MIXED_COLUMNS = (
    "id bigint",
    "customer_id int",
    "quantity smallint",
    "note text",
    "amount numeric(12,2)",
    "weight double precision",
    "paid boolean",
    "created_at timestamptz",
    "local_time timestamp",
    "ref uuid",
    "attrs jsonb",
    "comment text NULL (20% null)",
    "updated_at timestamptz",
)


def mixed_table(rows: int) -> str:
    """The name of the mixed table with `rows` rows."""
    return f"mixed_{rows}"


@dataclass(frozen=True)
class SourceDatabase:
    """Where the benchmark tables live, and the password login that reads them."""

    host: str
    port: int
    database: str
    user: str
    password: str
    admin_dsn: str

    @property
    def reader_dsn(self) -> str:
        return f"postgresql://{self.user}:{self.password}@{self.host}:{self.port}/{self.database}"


@contextlib.contextmanager
def source_cluster() -> Iterator[tuple[PostgresCluster, Path]]:
    """A non-durable PostgreSQL cluster on a free port in a directory of its own, removed afterwards."""
    with tempfile.TemporaryDirectory(prefix="lakegate-bench-pg-") as home:
        cluster = PostgresCluster(Path(home), free_port(), durable=False)
        cluster.start()
        try:
            yield cluster, Path(home)
        finally:
            cluster.stop()


async def prepare_database(cluster: PostgresCluster) -> SourceDatabase:
    """Create the source database and a read-only login that must give its password (as a real source would)."""
    admin = await asyncpg.connect(cluster.dsn())
    try:
        await admin.execute(f"CREATE DATABASE {DATABASE}")
        await admin.execute(f"CREATE ROLE {READER} LOGIN PASSWORD '{READER_PASSWORD}' IN ROLE {PASSWORD_ROLE}")
    finally:
        await admin.close()
    admin_dsn = cluster.dsn(DATABASE)
    conn = await asyncpg.connect(admin_dsn)
    try:
        await conn.execute(f"ALTER DEFAULT PRIVILEGES IN SCHEMA public GRANT SELECT ON TABLES TO {READER}")
    finally:
        await conn.close()
    return SourceDatabase(cluster.host, cluster.port, DATABASE, READER, READER_PASSWORD, admin_dsn)


async def create_mixed_table(source: SourceDatabase, rows: int) -> tuple[str, int]:
    """Create and warm the mixed table with `rows` rows; returns its name and its size on disk in bytes."""
    table = mixed_table(rows)
    conn = await asyncpg.connect(source.admin_dsn)
    try:
        await conn.execute(f"DROP TABLE IF EXISTS {table}")
        await conn.execute(MIXED_DDL.format(table=table, rows=int(rows)))
        # Sets hint bits and the visibility map now, so the first measured read does not write.
        await conn.execute(f"VACUUM (FREEZE, ANALYZE) {table}")
        await conn.copy_from_query(f"SELECT * FROM {table}", output=_discard, format="binary")
        size: int = await conn.fetchval("SELECT pg_catalog.pg_total_relation_size($1::regclass)", table)
    finally:
        await conn.close()
    return table, size


async def touch_rows(source: SourceDatabase, table: str, fraction: float) -> int:
    """Move `updated_at` forward on `fraction` of the rows (spread over the table); returns how many."""
    conn = await asyncpg.connect(source.admin_dsn)
    try:
        every = max(1, round(1 / fraction))
        status = await conn.execute(
            f"UPDATE {table} SET updated_at = pg_catalog.clock_timestamp(), note = note || '+' WHERE id % {every} = 0"
        )
        await conn.execute(f"VACUUM (ANALYZE) {table}")
    finally:
        await conn.close()
    return int(status.split()[-1])


async def server_version(source: SourceDatabase) -> str:
    """The source server's version, e.g. `15.18`."""
    conn = await asyncpg.connect(source.admin_dsn)
    try:
        version: str = await conn.fetchval("SELECT pg_catalog.current_setting('server_version')")
    finally:
        await conn.close()
    return version


async def _discard(_chunk: bytes) -> None:
    """COPY output that goes nowhere."""
