"""One consistent view of a source: a REPEATABLE READ READ ONLY transaction and the snapshot it exports.

The coordinator of an extraction opens it and exports its snapshot; the ADBC reader (`reader.py`)
and the range workers of a large table adopt that snapshot, so every reader sees the same rows. The
snapshot lives only as long as the transaction that exported it: a range worker first adopts the
coordinator's snapshot and then exports its own (the same view), which its reader adopts, so a
coordinator that stops after that does not pull the view from under a range being read.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass

import asyncpg
from lakegate.common.errors import SourceError
from lakegate.extractor.config import ExtractorSettings
from lakegate.extractor.connections import connect, where
from lakegate.extractor.logins import Credentials
from lakegate.extractor.reader import SNAPSHOT_ID


class SnapshotGone(SourceError):
    """The snapshot to adopt has ended: its coordinator stopped, and its redelivery starts over with a new one."""


@dataclass(frozen=True)
class SourceSnapshot:
    """An open read-only transaction on the source, the id of its exported snapshot, and which
    transactions it sees (`pg_current_snapshot()` as text; None before PostgreSQL 13)."""

    conn: asyncpg.Connection
    id: str
    visible: str | None = None


@contextlib.asynccontextmanager
async def source_snapshot(
    credentials: Credentials, settings: ExtractorSettings, *, adopt: str | None = None
) -> AsyncIterator[SourceSnapshot]:
    """Open a REPEATABLE READ READ ONLY transaction (in the snapshot `adopt`, when given) and export its snapshot."""
    if adopt is not None and not SNAPSHOT_ID.match(adopt):
        raise SnapshotGone(f"{adopt[:40]!r} is not a PostgreSQL snapshot id")
    async with (
        connect(credentials.login, settings, source=credentials.source.name) as conn,
        conn.transaction(isolation="repeatable_read", readonly=True),
    ):
        if adopt is not None:
            try:
                await conn.execute(f"SET TRANSACTION SNAPSHOT '{adopt}'")
            except asyncpg.InvalidParameterValueError as exc:
                raise SnapshotGone(
                    f"snapshot {adopt} at {where(credentials.login.address)} has ended: the extraction that "
                    "exported it stopped and starts over with a new one"
                ) from exc
        exported = await conn.fetchrow(
            "SELECT pg_catalog.pg_export_snapshot() AS id, "
            "pg_catalog.current_setting('server_version_num')::int >= 130000 AS has_pg_snapshot"
        )
        assert exported is not None  # one row, always
        visible = None
        if exported["has_pg_snapshot"]:
            visible = await conn.fetchval("SELECT pg_catalog.pg_current_snapshot()::text")
        yield SourceSnapshot(conn, exported["id"], visible)
