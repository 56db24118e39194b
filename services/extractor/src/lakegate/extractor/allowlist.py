"""The allow-list behind `guard.py`: every function and operator a source query calls must be known harmless.

The parser guard refuses statements and names it knows to be dangerous; this module decides from
the source's own catalog, so that a function the guard has never heard of is refused too. Before
the statement is prepared, every name the query calls (`name(`, attribute notation `row.name`) and
every operator it uses is looked up in `pg_proc` / `pg_operator` on the source, and the query is
refused unless every function of that name (all overloads, every schema) is

- immutable or stable (`provolatile` `i`/`s`: PostgreSQL's own promise that it changes nothing), or
  one of the few volatile built-ins reviewed as harmless (`HARMLESS_VOLATILE`: clocks, random
  numbers, sleeping, sizes), and
- not on the reviewed list of stable or immutable built-ins that run SQL text of their own, reveal
  other sessions' queries or the server's configuration, or assign a transaction id (`DENIED`), and
- built into PostgreSQL (`pg_catalog`, `information_schema`) or part of an installed extension:
  a function someone defined in the database can run any SQL inside, whatever volatility it
  declares, and its body is out of the guard's sight.

A name that no function has (a keyword such as `IN (`, a type in `numeric(10, 2)`) calls nothing.
Operators are held to the same rules through the function that implements them. Casts and type
input functions are not looked at: every built-in one is immutable or stable, and the READ ONLY
transaction, the timeouts and the rollback (`exploration.py`) stay behind this wall.

Relations that expose credentials, other sessions' queries or the server's configuration
(`SENSITIVE_RELATIONS`) are refused by name in queries (`guard.py`) and in table syncs and
descriptions (`refuse_sensitive_table`).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field

import asyncpg
from lakegate.common.errors import InvalidInput

#: Volatile built-ins reviewed as free of side effects: they read clocks, draw random numbers, sleep
#: or measure sizes, and write nothing anywhere.
HARMLESS_VOLATILE = frozenset(
    {
        "clock_timestamp",
        "timeofday",
        "random",
        "gen_random_uuid",
        "pg_sleep",
        "pg_sleep_for",
        "pg_sleep_until",
        "pg_relation_size",
        "pg_table_size",
        "pg_indexes_size",
        "pg_total_relation_size",
        "pg_database_size",
        "pg_tablespace_size",
        "pg_is_in_recovery",
        "pg_jit_available",
        "pg_partition_tree",
        "pg_partition_ancestors",
        "currval",
        "lastval",
    }
)

#: Stable or immutable built-ins that are refused all the same: they run SQL text of their own, read
#: other sessions' queries or the server's configuration, or assign a transaction id.
DENIED = frozenset(
    {
        "current_setting",
        "pg_show_all_settings",
        "pg_settings_get_flags",
        "pg_config",
        "pg_stat_get_activity",
        "pg_stat_get_backend_activity",
        "pg_stat_get_wal_receiver",
        "pg_stat_get_subscription",
        "pg_get_replication_slots",
        "txid_current",
        "pg_current_xact_id",
        "ts_stat",
        "ts_rewrite",
    }
)
#: query_to_xml, table_to_xml, database_to_xml ... run SQL of their own (or dump whole schemas).
DENIED_PATTERN = re.compile(r"^(query|cursor|table|schema|database)_to_xml|dblink|^lo_|^pg_read_|^pg_ls_")

#: Schemas whose functions ship with PostgreSQL.
BUILT_IN_SCHEMAS = frozenset({"pg_catalog", "information_schema"})

#: Relations that hold credentials, other sessions' queries, or the server's configuration and files.
SENSITIVE_RELATIONS = frozenset(
    {
        "pg_authid",
        "pg_shadow",
        "pg_user_mapping",
        "pg_user_mappings",
        "pg_hba_file_rules",
        "pg_ident_file_mappings",
        "pg_file_settings",
        "pg_settings",
        "pg_db_role_setting",
        "pg_stat_activity",
        "pg_stat_statements",
        "pg_stat_statements_info",
        "pg_stat_replication",
        "pg_stat_wal_receiver",
        "pg_stat_subscription",
        "pg_subscription",
        "pg_replication_slots",
        "pg_foreign_server",
        "pg_largeobject",
        "pg_statistic",
        "pg_statistic_ext_data",
        "pg_config",
    }
)


@dataclass(frozen=True)
class Calls:
    """What a query calls, as the parser guard read it from the tokens."""

    functions: frozenset[str] = field(default_factory=frozenset)
    attributes: frozenset[str] = field(default_factory=frozenset)  # `row.name`: a call if `name` takes one row
    operators: frozenset[str] = field(default_factory=frozenset)


#: Every function of the names asked for, with what decides whether it is harmless.
_FUNCTIONS = """
SELECT p.proname, n.nspname, p.provolatile::text AS volatility, p.pronargs,
       EXISTS (SELECT 1 FROM pg_catalog.pg_depend d
               WHERE d.classid = 'pg_catalog.pg_proc'::pg_catalog.regclass AND d.objid = p.oid
                 AND d.deptype = 'e') AS in_extension
