"""Type semantics: the same predicates, lengths, orderings and aggregates in PostgreSQL and through query_sql.

Each case runs once at the source (asyncpg) and once in the lakehouse (query_sql over the synced
bronze table). `SAME` cases must agree; `DIFFERENT` cases pin the lakehouse's documented answer
(docs/type-semantics.md), so the page stays true: when one of them starts to agree, move it to `SAME`.
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal, InvalidOperation
from typing import Any

import asyncpg
from lakegate.devstack.stack import Stack
from mcp import Client

from tests.conftest import Source
from tests.mcp_calls import call

SCHEMA = """
CREATE TYPE mood AS ENUM ('sad', 'ok', 'happy');
CREATE DOMAIN amount AS numeric(10, 2) CHECK (VALUE >= 0);
CREATE TABLE semantics (
    id int PRIMARY KEY,
    code char(6),
    price numeric(12, 3),
    spent interval,
    tags int[],
    feeling mood,
    span int4range,
    paid amount,
    cash money,
    host inet,
    net cidr,
    flags bit(4),
    varflags varbit,
    at time,
    attz timetz,
    day date,
    stamp timestamp,
    doc jsonb
);
INSERT INTO semantics VALUES
 (1, 'ab', 1.500, '1 day 2 hours', '{1,2}', 'happy', '[1,5)', 10.00, 12.50, '10.0.0.1', '10.0.0.0/8',
  B'1010', B'1', '08:30', '08:30+02', '2024-01-01', '2024-01-01 12:00', '{"a": 1}'),
 (2, 'abc', 2.250, '3 hours', '{3}', 'sad', '[2,3)', 0.50, 1.25, '192.168.1.20', '192.168.0.0/16',
  B'0001', B'101', '23:59:59.5', '23:00-05', 'infinity', 'infinity', 'null'),
 (3, 'b ', 3.125, '1 mon', '{}', 'ok', 'empty', 2.25, 100.00, '::1', '::/0',
  B'1111', B'', '00:00', '00:00+00', '-infinity', '-infinity', '"null"'),
 (4, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL);
