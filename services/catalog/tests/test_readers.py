"""`Readers`: the catalog's own connections for hot reads, on a real PostgreSQL."""

from __future__ import annotations

import asyncpg
from lakegate.catalog.readers import Readers


async def test_a_statement_prepared_before_its_table_changed_is_prepared_anew_on_the_same_connection(
    catalog_dsn: str,
) -> None:
    opened: list[asyncpg.Connection] = []

    async def connect() -> asyncpg.Connection:
        conn = await asyncpg.connect(catalog_dsn)
        opened.append(conn)
        return conn

    admin = await asyncpg.connect(catalog_dsn)
    readers = Readers(connect, 2)
    try:
        await admin.execute("CREATE TABLE shelf (id int); INSERT INTO shelf VALUES (1)")
        assert [tuple(row) for row in await readers.fetch("SELECT * FROM shelf")] == [(1,)]
        # The prepared statement's result type no longer matches the table: PostgreSQL refuses to run it.
        await admin.execute("ALTER TABLE shelf ADD COLUMN label text; UPDATE shelf SET label = 'top'")

        assert [tuple(row) for row in await readers.fetch("SELECT * FROM shelf")] == [(1, "top")]
        assert len(opened) == 1
        assert not opened[0].is_closed()
    finally:
        await readers.close()
        await admin.close()
