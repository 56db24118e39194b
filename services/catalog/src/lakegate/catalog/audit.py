"""The audit log: one row per MCP tool call, as the edge reported it, stored once per record id."""

from __future__ import annotations

import asyncpg
from lakegate.catalog.paging import Window
from lakegate.common.contracts.audit import AuditRecord
from lakegate.common.names import check_tenant_id


def _record(row: asyncpg.Record) -> AuditRecord:
    return AuditRecord(
        id=row["id"],
        tenant_id=row["tenant_id"],
        actor=row["actor"],
        tool=row["tool"],
        arguments=row["arguments"],
        outcome=row["outcome"],
        error_code=row["error_code"],
        duration_ms=row["duration_ms"],
        at=row["at"],
    )


class AuditLog:
    """The `audit` table."""

    def __init__(self, pool: asyncpg.Pool) -> None:
        self._pool = pool

    async def record(self, record: AuditRecord) -> bool:
        """Store a record unless its id is already stored (a redelivery); True when it was new."""
        check_tenant_id(record.tenant_id)
        status = await self._pool.execute(
            """
            INSERT INTO audit (id, tenant_id, actor, tool, arguments, outcome, error_code, duration_ms, at)
            VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)
            ON CONFLICT (id) DO NOTHING
            """,
            record.id,
            record.tenant_id,
            record.actor,
            record.tool,
            record.arguments,  # storable whoever sent it: the contract escapes NUL and lone surrogates
            record.outcome,
            record.error_code,
            record.duration_ms,
            record.at,
        )
        return bool(status == "INSERT 0 1")

    async def of_tenant(self, tenant_id: str, window: Window) -> tuple[list[AuditRecord], int | None]:
        """A page of the tenant's records, newest call first."""
        rows = await self._pool.fetch(
            "SELECT * FROM audit WHERE tenant_id = $1 ORDER BY at DESC, id DESC LIMIT $2 OFFSET $3",
            tenant_id,
            window.fetch,
            window.offset,
        )
        page, next_offset = window.cut(rows)
        return [_record(row) for row in page], next_offset