FROM pg_catalog.pg_proc p JOIN pg_catalog.pg_namespace n ON n.oid = p.pronamespace
WHERE p.proname = ANY($1::text[])
"""
#: The function behind every operator of the spellings asked for.
_OPERATORS = """
SELECT o.oprname, p.proname, n.nspname, p.provolatile::text AS volatility, p.pronargs,
       EXISTS (SELECT 1 FROM pg_catalog.pg_depend d
               WHERE d.classid = 'pg_catalog.pg_proc'::pg_catalog.regclass AND d.objid = p.oid
                 AND d.deptype = 'e') AS in_extension
FROM pg_catalog.pg_operator o JOIN pg_catalog.pg_proc p ON p.oid = o.oprcode
JOIN pg_catalog.pg_namespace n ON n.oid = p.pronamespace
WHERE o.oprname = ANY($1::text[])
"""


def is_sensitive_relation(name: str) -> bool:
    """True for a relation that exposes credentials, others' queries or the server's configuration."""
    return name.lower() in SENSITIVE_RELATIONS


def refuse_sensitive_table(schema_name: str, table: str) -> None:
    """Refuse to sync or describe a relation that exposes credentials or the server's configuration."""
    if schema_name.lower() in BUILT_IN_SCHEMAS | {"pg_toast"} and is_sensitive_relation(table):
        raise InvalidInput(
            f"table {schema_name}.{table} holds credentials, other sessions' queries or the server's "
            "configuration, and lakegate never reads it: pick a table of your own schemas"
        )


def _why_not(name: str, schema: str, volatility: str, in_extension: bool) -> str | None:
    """Why a function may not run in a source query; None when it may."""
    if name in DENIED or DENIED_PATTERN.search(name):
        return "it runs SQL of its own, reads files, or reveals other sessions or the server's configuration"
    if volatility not in {"i", "s"} and name not in HARMLESS_VOLATILE:
        return "it is volatile, so PostgreSQL does not promise that it changes nothing"
    if schema not in BUILT_IN_SCHEMAS and not in_extension:
        return (
            f"it is defined in the database (schema {schema}), not built in or part of an extension, "
            "so its body could run any SQL"
        )
    return None


async def refuse_unsafe_calls(conn: asyncpg.Connection, calls: Calls) -> None:
    """Refuse the query unless every function and operator it calls is on the allow-list (see module doc)."""
    names = sorted(calls.functions | calls.attributes)
    if names:
        for row in await conn.fetch(_FUNCTIONS, names):
            if row["proname"] in calls.attributes and row["proname"] not in calls.functions and row["pronargs"] != 1:
                continue  # `row.name` calls only a function of one argument; this is a column
            reason = _why_not(row["proname"], row["nspname"], row["volatility"], row["in_extension"])
            if reason:
                raise InvalidInput(
                    f"the function {row['proname']} is not allowed in a source query: {reason}; "
                    "source queries may call only built-in functions that only read"
                )
    if calls.operators:
        for row in await conn.fetch(_OPERATORS, sorted(calls.operators)):
            reason = _why_not(row["proname"], row["nspname"], row["volatility"], row["in_extension"])
            if reason:
                raise InvalidInput(
                    f"the operator {row['oprname']} is not allowed in a source query: it calls "
                    f"{row['nspname']}.{row['proname']}, and {reason}"
                )


def operator_runs(texts: Sequence[tuple[str, int, int]]) -> frozenset[str]:
    """Operator spellings from (text, start, end) of operator-character tokens: adjacent ones join up."""
    runs: list[str] = []
    last_end = -2
    for text, start, end in texts:
        if runs and start == last_end + 1:
            runs[-1] += text
        else:
            runs.append(text)
        last_end = end
    spellings = set(runs)
    spellings.update(text for text, _, _ in texts)
    return frozenset(spellings)