"""

# (what, PostgreSQL SQL, lakehouse SQL with {t} for the bronze table)
SAME: list[tuple[str, str, str]] = [
    (
        "char(n) equality ignores padding",
        "SELECT count(*) FROM semantics WHERE code = 'ab'",
        "SELECT count(*) FROM {t} WHERE code = 'ab'",
    ),
    (
        "char(n) trailing blank",
        "SELECT count(*) FROM semantics WHERE code = 'b'",
        "SELECT count(*) FROM {t} WHERE code = 'b'",
    ),
    (
        "char(n) length",
        "SELECT id, length(code) FROM semantics ORDER BY id",
        "SELECT id, length(code) FROM {t} ORDER BY id",
    ),
    (
        "char(n) order",
        "SELECT id FROM semantics ORDER BY code NULLS LAST, id",
        "SELECT id FROM {t} ORDER BY code NULLS LAST, id",
    ),
    (
        "numeric sum min max",
        "SELECT sum(price), min(price), max(price) FROM semantics",
        "SELECT sum(price), min(price), max(price) FROM {t}",
    ),
    # Databricks' rule: avg of decimal(p,s) is decimal(p+4, s+4), rounded half up (PostgreSQL keeps more digits).
    ("avg of a decimal stays a decimal", "SELECT round(avg(price), 7) FROM semantics", "SELECT avg(price) FROM {t}"),
    (
        "avg of distinct decimals",
        "SELECT round(avg(DISTINCT paid), 6) FROM semantics",
        "SELECT avg(DISTINCT paid) FROM {t}",
    ),
    (
        "numeric predicate",
        "SELECT id FROM semantics WHERE price > 2.25 ORDER BY id",
        "SELECT id FROM {t} WHERE price > 2.25 ORDER BY id",
    ),
    ("domain over numeric", "SELECT sum(paid), max(paid) FROM semantics", "SELECT sum(paid), max(paid) FROM {t}"),
    (
        "array length",
        "SELECT id, cardinality(tags) FROM semantics ORDER BY id",
        "SELECT id, size(tags) FROM {t} ORDER BY id",
    ),
    (
        "array element (1-based vs element_at)",
        "SELECT id, tags[1] FROM semantics ORDER BY id",
        "SELECT id, element_at(tags, 1) FROM {t} ORDER BY id",
    ),
    ("enum equality", "SELECT id FROM semantics WHERE feeling = 'ok'", "SELECT id FROM {t} WHERE feeling = 'ok'"),
    ("range as text", "SELECT id FROM semantics WHERE span::text = '[1,5)'", "SELECT id FROM {t} WHERE span = '[1,5)'"),
    ("inet equality", "SELECT id FROM semantics WHERE host = '10.0.0.1'", "SELECT id FROM {t} WHERE host = '10.0.0.1'"),
    (
        "bit string equality",
        "SELECT id FROM semantics WHERE flags = B'1010'",
        "SELECT id FROM {t} WHERE flags = '1010'",
    ),
    (
        "bit string length",
        "SELECT id, length(varflags) FROM semantics ORDER BY id",
        "SELECT id, length(varflags) FROM {t} ORDER BY id",
    ),
    ("time order", "SELECT id FROM semantics ORDER BY at NULLS LAST", "SELECT id FROM {t} ORDER BY at NULLS LAST"),
    (
        "infinity date sorts last",
        "SELECT id FROM semantics ORDER BY day NULLS LAST",
        "SELECT id FROM {t} ORDER BY day NULLS LAST",
    ),
    (
        "infinity date beyond any finite date",
        "SELECT id FROM semantics WHERE day > '2100-01-01'",
        "SELECT id FROM {t} WHERE day > '2100-01-01'",
    ),
    (
        "infinity timestamp order",
        "SELECT id FROM semantics ORDER BY stamp NULLS LAST",
        "SELECT id FROM {t} ORDER BY stamp NULLS LAST",
    ),
    ("JSON null is not SQL NULL", "SELECT id FROM semantics WHERE doc IS NULL", "SELECT id FROM {t} WHERE doc IS NULL"),
    (
        'JSON null apart from the string "null"',
        "SELECT id FROM semantics WHERE doc = 'null'::jsonb",
        "SELECT id FROM {t} WHERE doc = 'null'",
    ),
    (
        'JSON string "null"',
        "SELECT id FROM semantics WHERE doc = '\"null\"'::jsonb",
        "SELECT id FROM {t} WHERE doc = '\"null\"'",
    ),
    (
        "JSON field",
        "SELECT id, doc->>'a' FROM semantics ORDER BY id",
        "SELECT id, get_json_object(doc, '$.a') FROM {t} ORDER BY id",
    ),
]

# (what, PostgreSQL SQL, lakehouse SQL, the lakehouse's answer): documented in docs/type-semantics.md.
DIFFERENT: list[tuple[str, str, str, list[list[Any]]]] = [
    (
        "interval order (text)",
        "SELECT id FROM semantics ORDER BY spent NULLS LAST",
        "SELECT id FROM {t} ORDER BY spent NULLS LAST",
        [[1], [3], [2], [4]],
    ),
    (
        "enum order (label, not declaration)",
        "SELECT id FROM semantics ORDER BY feeling NULLS LAST",
        "SELECT id FROM {t} ORDER BY feeling NULLS LAST",
        [[1], [3], [2], [4]],
    ),
    (
        "money order (text)",
        "SELECT id FROM semantics ORDER BY cash NULLS LAST",
        "SELECT id FROM {t} ORDER BY cash NULLS LAST",
        [[2], [3], [1], [4]],
    ),
]


def normal(value: Any) -> Any:
    """One value as comparable text: numbers by value, dates ISO, everything else as text."""
    if value is None:
        return None
    if isinstance(value, dt.date | dt.datetime | dt.time):
        return value.isoformat()
    if isinstance(value, bool):
        return value
    try:
        return str(Decimal(str(value)).normalize())
    except InvalidOperation:
        return str(value)


def rows(found: list[list[Any]] | list[asyncpg.Record]) -> list[list[Any]]:
    return [[normal(v) for v in row] for row in found]


async def test_each_postgresql_type_answers_the_same_in_the_lakehouse_or_as_documented(
    stack: Stack, source: Source, unique: str
) -> None:
    admin = await asyncpg.connect(source.admin_dsn)
    try:
        await admin.execute(SCHEMA)
        expected = {what: rows(await admin.fetch(pg)) for what, pg, _ in SAME}
        postgres_differs = {what: rows(await admin.fetch(pg)) for what, pg, _, _ in DIFFERENT}
    finally:
        await admin.close()
    name = f"sem{unique}"
    table = f"bronze.{name}_semantics"
    async with Client(stack.urls.mcp) as client:
        connection = await call(client, "connect_postgres", source.connect_arguments(name))
        await call(
            client, "sync_table_to_bronze", {"connection_id": connection["connection_id"], "table_name": "semantics"}
        )
        found = {
            what: rows((await call(client, "query_sql", {"sql": lake.format(t=table)}))["rows"])
            for what, _, lake in SAME
        }
        differs = {
            what: (await call(client, "query_sql", {"sql": lake.format(t=table)}))["rows"]
            for what, _, lake, _ in DIFFERENT
        }
        described = await call(client, "describe_table", {"table_name": table, "with_stats": False})

    mismatched = {what: (expected[what], found[what]) for what in expected if expected[what] != found[what]}
    assert mismatched == {}
    for what, _, _, answer in DIFFERENT:
        assert differs[what] == answer, what
        assert postgres_differs[what] != rows(answer), f"{what} agrees now: move it to SAME and off the docs page"
    source_types = {c["name"]: c["source_type"] for c in described["columns"]}
    assert source_types["code"] == "character(6)"
    assert source_types["feeling"] == "mood"
    assert source_types["cash"] == "money"
    assert source_types["spent"] == "interval"
