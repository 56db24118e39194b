"""Datasets: the tenant's warehouse tables and their lineage.

A synced table is recorded by its last successful run (source, primary key, finish time); a
silver, gold or uploaded table by the loader's `DatasetRecord` (the tables it was built from, its
SQL, its file). Whichever wrote a table last owns its row: a table replaced by an upload is no
longer the synced one, and the other way round.
"""

from __future__ import annotations

import asyncpg
from lakegate.catalog.database import Connection
from lakegate.catalog.json_sql import array_json, columns_array_json, instant_json, or_null, value_json
from lakegate.catalog.paging import Window
from lakegate.catalog.readers import Readers
from lakegate.catalog.runs import RunRecord, columns_json
from lakegate.common.contracts.catalog import Dataset, DatasetList
from lakegate.common.contracts.runs import ColumnMapping, TableRef
from lakegate.common.contracts.transforms import DatasetRecord
from lakegate.common.errors import InvalidInput
from lakegate.common.names import LAYERS, tenant_catalog
from lakegate.common.rpc import Encoded

#: Every column a dataset's owner sets; an upsert replaces all of them, so no stale lineage survives.
_UPSERT = """
    INSERT INTO datasets (tenant_id, target_catalog, target_schema, target_name, kind, connection_id, source_table,
                          row_count, columns, keys, upstream, definition, file_name, last_run_id, last_synced_at,
                          updated_at)
    VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, coalesce($16, now()))
    ON CONFLICT (tenant_id, target_catalog, target_schema, target_name) DO UPDATE
       SET kind = excluded.kind, connection_id = excluded.connection_id, source_table = excluded.source_table,
           row_count = excluded.row_count, columns = excluded.columns, keys = excluded.keys,
           upstream = excluded.upstream, definition = excluded.definition, file_name = excluded.file_name,
           last_run_id = excluded.last_run_id, last_synced_at = excluded.last_synced_at,
           updated_at = excluded.updated_at
"""


async def _table_rows(conn: Connection, run: RunRecord) -> int | None:
    """The target's row count after the run, when the catalog can know it without asking the warehouse.

    A full run wrote the whole table; an incremental one appended its rows to a count known before;
    a merge updated an unknown share of its rows, so the table's count is unknown (None).
    """
    if run.sync_mode == "full":
        return run.row_count
    if run.sync_mode == "merge" or run.row_count is None:
        return None
    before = await conn.fetchrow(
        """
        SELECT kind, row_count FROM datasets
         WHERE tenant_id = $1 AND target_catalog = $2 AND target_schema = $3 AND target_name = $4
        """,
        run.tenant_id,
        run.target.catalog,
        run.target.schema_name,
        run.target.name,
    )
    if before is None:  # the first sync of the table: it holds what the run wrote
        return run.row_count
    if before["kind"] != "synced" or before["row_count"] is None:
        return None
    return int(before["row_count"]) + run.row_count


async def record_dataset(conn: Connection, run: RunRecord) -> None:
    """Upsert the lineage of a succeeded run's target, in the caller's transaction."""
    rows = await _table_rows(conn, run)
    await conn.execute(
        _UPSERT,
        run.tenant_id,
        run.target.catalog,
        run.target.schema_name,
        run.target.name,
        "synced",
        run.connection_id,
        run.source_table,
        rows,
        columns_json(run.columns) or [],
        run.primary_key or [],
        [],
        None,
        None,
        run.run_id,
        run.finished_at,
        run.finished_at,
    )


def check_record(record: DatasetRecord) -> None:
    """Refuse a record whose tables lie outside its tenant's catalog or layers: it would forge lineage."""
    catalog = tenant_catalog(record.tenant_id)
    for ref in (record.target, *record.upstream):
        if ref.catalog != catalog or ref.schema_name not in LAYERS:
            raise InvalidInput(
                f"dataset record for {record.target} names table {ref}, which is not in tenant "
                f"{record.tenant_id}'s catalog {catalog} (layers {', '.join(LAYERS)}); the loader must only "
                "record tables of the tenant it worked for"
            )


def _dataset(row: asyncpg.Record) -> Dataset:
    return Dataset(
        target=TableRef(catalog=row["target_catalog"], schema_name=row["target_schema"], name=row["target_name"]),
        kind=row["kind"],
        connection_id=row["connection_id"],
        source_table=row["source_table"],
        row_count=row["row_count"],
        columns=[ColumnMapping.model_validate(c) for c in row["columns"]],
        keys=row["keys"],
        upstream=[TableRef.model_validate(ref) for ref in row["upstream"]],
        definition=row["definition"],
        file_name=row["file_name"],
        last_run_id=row["last_run_id"],
        last_synced_at=row["last_synced_at"],
        updated_at=row["updated_at"],
    )


