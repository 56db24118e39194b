"""The TPC-H workload, end to end: data from tpchgen-cli, the standard DDL in a source PostgreSQL,
every table synced in full through the edge, and the 22 queries through query_sql giving
PostgreSQL's answers row by row."""

from __future__ import annotations

import datetime as dt
import math
import re
import subprocess
import sys
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation
from pathlib import Path
from typing import Any

import asyncpg
import pytest
import sqlglot
from lakegate.devstack.stack import Stack
from mcp import Client
from sqlglot import exp

from tests.conftest import Source
from tests.mcp_calls import call

HERE = Path(__file__).parent / "tpch"
TABLES = ("region", "nation", "part", "supplier", "partsupp", "customer", "orders", "lineitem")
SCALE = "0.01"


def queries() -> dict[str, str]:
    """The 22 queries of `queries.sql`, by their `-- Qn` heading."""
    found = re.split(r"^-- (Q\d+)$", (HERE / "queries.sql").read_text(), flags=re.MULTILINE)
    return {name: body.strip().rstrip(";") for name, body in zip(found[1::2], found[2::2], strict=True)}


def in_bronze(sql: str, prefix: str) -> str:
    """The query over the synced tables: `lineitem` becomes `bronze.<prefix>_lineitem`."""
    tree = sqlglot.parse_one(sql, read="databricks")
    for table in tree.find_all(exp.Table):
        if table.name in TABLES:
            table.set("this", exp.to_identifier(f"{prefix}_{table.name}"))
            table.set("db", exp.to_identifier("bronze"))
    return tree.sql(dialect="databricks")


def same(left: Any, right: Any) -> bool:
    """One value from each side: numbers to 9 significant digits (decimals to the lakehouse's scale), dates as
    ISO text, text as text."""
    if isinstance(left, dt.date):
        left = left.isoformat()
    if isinstance(left, str) and isinstance(right, str):
        return left.rstrip(" ") == right.rstrip(" ")
    try:
        a, b = Decimal(str(left)), Decimal(str(right))
    except InvalidOperation:
        return bool(left == right)
    if isinstance(right, str) and "." in right and isinstance(left, Decimal):
        # A lakehouse decimal has the scale Databricks gives it (avg of decimal(p,s): s+4 digits, half up).
        return a.quantize(Decimal(1).scaleb(b.as_tuple().exponent), rounding=ROUND_HALF_UP) == b
    return math.isclose(float(a), float(b), rel_tol=1e-9, abs_tol=1e-9)


@pytest.fixture(scope="module")
def generated(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """TPC-H at scale factor 0.01 as CSV files, one per table."""
    out = tmp_path_factory.mktemp("tpch")
    cli = Path(sys.executable).with_name("tpchgen-cli")
    subprocess.run([str(cli), "csv", "-s", SCALE, f"--output-dir={out}"], check=True, capture_output=True)
    return out


async def test_all_22_tpch_queries_through_query_sql_give_postgresqls_answers_row_by_row(
    stack: Stack, source: Source, unique: str, generated: Path
) -> None:
    conn = await asyncpg.connect(source.admin_dsn)
    try:
        await conn.execute((HERE / "schema.sql").read_text())
        for table in TABLES:
            await conn.copy_to_table(table, source=generated / f"{table}.csv", format="csv", header=True)
        await conn.execute("ANALYZE")
        expected = {name: await conn.fetch(sql) for name, sql in queries().items()}
    finally:
        await conn.close()
    assert sum(1 for rows in expected.values() if rows) >= 20, "the workload's answers are not empty"

    name = f"tpch{unique}"
    async with Client(stack.urls.mcp) as client:
        connection = await call(client, "connect_postgres", source.connect_arguments(name))
        for table in TABLES:
            await call(
                client, "sync_table_to_bronze", {"connection_id": connection["connection_id"], "table_name": table}
            )
        described = await call(client, "describe_table", {"table_name": f"bronze.{name}_region"})
        assert {c["name"]: c["source_type"] for c in described["columns"]}["r_name"] == "character(25)"

        wrong: dict[str, str] = {}
        for query, sql in queries().items():
            answer = await call(client, "query_sql", {"sql": in_bronze(sql, name), "max_rows": 10_000})
            want = [list(row.values()) for row in expected[query]]
            got = answer["rows"]
            if len(got) != len(want):
                wrong[query] = f"{len(got)} rows, PostgreSQL {len(want)}"
                continue
            for index, (got_row, want_row) in enumerate(zip(got, want, strict=True)):
                if not all(same(w, g) for w, g in zip(want_row, got_row, strict=True)):
                    wrong[query] = f"row {index}: {got_row} where PostgreSQL has {want_row}"
                    break
    assert wrong == {}
