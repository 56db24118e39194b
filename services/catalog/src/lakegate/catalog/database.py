"""The catalog's connection pool (jsonb as Python values, schema migrated before first use) and its readers."""

from __future__ import annotations

import contextlib
import json
from collections.abc import AsyncIterator
from urllib.parse import urlsplit

import asyncpg
from asyncpg.pool import PoolConnectionProxy
from lakegate.catalog.config import CatalogSettings
from lakegate.catalog.readers import Readers
from lakegate.catalog.schema import migrate
from lakegate.common.errors import Unavailable

#: How the readers' connections name themselves in `pg_stat_activity`.
READERS_APPLICATION = "lakegate-catalog-readers"
#: A connection of the pool or a plain one: what the functions that run inside a transaction take.
Connection = asyncpg.Connection | PoolConnectionProxy


async def _init(conn: asyncpg.Connection) -> None:
    await conn.set_type_codec("jsonb", encoder=json.dumps, decoder=json.loads, schema="pg_catalog")


async def _keep_session(conn: asyncpg.Connection) -> None:
    # asyncpg resets a connection on every release (advisory unlock, CLOSE ALL, UNLISTEN, RESET ALL):
    # one more round trip per call, a third of the catalog's CPU on a listing. The catalog leaves no
    # session state behind: no SET, LISTEN or cursors, and its one advisory lock is released by the
    # migration itself (the scheduler's is on a connection of its own, outside the pool).
    return None


def describe_dsn(dsn: str) -> str:
    """`host:port/database` of a DSN, without its user or password, for messages."""
    parts = urlsplit(dsn)
    return f"{parts.hostname or 'localhost'}:{parts.port or 5432}{parts.path or '/'}"


@contextlib.asynccontextmanager
async def open_pool(settings: CatalogSettings) -> AsyncIterator[asyncpg.Pool]:
    """A migrated pool on the catalog database, closed on exit."""
    dsn = settings.database_url.get_secret_value()
    try:
        pool = await asyncpg.create_pool(
            dsn,
            min_size=settings.pool_min_size,
            max_size=settings.pool_max_size,
            init=_init,
            reset=_keep_session,
        )
    except (OSError, asyncpg.PostgresError) as exc:
        # The error of asyncpg may quote the DSN; only its host and database are repeated here.
        raise Unavailable(
            f"cannot open the catalog database {describe_dsn(dsn)} ({type(exc).__name__}): check that it runs and "
            "that LAKEGATE_CATALOG_DATABASE_URL names it with a user allowed to create tables"
        ) from None
    try:
        async with pool.acquire() as conn:
            await migrate(conn)
        yield pool
    finally:
        await pool.close()


@contextlib.asynccontextmanager
async def open_readers(settings: CatalogSettings) -> AsyncIterator[Readers]:
    """The connections of the hot listings (`Readers`), opened when first used, closed on exit."""
    dsn = settings.database_url.get_secret_value()

    async def connect() -> asyncpg.Connection:
        try:
            return await asyncpg.connect(dsn, server_settings={"application_name": READERS_APPLICATION})
        except (OSError, asyncpg.PostgresError) as exc:
            raise Unavailable(
                f"cannot reach the catalog database {describe_dsn(dsn)} ({type(exc).__name__}); retry shortly"
            ) from None

    readers = Readers(connect, settings.read_connections)
    try:
        yield readers
    finally:
        await readers.close()