class DatasetStore:
    """The `datasets` table."""

    def __init__(self, pool: asyncpg.Pool) -> None:
        self._pool = pool

    async def record(self, record: DatasetRecord) -> None:
        """Upsert a silver, gold or uploaded table as the loader reported it; a redelivery writes the same row."""
        check_record(record)
        await self._pool.execute(
            _UPSERT,
            record.tenant_id,
            record.target.catalog,
            record.target.schema_name,
            record.target.name,
            record.kind,
            None,
            None,
            record.row_count,
            columns_json(record.columns),
            [],
            [ref.model_dump(mode="json") for ref in record.upstream],
            record.definition,
            record.file_name,
            None,
            None,
            None,
        )

    async def of_tenant(self, tenant_id: str, window: Window) -> tuple[list[Dataset], int | None]:
        """A page of the tenant's datasets: bronze, then silver, then gold, each by name."""
        rows = await self._pool.fetch(
            """
            SELECT * FROM datasets WHERE tenant_id = $1
             ORDER BY array_position($2::text[], target_schema), target_schema, target_name, target_catalog
             LIMIT $3 OFFSET $4
            """,
            tenant_id,
            list(LAYERS),
            window.fetch,
            window.offset,
        )
        page, next_offset = window.cut(rows)
        return [_dataset(row) for row in page], next_offset


_COLUMNS_JSON = columns_array_json("d.columns")
_UPSTREAM_JSON = array_json(
    "d.upstream",
    """'{"version":' || coalesce(x->>'version', '1') || ',"catalog":' || to_json(x->>'catalog')
    || ',"schema_name":' || to_json(x->>'schema_name') || ',"name":' || to_json(x->>'name') || '}'""",
)
_KEYS_JSON = array_json("d.keys", "to_json(x)::text", of_text=True)
_DATASET_JSON = f"""
    '{{"version":1,"target":{{"version":1,"catalog":' || to_json(d.target_catalog)
    || ',"schema_name":' || to_json(d.target_schema) || ',"name":' || to_json(d.target_name)
    || '}},"connection_id":' || {value_json("d.connection_id")} || ',"source_table":' || {value_json("d.source_table")}
    || ',"row_count":' || coalesce(d.row_count::text, 'null') || ',"columns":' || {_COLUMNS_JSON}
    || ',"last_run_id":' || {value_json("d.last_run_id")} || ',"updated_at":' || {instant_json("d.updated_at")}
    || ',"kind":' || to_json(d.kind) || ',"upstream":' || {_UPSTREAM_JSON} || ',"keys":' || {_KEYS_JSON}
    || ',"definition":' || {value_json("d.definition")}
    || ',"last_synced_at":' || {or_null(instant_json("d.last_synced_at"))}
    || ',"file_name":' || {value_json("d.file_name")} || '}}'
"""
#: A page of tenant $1's datasets ($3 of them from offset $4, ordered by the layers of $2) as the JSON
#: of `DatasetList`: byte for byte what `DatasetList(...).model_dump_json()` writes (test_dataset_listing.py).
#: `n` numbers the tenant's datasets from 1 in listing order; the page is read with one row more, to
#: know whether another page follows.
_PAGE_JSON = f"""
    SELECT '{{"version":1,"datasets":['
        || coalesce(string_agg({_DATASET_JSON}, ',' ORDER BY d.n) FILTER (WHERE d.n <= $4 + $3), '')
        || '],"next_offset":' || CASE WHEN count(*) > $3 THEN ($4 + $3)::text ELSE 'null' END || '}}'
    FROM (
        SELECT *, row_number() OVER (
            ORDER BY array_position($2::text[], target_schema), target_schema, target_name, target_catalog
        ) AS n
        FROM datasets WHERE tenant_id = $1
        ORDER BY n LIMIT $3 + 1 OFFSET $4
    ) AS d
"""


class DatasetListings:
    """`datasets.list`, as the JSON PostgreSQL writes (one statement on the readers), no model per row."""

    def __init__(self, readers: Readers) -> None:
        self._readers = readers

    async def page(self, tenant_id: str, window: Window) -> Encoded[DatasetList]:
        """A page of the tenant's datasets: bronze, then silver, then gold, each by name."""
        text = await self._readers.fetchval(_PAGE_JSON, tenant_id, list(LAYERS), window.limit, window.offset)
        assert isinstance(text, str)  # an aggregate over no rows still writes the envelope
        return Encoded(text.encode())
