"""The audit log: one row per MCP tool call, as the edge reported it, stored once per record id.

The edge sends records in batches (`AuditRecords`); each batch is one INSERT, so the catalog
writes once per batch, not once per call. The batch goes to PostgreSQL as one JSON text that
`json_to_recordset` unpacks (pydantic-core writes it in one call): as nine arrays, asyncpg
encoded every element, each record's arguments through the stdlib `json`, and that INSERT was a
fifth of the catalog's CPU while the edge served ~800 listings a second (bench/README.md, issue
14's fifth round). A batch holding a naive `at` or a non-finite `duration_ms`, which JSON would
not carry as the arrays do, is stored through the arrays.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence

import asyncpg
from lakegate.catalog.paging import Window
from lakegate.common.contracts.audit import AuditRecord
from lakegate.common.errors import InvalidInput
from lakegate.common.names import check_tenant_id
from pydantic import TypeAdapter

log = logging.getLogger(__name__)

_RECORDS = TypeAdapter(list[AuditRecord])
_INSERT_JSON = """
    INSERT INTO audit (id, tenant_id, actor, tool, arguments, outcome, error_code, duration_ms, at)
    SELECT r.id, r.tenant_id, r.actor, r.tool, r.arguments, r.outcome, r.error_code, r.duration_ms, r.at
      FROM json_to_recordset($1::json) AS r(id text, tenant_id text, actor text, tool text, arguments jsonb,
                                            outcome text, error_code text, duration_ms float8, at timestamptz)
    ON CONFLICT (id) DO NOTHING
"""
_INSERT_ARRAYS = """
    INSERT INTO audit (id, tenant_id, actor, tool, arguments, outcome, error_code, duration_ms, at)
    SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::jsonb[], $6::text[],
                         $7::text[], $8::float8[], $9::timestamptz[])
    ON CONFLICT (id) DO NOTHING
"""


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


def refusal(records: Sequence[AuditRecord]) -> InvalidInput | None:
    """Why none of `records` can ever be stored (none names a valid tenant); None when one can."""
    first: InvalidInput | None = None
    for record in records:
        try:
            check_tenant_id(record.tenant_id)
        except InvalidInput as exc:
            first = first or exc
        else:
            return None
    return first


class AuditLog:
    """The `audit` table."""

    def __init__(self, pool: asyncpg.Pool) -> None:
        self._pool = pool

    async def record(self, record: AuditRecord) -> bool:
        """Store a record unless its id is already stored (a redelivery); True when it was new."""
        return await self.record_many([record]) == 1

    async def record_many(self, records: Sequence[AuditRecord]) -> int:
        """Store records in one statement, each unless its id is already stored; how many were new."""
        valid: list[AuditRecord] = []
        refused: InvalidInput | None = None
        for record in records:
            try:
                check_tenant_id(record.tenant_id)
            except InvalidInput as exc:
                refused = refused or exc
                log.error("dropped audit record %s of %s: %s", record.id, record.tool, exc)
                continue
            valid.append(record)
        if not valid:
            assert refused is not None
            raise refused  # nothing of the message can ever be stored
        records = valid
        if all(r.at.tzinfo is not None and math.isfinite(r.duration_ms) for r in records):
            status = await self._pool.execute(_INSERT_JSON, _RECORDS.dump_json(records).decode())
        else:
            status = await self._pool.execute(
                _INSERT_ARRAYS,
                [r.id for r in records],
                [r.tenant_id for r in records],
                [r.actor for r in records],
                [r.tool for r in records],
                # storable whoever sent them: the contract escapes NUL and lone surrogates
                [r.arguments for r in records],
                [r.outcome for r in records],
                [r.error_code for r in records],
                [r.duration_ms for r in records],
                [r.at for r in records],
            )
        return int(status.rsplit(" ", 1)[-1])

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
