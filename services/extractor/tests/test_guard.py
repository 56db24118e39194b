"""The parser guard on its own: the read-only queries an explorer writes pass untouched; the rest is refused.

The hostile corpus (`test_hostile_queries.py`) runs every refusal through the service; these tests
show that ordinary exploration is not caught in the net.
"""

from __future__ import annotations

import pytest
from lakegate.common.errors import InvalidInput
from lakegate.extractor.config import ExtractorSettings
from lakegate.extractor.guard import check_query, is_blocked_function
from lakegate.extractor.sqlsize import SizeLimits

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
    assert check_query(sql) == sql


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
        check_query(f"SELECT {name}('x')")


@pytest.mark.parametrize("name", ["pg_sleep", "count", "lower", "now", "pg_size_pretty", "currval", "to_char"])
def test_ordinary_functions_are_not_blocked(name: str) -> None:
    assert not is_blocked_function(name)


def test_a_refusal_says_what_is_accepted_instead() -> None:
    with pytest.raises(InvalidInput) as raised:
        check_query("VACUUM orders")

    assert raised.value.message == (
        "VACUUM statements are not allowed: send exactly one read-only query: "
        "SELECT, WITH … SELECT, VALUES, TABLE or EXPLAIN (without ANALYZE)"
    )


def test_a_query_longer_than_the_limit_is_refused_before_it_is_parsed() -> None:
    with pytest.raises(InvalidInput) as raised:
        check_query("SELECT 1" + " " * 100, SizeLimits(chars=50))

    assert raised.value.message == (
        "the SQL is 108 characters long, more than the 50 accepted (LAKEGATE_EXTRACTOR_QUERY_MAX_CHARS): "
        "shorten the query"
    )


def test_explain_checks_the_statement_it_explains() -> None:
    with pytest.raises(InvalidInput) as raised:
        check_query("EXPLAIN (COSTS OFF) SELECT nextval('s')")

    assert "nextval" in raised.value.message


def _nested(open_: str, inner: str, close: str, times: int) -> str:
    return open_ * times + inner + close * times


#: Statements over one default size limit each, with the setting the refusal must name.
TOO_LARGE = [
    ("parentheses", "SELECT " + _nested("(", "1", ")", 5000), "NESTING"),
    ("case", "SELECT " + _nested("CASE WHEN true THEN ", "1", " END", 50), "NESTING"),
    ("functions", "SELECT " + _nested("abs(", "1", ")", 100), "NESTING"),
    ("subqueries", "SELECT " + _nested("(SELECT ", "1", ")", 100), "NESTING"),
    ("exists", "SELECT 1 WHERE " + _nested("EXISTS (SELECT 1 WHERE ", "true", ")", 100), "NESTING"),
    ("arrays", "SELECT " + _nested("ARRAY[", "1", "]", 100), "NESTING"),
    ("minus", "SELECT " + "- " * 300 + "1", "DEPTH"),
    ("casts", "SELECT 1" + "::int" * 300, "DEPTH"),
    ("json-arrows", "SELECT '{}'::jsonb" + "->'k'" * 300, "DEPTH"),
    ("sum", "SELECT " + " + ".join(["1"] * 20_000), "NODES"),
    ("in-list", "SELECT 1 WHERE 1 IN (" + ",".join(["1"] * 15_000) + ")", "NODES"),
    ("columns", "SELECT " + "1," * 12_000 + "1", "NODES"),
    ("values", "VALUES " + ",".join(["(1)"] * 12_000), "NODES"),
    ("union", "SELECT 1 " + "UNION ALL SELECT 1 " * 5000, "SET_OPERATIONS"),
    ("except", "SELECT 1 " + "EXCEPT SELECT 1 " * 300, "SET_OPERATIONS"),
    ("ctes", "WITH " + ", ".join(f"t{i} AS (SELECT 1)" for i in range(3000)) + " SELECT 1", "CTES"),
    ("joins", "SELECT 1 FROM t t0 " + " ".join(f"JOIN t t{i} ON true" for i in range(1, 101)), "JOINS"),
    ("comma-joins", "SELECT 1 FROM " + ", ".join(f"t t{i}" for i in range(100)), "JOINS"),
    ("explained", "EXPLAIN SELECT 1 " + "UNION ALL SELECT 1 " * 5000, "SET_OPERATIONS"),
]


@pytest.mark.parametrize(("sql", "setting"), [(sql, s) for _, sql, s in TOO_LARGE], ids=[n for n, _, _ in TOO_LARGE])
def test_a_query_over_a_size_limit_is_refused_naming_the_limit_and_its_setting(sql: str, setting: str) -> None:
    with pytest.raises(InvalidInput) as raised:
        check_query(sql)

    assert f"(LAKEGATE_EXTRACTOR_QUERY_MAX_{setting})" in raised.value.message
    assert "more than the" in raised.value.message


def test_the_refusal_says_what_was_measured_and_what_is_allowed() -> None:
    with pytest.raises(InvalidInput) as raised:
        check_query("SELECT 1 " + "UNION ALL SELECT 1 " * 5000)

    assert raised.value.message == (
        "the query has 5000 UNION / INTERSECT / EXCEPT operations, more than the 256 accepted "
        "(LAKEGATE_EXTRACTOR_QUERY_MAX_SET_OPERATIONS): combine fewer queries, or ask the operator to raise the limit"
    )


@pytest.mark.parametrize(
    "sql",
    [
        "SELECT " + _nested("(", "1", ")", 24),
        "SELECT " + _nested("NOT (", "true", ")", 24),
        "SELECT " + _nested("CASE WHEN (", "true", ") THEN 1 END", 12),
        "SELECT " + _nested("abs((SELECT ", "1", "))", 12),
        "SELECT " + _nested("(SELECT max(", "1", ") FROM t)", 12),
        "SELECT * FROM " + _nested("(SELECT * FROM ", "t", ") s", 24),
        "SELECT 1 " + "UNION ALL SELECT 1 " * 256,
        "WITH " + ", ".join(f"t{i} AS (SELECT 1)" for i in range(128)) + " SELECT 1",
        "SELECT 1 FROM t t0 " + " ".join(f"JOIN t t{i} ON true" for i in range(1, 65)),
        "SELECT 1 WHERE 1 IN (" + ",".join(["1"] * 4000) + ")",
    ],
    ids=["parens", "not", "case", "functions", "scalar-subqueries", "from", "union", "ctes", "joins", "in-list"],
)
def test_a_query_at_the_limits_passes_without_reaching_the_recursion_limit(sql: str) -> None:
    assert check_query(sql) == sql


def test_what_recurses_too_deeply_without_brackets_is_refused_with_a_reason() -> None:
    with pytest.raises(InvalidInput) as raised:
        check_query("SELECT " + "NOT " * 2000 + "true")

    assert "nested too deeply to check" in raised.value.message
    assert "LAKEGATE_EXTRACTOR_QUERY_MAX_NESTING" in raised.value.message


def test_lowered_limits_from_the_settings_are_the_ones_applied(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LAKEGATE_EXTRACTOR_QUERY_MAX_JOINS", "1")
    limits = ExtractorSettings().query_limits

    assert check_query("SELECT 1 FROM a JOIN b ON true", limits)
    with pytest.raises(InvalidInput) as raised:
        check_query("SELECT 1 FROM a JOIN b ON true JOIN c ON true", limits)
    assert raised.value.message.startswith("the query has 2 joins, more than the 1 accepted")
