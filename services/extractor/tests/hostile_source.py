"""A source database worth attacking, and a fingerprint of everything a hostile query could change.

The fingerprint covers the rows of every table (a checksum each), every object in every schema
(temporary ones included), functions, roles, sequences, large objects, per-role and per-database
settings, prepared transactions, replication slots, advisory locks and comments. Two equal
fingerprints mean nothing observable changed.
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

import asyncpg
from lakegate.extractor.connections import APPLICATION_NAME
from lakegate.extractor.query import quote_ident

#: A file that hostile queries try to create on the database server's machine.
MARKER = Path("/tmp/lakegate-hostile-corpus-marker")

SCHEMA = """
CREATE TABLE accounts (id serial PRIMARY KEY, name text NOT NULL, balance numeric(12,2));
INSERT INTO accounts (name, balance) SELECT 'account ' || i, i * 1.5 FROM generate_series(1, 20) AS i;
CREATE TABLE ledger (
    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    account_id int NOT NULL REFERENCES accounts,
    amount numeric(12,2)
);
INSERT INTO ledger (account_id, amount) SELECT 1 + i % 20, i FROM generate_series(1, 50) AS i;
CREATE SEQUENCE counter;
SELECT nextval('counter');
CREATE MATERIALIZED VIEW account_totals AS SELECT account_id, sum(amount) AS total FROM ledger GROUP BY 1;
CREATE FUNCTION bump() RETURNS int LANGUAGE plpgsql VOLATILE AS
    $$ BEGIN INSERT INTO accounts (name, balance) VALUES ('bumped', 0); RETURN 1; END $$;
CREATE VIEW bumping AS SELECT bump() AS bumped;
CREATE FUNCTION run_sql(statement text) RETURNS int LANGUAGE plpgsql VOLATILE AS
    $$ BEGIN EXECUTE statement; RETURN 1; END $$;
CREATE FUNCTION next_counter() RETURNS bigint LANGUAGE sql VOLATILE AS $$ SELECT nextval('counter') $$;
CREATE FUNCTION make_large_object() RETURNS oid LANGUAGE sql VOLATILE AS $$ SELECT lo_create(0) $$;
CREATE FUNCTION peek() RETURNS text LANGUAGE sql STABLE AS $$ SELECT pg_read_file('/etc/hostname') $$;
CREATE FUNCTION leak(accounts) RETURNS int LANGUAGE plpgsql VOLATILE AS
    $$ BEGIN INSERT INTO accounts (name, balance) VALUES ('leaked', 0); RETURN 1; END $$;
CREATE FUNCTION bump_two(int, int) RETURNS int LANGUAGE plpgsql VOLATILE AS
    $$ BEGIN INSERT INTO accounts (name, balance) VALUES ('operator', 0); RETURN $1 + $2; END $$;
CREATE OPERATOR #+# (LEFTARG = int, RIGHTARG = int, FUNCTION = bump_two);
CREATE PROCEDURE bump_proc() LANGUAGE plpgsql AS
    $$ BEGIN INSERT INTO accounts (name, balance) VALUES ('proc', 0); END $$;
ANALYZE;
"""

_TABLES = """
SELECT n.nspname, c.relname FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
WHERE c.relkind IN ('r', 'p', 'm') AND n.nspname NOT IN ('pg_catalog', 'information_schema')
  AND n.nspname NOT LIKE 'pg\\_toast%'
ORDER BY 1, 2
"""

_FACTS = {
    "objects": """SELECT n.nspname, c.relname, c.relkind::text FROM pg_catalog.pg_class c
                  JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace ORDER BY 1, 2""",
    "schemas": "SELECT nspname FROM pg_catalog.pg_namespace WHERE nspname NOT LIKE 'pg\\_temp\\_%' "
    "AND nspname NOT LIKE 'pg\\_toast\\_temp\\_%' ORDER BY 1",
    "functions": "SELECT p.oid::regprocedure::text FROM pg_catalog.pg_proc p ORDER BY 1",
    "roles": "SELECT rolname, rolsuper, rolcanlogin, rolcreaterole, rolcreatedb FROM pg_catalog.pg_roles ORDER BY 1",
    "memberships": "SELECT roleid, member FROM pg_catalog.pg_auth_members ORDER BY 1, 2",
    "sequences": "SELECT schemaname, sequencename, last_value FROM pg_catalog.pg_sequences ORDER BY 1, 2",
    "large_objects": "SELECT oid FROM pg_catalog.pg_largeobject_metadata ORDER BY 1",
    "role_settings": "SELECT setdatabase, setrole, setconfig::text FROM pg_catalog.pg_db_role_setting ORDER BY 1, 2",
    "databases": "SELECT datname FROM pg_catalog.pg_database ORDER BY 1",
    "prepared_transactions": "SELECT gid FROM pg_catalog.pg_prepared_xacts ORDER BY 1",
    "replication_slots": "SELECT slot_name FROM pg_catalog.pg_replication_slots ORDER BY 1",
    "advisory_locks": "SELECT objid FROM pg_catalog.pg_locks WHERE locktype = 'advisory' ORDER BY 1",
    "comments": "SELECT objoid, classoid, objsubid, description FROM pg_catalog.pg_description "
    "WHERE objoid >= 16384 ORDER BY 1, 2, 3",
    "extensions": "SELECT extname FROM pg_catalog.pg_extension ORDER BY 1",
    "grants": "SELECT c.relname, c.relacl::text FROM pg_catalog.pg_class c WHERE c.oid >= 16384 ORDER BY 1",
    "publications": "SELECT pubname FROM pg_catalog.pg_publication ORDER BY 1",
    "system_settings": "SELECT name, setting FROM pg_catalog.pg_file_settings ORDER BY 1, 2",
}


async def fingerprint(conn: asyncpg.Connection) -> dict[str, Any]:
    """Everything a query could change in the database (and the cluster around it), as plain data."""
    facts: dict[str, Any] = {}
    for name, sql in _FACTS.items():
        facts[name] = [tuple(row) for row in await conn.fetch(sql)]
    for row in await conn.fetch(_TABLES):
        table = f"{quote_ident(row['nspname'])}.{quote_ident(row['relname'])}"
        facts[f"rows of {table}"] = await conn.fetchval(
            f"SELECT count(*) || ':' || md5(coalesce(string_agg(t::text, E'\\n' ORDER BY t::text), '')) FROM {table} t"
        )
    return facts


async def sessions_of_the_extractor(conn: asyncpg.Connection, database: str) -> list[tuple[Any, ...]]:
    """The extractor's sessions still open on `database`: (pid, state, query)."""
    rows = await conn.fetch(
        "SELECT pid, state, query FROM pg_catalog.pg_stat_activity WHERE datname = $1 AND application_name = $2",
        database,
        APPLICATION_NAME,
    )
    return [tuple(row) for row in rows]


async def until_the_extractor_left(conn: asyncpg.Connection, database: str, timeout: float = 15.0) -> None:
    """Wait until the extractor has no session on `database` (a backend exits just after its client closed)."""
    deadline = time.monotonic() + timeout
    while sessions := await sessions_of_the_extractor(conn, database):
        if time.monotonic() > deadline:
            raise AssertionError(f"the extractor still has sessions on {database}: {sessions}")
        await asyncio.sleep(0.05)
