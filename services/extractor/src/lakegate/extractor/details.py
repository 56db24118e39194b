"""What one source table is: its columns and their mapping, keys, indexes and a few sample values.

Everything is read in one REPEATABLE READ READ ONLY transaction, under the session's statement
timeout, so the parts agree with each other. Names are bound as parameters when looking things up
in `pg_catalog`, and quoted with `quote_ident` in the SELECTs that pick samples.

Samples are the smallest distinct non-null values of each column among the first
`sample_scan_rows` rows, read the way a sync reads the column (types a sync stores as text are
selected as text), and written as JSON values by the rules of `jsonvalues.py`. Strings longer than
`sample_max_chars` are cut short and end with "…".
"""

from __future__ import annotations

from typing import Any

import asyncpg
from lakegate.common.contracts.explore import (
    DescribeSourceTable,
    ForeignKey,
    IncomingForeignKey,
    SourceIndex,
    SourceTableDetail,
)
from lakegate.common.contracts.sources import SourceTable
from lakegate.common.errors import NotFound, SourceError
from lakegate.common.names import SourceTableName, parse_source_table
from lakegate.extractor.allowlist import refuse_sensitive_table
from lakegate.extractor.config import ExtractorSettings
from lakegate.extractor.connections import connect
from lakegate.extractor.exploration import read_only_transaction
from lakegate.extractor.introspection import KINDS, describe_source, not_found_message, pg_char, plans_of
from lakegate.extractor.jsonvalues import clipped, holds_instants, json_value
from lakegate.extractor.logins import Credentials
from lakegate.extractor.query import quote_ident
from lakegate.extractor.typemap import ColumnPlan

_TABLE = """
SELECT c.oid, c.relkind,
       CASE WHEN c.relkind IN ('v', 'f') OR c.reltuples < 0 THEN -1 ELSE c.reltuples::int8 END AS estimate,
       pg_catalog.has_any_column_privilege(c.oid, 'SELECT') AS readable
FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
WHERE n.nspname = $1 AND c.relname = $2 AND c.relkind IN ('r', 'p', 'v', 'm', 'f')
"""

_PRIMARY_KEY = """
SELECT a.attname
FROM pg_catalog.pg_constraint con
JOIN pg_catalog.pg_class c ON c.oid = con.conrelid
JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
CROSS JOIN LATERAL pg_catalog.unnest(con.conkey) WITH ORDINALITY AS k(attnum, position)
JOIN pg_catalog.pg_attribute a ON a.attrelid = con.conrelid AND a.attnum = k.attnum
WHERE n.nspname = $1 AND c.relname = $2 AND con.contype = 'p'
ORDER BY k.position
"""

_KEY_COLUMNS = """ARRAY(
    SELECT a.attname FROM pg_catalog.unnest(con.{keys}) WITH ORDINALITY AS k(attnum, position)
    JOIN pg_catalog.pg_attribute a ON a.attrelid = con.{relid} AND a.attnum = k.attnum
    ORDER BY k.position)"""

# Clones of a key on partitions (conparentid <> 0) would repeat their parent's key.
_FOREIGN_KEYS = f"""
SELECT con.conname, con.conrelid, con.confrelid,
       {_KEY_COLUMNS.format(keys="conkey", relid="conrelid")} AS columns,
       {_KEY_COLUMNS.format(keys="confkey", relid="confrelid")} AS referenced_columns,
       fn.nspname AS from_schema, fc.relname AS from_table,
       tn.nspname AS to_schema, tc.relname AS to_table
FROM pg_catalog.pg_constraint con
JOIN pg_catalog.pg_class fc ON fc.oid = con.conrelid
JOIN pg_catalog.pg_namespace fn ON fn.oid = fc.relnamespace
JOIN pg_catalog.pg_class tc ON tc.oid = con.confrelid
JOIN pg_catalog.pg_namespace tn ON tn.oid = tc.relnamespace
WHERE con.contype = 'f' AND con.conparentid = 0 AND (con.conrelid = $1 OR con.confrelid = $1)
ORDER BY con.conname, fn.nspname, fc.relname
"""

_INDEXES = """
SELECT ic.relname AS name, i.indisunique AS is_unique, i.indisprimary AS is_primary,
       pg_catalog.pg_get_indexdef(i.indexrelid) AS definition,
       ARRAY(
           SELECT pg_catalog.pg_get_indexdef(i.indexrelid, k, true)
           FROM pg_catalog.generate_series(1, i.indnkeyatts) AS k ORDER BY k
       ) AS columns
FROM pg_catalog.pg_index i JOIN pg_catalog.pg_class ic ON ic.oid = i.indexrelid
WHERE i.indrelid = $1
ORDER BY ic.relname
"""


