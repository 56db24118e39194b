"""The parser guard on its own: the read-only queries an explorer writes pass untouched; the rest is refused.

The hostile corpus (`test_hostile_queries.py`) runs every refusal through the service; these tests
show that ordinary exploration is not caught in the net.
"""

from __future__ import annotations

import pytest
from lakegate.common.errors import InvalidInput
from lakegate.extractor.guard import check_query, is_blocked_function

EXPLORATION = [
    "SELECT 1",
    "select 1;",
    "SELECT * FROM orders LIMIT 10",
    "TABLE orders",
    "TABLE sales.orders",
    "VALUES (1, 'a'), (2, 'b')",
    "(SELECT 1)",
    "SELECT 1 UNION ALL SELECT 2 EXCEPT SELECT 3",
    "WITH recent AS (SELECT * FROM orders WHERE placed_at > now() - interval '7 days') SELECT count(*) FROM recent",
    "WITH RECURSIVE r(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM r WHERE n < 10) SELECT * FROM r",
    "EXPLAIN SELECT * FROM orders",
    "EXPLAIN VERBOSE SELECT * FROM orders",
    "EXPLAIN (FORMAT JSON, COSTS OFF, VERBOSE) SELECT * FROM orders",
    "explain (settings, generic_plan) select * from orders where id = 1",
    'SELECT "Order Id", "select" FROM "Sales Dept"."Orders"',
    "SELECT region, count(*) FILTER (WHERE total > 10) FROM orders GROUP BY ROLLUP (region) HAVING count(*) > 1",
    "SELECT DISTINCT ON (customer_id) customer_id, placed_at FROM orders ORDER BY 1, placed_at DESC NULLS LAST",
    "SELECT id, row_number() OVER (PARTITION BY region ORDER BY total DESC) FROM orders",
    "SELECT lines->>'sku', lines #> '{a,b}', tags[1:2], tags @> ARRAY['x'] FROM orders",
    "SELECT * FROM orders o JOIN LATERAL (SELECT * FROM items i WHERE i.order_id = o.id LIMIT 1) x ON true",
    "SELECT * FROM orders TABLESAMPLE SYSTEM (1)",
    "SELECT * FROM ONLY orders WHERE note ~* '^a' AND code IS DISTINCT FROM NULL",
    "SELECT generate_series(1, 10), pg_sleep(0), now(), current_user, version()",
    "SELECT table_name, column_name, column_default FROM information_schema.columns "
    "WHERE column_default LIKE 'nextval%'",
    "SELECT relname, n_live_tup FROM pg_stat_user_tables ORDER BY n_live_tup DESC",
    "SELECT pg_size_pretty(pg_total_relation_size('orders'))",
    "SELECT 'it''s', E'tab\\there', $$dollar 'quoted'$$, $tag$x$tag$, U&'d\\0061ta'",
    "SELECT 1 -- a comment about the query\n",
    "/* a note */ SELECT 1",
    "SELECT x FROM t WHERE d BETWEEN '2024-01-01' AND '2024-12-31' AND n IN (1, 2, 3)",
    "SELECT 'pg_read_file is only text here'",
]


@pytest.mark.parametrize("sql", EXPLORATION)
def test_exploration_queries_pass_the_guard_unchanged(sql: str) -> None:
    assert check_query(sql, max_chars=10_000) == sql


@pytest.mark.parametrize(
    "name",
    [
        "pg_read_file",
        "pg_read_binary_file",
        "pg_ls_dir",
        "lo_import",
        "lo_export",
        "dblink",
        "dblink_exec",
        "set_config",
        "nextval",
        "setval",
        "pg_advisory_lock",
        "pg_try_advisory_xact_lock",
        "pg_terminate_backend",
        "pg_cancel_backend",
        "pg_reload_conf",
        "pg_rotate_logfile",
        "txid_current",
        "query_to_xml",
        "query_to_xmlschema",
        "table_to_xml_and_xmlschema",
        "PG_READ_FILE",
    ],
)
def test_functions_that_write_or_reach_outside_are_blocked(name: str) -> None:
    assert is_blocked_function(name)
    with pytest.raises(InvalidInput):
        check_query(f"SELECT {name}('x')", max_chars=10_000)


@pytest.mark.parametrize("name", ["pg_sleep", "count", "lower", "now", "pg_size_pretty", "currval", "to_char"])
def test_ordinary_functions_are_not_blocked(name: str) -> None:
    assert not is_blocked_function(name)


def test_a_refusal_says_what_is_accepted_instead() -> None:
    with pytest.raises(InvalidInput) as raised:
        check_query("VACUUM orders", max_chars=10_000)

    assert raised.value.message == (
        "VACUUM statements are not allowed: send exactly one read-only query: "
        "SELECT, WITH … SELECT, VALUES, TABLE or EXPLAIN (without ANALYZE)"
    )


def test_a_query_longer_than_the_limit_is_refused_before_it_is_parsed() -> None:
    with pytest.raises(InvalidInput) as raised:
        check_query("SELECT 1" + " " * 100, max_chars=50)

    assert raised.value.message == "the SQL is 108 characters long, more than the 50 accepted: shorten the query"


def test_explain_checks_the_statement_it_explains() -> None:
    with pytest.raises(InvalidInput) as raised:
        check_query("EXPLAIN (COSTS OFF) SELECT nextval('s')", max_chars=10_000)

    assert "nextval" in raised.value.message
