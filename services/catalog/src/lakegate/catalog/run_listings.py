"""`runs.get` and `runs.list` answered with the JSON PostgreSQL writes for each run, no model per row.

A run's `RunView` JSON is written by PostgreSQL up to its last two fields, byte for byte what
`RunRecord.from_row(row).view().model_dump_json()` writes (tests/test_run_listing.py): the same
rules as `RunRecord.view` (a failed or cancelled run shows 0 rows and no cursor, rows fall back to
the extracted count), jsonb arrays rebuilt element by element (jsonb's text has spaces pydantic
does not write), timestamps as pydantic writes them. The two floats, `duration_seconds` and
`rows_per_second`, are computed here from the whole microseconds PostgreSQL gives (as
`RunRecord.duration` computes them from the datetimes) and written by pydantic-core, so no float
is ever formatted by PostgreSQL, whose float text differs (`2` for `2.0`). This needs
PostgreSQL 14 or later, where `extract(epoch ...)` is exact (numeric). Every read asks
PostgreSQL on the readers' connections: nothing is cached.
"""

from __future__ import annotations

import asyncpg
import pydantic_core
from lakegate.catalog.json_sql import array_json, columns_array_json, instant_json, or_null, value_json
from lakegate.catalog.paging import Window
from lakegate.catalog.readers import Readers
from lakegate.catalog.runs import run_not_found
from lakegate.common.contracts.catalog import RunList
from lakegate.common.contracts.runs import RunView
from lakegate.common.rpc import Encoded

_UNFINISHED = "r.status IN ('failed', 'cancelled')"


_SCHEMA_CHANGES_JSON = array_json(
    "r.schema_changes",
    f"""'{{"version":' || coalesce(x->>'version', '1') || ',"column":' || to_json(x->>'column')
    || ',"change":' || to_json(x->>'change') || ',"before":' || {value_json("x->>'before'")}
    || ',"after":' || {value_json("x->>'after'")} || '}}'""",
)
_CURSOR_JSON = f"""CASE WHEN r.cursor IS NULL OR jsonb_typeof(r.cursor) = 'null' OR {_UNFINISHED} THEN 'null' ELSE
    '{{"version":' || coalesce(r.cursor->>'version', '1') || ',"column":' || to_json(r.cursor->>'column')
    || ',"value":' || to_json(r.cursor->>'value') || ',"source_type":' || to_json(r.cursor->>'source_type')
    || ',"snapshot":' || {value_json("r.cursor->>'snapshot'")} || '}}'
END"""
_ERROR_JSON = """CASE WHEN r.error_code IS NULL THEN 'null' ELSE
    '{"version":1,"code":' || to_json(r.error_code) || ',"message":' || to_json(coalesce(r.error_message, ''))
    || ',"transient":' || CASE WHEN r.error_transient THEN 'true' ELSE 'false' END || '}'
END"""
#: Each run as its `RunView` JSON up to `schedule_id` (`head`), and what its floats are computed from.
_COLUMNS = f"""
    '{{"version":1,"run_id":' || to_json(r.run_id) || ',"tenant_id":' || to_json(r.tenant_id)
    || ',"connection_id":' || to_json(r.connection_id) || ',"source_table":' || to_json(r.source_table)
    || ',"target":{{"version":1,"catalog":' || to_json(r.target_catalog) || ',"schema_name":'
    || to_json(r.target_schema) || ',"name":' || to_json(r.target_name) || '}},"sync_mode":' || to_json(r.sync_mode)
    || ',"status":' || to_json(r.status) || ',"row_count":'
    || CASE WHEN {_UNFINISHED} THEN '0' ELSE coalesce(coalesce(r.row_count, r.staged_rows)::text, 'null') END
    || ',"bytes":' || coalesce(r.bytes::text, 'null') || ',"columns":' || {columns_array_json("r.columns")}
    || ',"error":' || {_ERROR_JSON} || ',"created_at":' || {instant_json("r.created_at")}
    || ',"started_at":' || {or_null(instant_json("r.started_at"))}
    || ',"finished_at":' || {or_null(instant_json("r.finished_at"))} || ',"cursor":' || {_CURSOR_JSON}
    || ',"schema_changes":' || {_SCHEMA_CHANGES_JSON} || ',"rows_extracted":' || coalesce(r.staged_rows::text, 'null')
    || ',"deleted_rows":' || coalesce(r.deleted_rows::text, 'null')
    || ',"schedule_id":' || {value_json("r.schedule_id")}
    AS head,
    ((extract(epoch FROM r.finished_at) - extract(epoch FROM coalesce(r.started_at, r.created_at))) * 1000000)::bigint
    AS micros,
    CASE WHEN r.status = 'succeeded' THEN r.row_count END AS rows
"""
_ONE = f"SELECT {_COLUMNS} FROM runs AS r WHERE r.run_id = $1 AND r.tenant_id = $2"
_NEWEST = f"""
    SELECT {_COLUMNS} FROM runs AS r WHERE r.tenant_id = $1
     ORDER BY r.created_at DESC, r.run_id DESC LIMIT $2 OFFSET $3
"""
_NEWEST_OF_SOURCE = f"""
    SELECT {_COLUMNS} FROM runs AS r WHERE r.tenant_id = $1 AND r.connection_id = $2
     ORDER BY r.created_at DESC, r.run_id DESC LIMIT $3 OFFSET $4
"""


def _run_json(row: asyncpg.Record) -> bytes:
    """A run's whole `RunView` JSON: PostgreSQL's head, then the two floats as `RunRecord` computes them."""
    head, micros, rows = row
    duration = None if micros is None else max(0.0, micros / 10**6)
    throughput = None if rows is None or not duration else rows / duration
    return b"".join(
        (
            head.encode(),
            b',"duration_seconds":',
            pydantic_core.to_json(duration),
            b',"rows_per_second":',
            pydantic_core.to_json(throughput),
            b"}",
        )
    )


class RunListings:
    """`runs.get` and `runs.list` on the readers' connections."""

    def __init__(self, readers: Readers) -> None:
        self._readers = readers

    async def one(self, tenant_id: str, run_id: str) -> Encoded[RunView]:
        """One run of the tenant; NotFound for a missing run and another tenant's alike."""
        rows = await self._readers.fetch(_ONE, run_id, tenant_id)
        if not rows:
            raise run_not_found(run_id)
        return Encoded(_run_json(rows[0]))

    async def newest(self, tenant_id: str, connection_id: str | None, window: Window) -> Encoded[RunList]:
        """A page of the tenant's runs, newest first, of one source when `connection_id` is given."""
        if connection_id is None:
            rows = await self._readers.fetch(_NEWEST, tenant_id, window.fetch, window.offset)
        else:
            rows = await self._readers.fetch(_NEWEST_OF_SOURCE, tenant_id, connection_id, window.fetch, window.offset)
        page, next_offset = window.cut(rows)
        tail = b"null" if next_offset is None else str(next_offset).encode()
        return Encoded(b'{"version":1,"runs":[' + b",".join(map(_run_json, page)) + b'],"next_offset":' + tail + b"}")
