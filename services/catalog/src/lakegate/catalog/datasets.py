"""Datasets: which warehouse table came from which source table, as of its last successful run."""

from __future__ import annotations

import asyncpg
from lakegate.catalog.database import Connection
from lakegate.catalog.runs import RunRecord, columns_json
from lakegate.common.contracts.catalog import Dataset
from lakegate.common.contracts.runs import ColumnMapping, TableRef


async def record_dataset(conn: Connection, run: RunRecord) -> None:
    """Upsert the lineage of a succeeded run's target, in the caller's transaction."""
    await conn.execute(
        """
        INSERT INTO datasets (tenant_id, target_catalog, target_schema, target_name, connection_id, source_table,
                              row_count, columns, last_run_id, updated_at)
        VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, coalesce($10, now()))
        ON CONFLICT (tenant_id, target_catalog, target_schema, target_name) DO UPDATE
           SET connection_id = excluded.connection_id, source_table = excluded.source_table,
               row_count = excluded.row_count, columns = excluded.columns, last_run_id = excluded.last_run_id,
               updated_at = excluded.updated_at
        """,
        run.tenant_id,
        run.target.catalog,
        run.target.schema_name,
        run.target.name,
        run.connection_id,
        run.source_table,
        run.row_count,
        columns_json(run.columns) or [],
        run.run_id,
        run.finished_at,
    )


class DatasetStore:
    """Reads `datasets`."""

    def __init__(self, pool: asyncpg.Pool) -> None:
        self._pool = pool

    async def of_tenant(self, tenant_id: str) -> list[Dataset]:
        """Every dataset of the tenant, by target name."""
        rows = await self._pool.fetch(
            "SELECT * FROM datasets WHERE tenant_id = $1 ORDER BY target_catalog, target_schema, target_name",
            tenant_id,
        )
        return [
            Dataset(
                target=TableRef(catalog=r["target_catalog"], schema_name=r["target_schema"], name=r["target_name"]),
                connection_id=r["connection_id"],
                source_table=r["source_table"],
                row_count=r["row_count"],
                columns=[ColumnMapping.model_validate(c) for c in r["columns"]],
                last_run_id=r["last_run_id"],
                updated_at=r["updated_at"],
            )
            for r in rows
        ]