async def primary_key(conn: asyncpg.Connection, name: SourceTableName) -> list[str]:
    """The primary key columns of `schema.table`, in key order; empty when it has none."""
    return [row["attname"] for row in await conn.fetch(_PRIMARY_KEY, name.schema, name.table)]


async def foreign_keys(conn: asyncpg.Connection, relid: int) -> tuple[list[ForeignKey], list[IncomingForeignKey]]:
    """The table's own foreign keys, and those of other tables that point at it."""
    outgoing: list[ForeignKey] = []
    incoming: list[IncomingForeignKey] = []
    for row in await conn.fetch(_FOREIGN_KEYS, relid):
        if row["conrelid"] == relid:
            outgoing.append(
                ForeignKey(
                    name=row["conname"],
                    columns=list(row["columns"]),
                    references_table=f"{row['to_schema']}.{row['to_table']}",
                    references_columns=list(row["referenced_columns"]),
                )
            )
        if row["confrelid"] == relid:
            incoming.append(
                IncomingForeignKey(
                    name=row["conname"],
                    table=f"{row['from_schema']}.{row['from_table']}",
                    columns=list(row["columns"]),
                    references_columns=list(row["referenced_columns"]),
                )
            )
    return outgoing, incoming


async def indexes(conn: asyncpg.Connection, relid: int) -> list[SourceIndex]:
    """The table's indexes with their key columns (or expressions) and definitions."""
    return [
        SourceIndex(
            name=row["name"],
            columns=list(row["columns"]),
            unique=row["is_unique"],
            primary=row["is_primary"],
            definition=row["definition"],
        )
        for row in await conn.fetch(_INDEXES, relid)
    ]


async def samples(
    conn: asyncpg.Connection, name: SourceTableName, plan: ColumnPlan, size: int, settings: ExtractorSettings
) -> list[Any]:
    """Up to `size` distinct non-null values of one column, as JSON values."""
    table = f"{quote_ident(name.schema)}.{quote_ident(name.table)}"
    sql = (
        f"SELECT DISTINCT v FROM (SELECT {plan.text_expression(quote_ident(plan.name))} AS v FROM {table} "
        f"LIMIT {int(settings.sample_scan_rows)}) AS s WHERE v IS NOT NULL ORDER BY v LIMIT {int(size)}"
    )
    instants = holds_instants(str(plan.arrow_type))
    rows = await conn.fetch(sql)
    return [clipped(json_value(row["v"], instants=instants), settings.sample_max_chars) for row in rows]


async def describe_table(
    credentials: Credentials, request: DescribeSourceTable, settings: ExtractorSettings
) -> SourceTableDetail:
    """Columns, keys, indexes and samples of one table of a registered source."""
    name = parse_source_table(request.table_name)
    refuse_sensitive_table(name.schema, name.table)
    source = describe_source(credentials)
    async with (
        connect(credentials.login, settings, source=credentials.source.name) as conn,
        read_only_transaction(conn),
    ):
        found = await conn.fetchrow(_TABLE, name.schema, name.table)
        if found is None:
            raise NotFound(await not_found_message(conn, name, source))
        if not found["readable"]:
            user = await conn.fetchval("SELECT current_user")
            raise SourceError(
                f"user '{user}' may not read table {name} in {source}: "
                f"ask the owner to GRANT SELECT ON {name} TO {user}"
            )
        relid = found["oid"]
        columns = (await plans_of(conn, [relid]))[relid]
        outgoing, incoming = await foreign_keys(conn, relid)
        values: dict[str, list[Any]] = {}
        for plan, readable in columns:
            wanted = readable and request.sample_size > 0
            values[plan.name] = await samples(conn, name, plan, request.sample_size, settings) if wanted else []
        return SourceTableDetail(
            table=SourceTable(
                schema_name=name.schema,
                name=name.table,
                kind=KINDS[pg_char(found["relkind"])],
                row_estimate=found["estimate"],
                columns=[plan.as_source_column() for plan, _readable in columns],
            ),
            primary_key=await primary_key(conn, name),
            foreign_keys=outgoing,
            indexes=await indexes(conn, relid),
            samples=values,
            referenced_by=incoming,
        )
