"""The guard corpus (`data/hostile_queries.sql`): every hostile or malformed statement is refused,
capped or stopped with a clear reason, and none of them changes anything in or outside the lakehouse.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable, Coroutine, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pyarrow as pa
import pytest
from deltalake import DeltaTable
from lakegate.common.contracts.transforms import CreateGoldView, GoldView
from lakegate.common.contracts.warehouse import DescribeTable, QueryResult, TableDescription
from lakegate.common.errors import InvalidInput, LakegateError, NotFound, WarehouseError
from lakegate.loader.app import LoaderState
from lakegate.loader.sqlguard import ReadQuery, Refusal, Refused, check

if TYPE_CHECKING:
    from conftest import Extractor

Query = Callable[..., Coroutine[Any, Any, QueryResult]]
Ask = Callable[..., Coroutine[Any, Any, Any]]

CORPUS = Path(__file__).parent / "data" / "hostile_queries.sql"
CATALOG = "tenant_me"
OTHER = "tenant_them"
OUTSIDE = "/tmp/lakegate-guard-outside"
TABLES = {"bronze": ["orders", "wide"], "silver": ["clean"], "gold": ["summary"]}
ANSWERED = {"truncated", "timeout"}


def _nested(open_: str, inner: str, close: str, times: int) -> str:
    return open_ * times + inner + close * times


#: Statements too large to write into the corpus file, by placeholder; each is over one `SizeLimits` default.
GENERATED = {
    "deep": "SELECT " + _nested("(", "1", ")", 5000),
    "long": "SELECT 1 -- " + "x" * 100_001,
    "deep_case": "SELECT " + _nested("CASE WHEN true THEN ", "1", " END", 50),
    "deep_functions": "SELECT " + _nested("abs(", "1", ")", 100),
    "deep_subqueries": "SELECT " + _nested("(SELECT ", "1", ")", 100),
    "deep_from": "SELECT * FROM " + _nested("(SELECT * FROM ", "orders", ") t", 100),
    "deep_exists": "SELECT 1 WHERE " + _nested("EXISTS (SELECT 1 WHERE ", "true", ")", 100),
    "deep_not": "SELECT " + "NOT " * 500 + "true",
    "deep_minus": "SELECT " + "- " * 300 + "1",
    "deep_casts": "SELECT 1" + "::int" * 300,
    "deep_brackets": "SELECT " + _nested("array(", "1", ")", 100),
    "long_sum": "SELECT " + " + ".join(["1"] * 20_000),
    "union": "SELECT 1 " + "UNION ALL SELECT 1 " * 5000,
    "intersect": "SELECT 1 " + "INTERSECT SELECT 1 " * 300,
    "ctes": "WITH " + ", ".join(f"t{i} AS (SELECT 1)" for i in range(3000)) + " SELECT 1",
    "cte_chain": "WITH t0 AS (SELECT 1 AS x), "
    + ", ".join(f"t{i} AS (SELECT x FROM t{i - 1})" for i in range(1, 200))
    + " SELECT * FROM t199",
    "joins": "SELECT 1 FROM orders o0 " + " ".join(f"JOIN orders o{i} ON true" for i in range(1, 101)),
    "comma_joins": "SELECT 1 FROM " + ", ".join(f"orders o{i}" for i in range(100)),
    "in_list": "SELECT * FROM orders WHERE 1 IN (" + ",".join(["1"] * 15_000) + ")",
    "columns": "SELECT " + "1," * 12_000 + "1",
    "json_path": "SELECT v:" + ".".join(f"k{i}" for i in range(12_000)) + " FROM orders",
    "json_brackets": "SELECT v" + "['k']" * 2000 + " FROM orders",
    "values": "VALUES " + ",".join(["(1)"] * 12_000),
}


@dataclass(frozen=True)
class Case:
    category: str
    sql: str
    line: int

    def written(self, catalog: str, other: str, outside: str) -> str:
        """The statement with its placeholders filled in."""
        generated = self.sql.strip()
        if generated.startswith("{") and generated.endswith("}") and generated[1:-1] in GENERATED:
            return GENERATED[generated[1:-1]]
        return (
            self.sql.replace("{catalog}", catalog)
            .replace("{OTHER}", other.upper())
            .replace("{other}", other)
            .replace("{outside}", outside)
        )


def read_corpus() -> list[Case]:
    cases: list[Case] = []
    category, lines, start = None, [], 0
    for number, line in enumerate(CORPUS.read_text(encoding="utf-8").splitlines(), start=1):
        if line.startswith("=== "):
            if category is not None:
                cases.append(Case(category, "\n".join(lines), start))
            category, lines, start = line[4:].strip(), [], number
        elif category is not None:
            lines.append(line)
    if category is not None:
        cases.append(Case(category, "\n".join(lines), start))
    return cases


CASES = read_corpus()
CATEGORIES = {r.value for r in Refusal} | {"not_found"} | ANSWERED


def test_the_corpus_holds_at_least_200_statements_in_known_categories() -> None:
    assert len(CASES) >= 200
    assert {c.category for c in CASES} == CATEGORIES


@pytest.mark.parametrize("case", CASES, ids=[f"line{c.line}-{c.category}" for c in CASES])
def test_the_guard_gives_each_statement_its_category(case: Case) -> None:
    sql = case.written(CATALOG, OTHER, OUTSIDE)

    def tables_in(layer: str) -> list[str]:
        return TABLES.get(layer, [])

    if case.category in ANSWERED:
        assert isinstance(check(sql, CATALOG, tables_in), ReadQuery)
        return
    with pytest.raises(LakegateError) as refused:
        check(sql, CATALOG, tables_in)
    error = refused.value
    if case.category == "not_found":
        assert isinstance(error, NotFound), error
    else:
        assert isinstance(error, Refused), error
        assert error.category == case.category, error.message
    assert error.message
    assert "_lg_" not in error.message.replace("bronze._lg_bronze__orders does not", "")


def lakehouse_state(root: Path) -> dict[str, tuple[int, str]]:
    """Every file under the lakehouse with its size and content hash."""
    return {
        str(path.relative_to(root)): (path.stat().st_size, hashlib.sha256(path.read_bytes()).hexdigest())
        for path in sorted(root.rglob("*"))
        if path.is_file()
    }


def table_versions(root: Path) -> dict[str, int]:
    return {
        str(log.parent.relative_to(root)): DeltaTable(str(log.parent)).version() for log in root.rglob("_delta_log")
    }


def files_under(directory: Path) -> Iterator[Path]:
    yield from (p for p in directory.rglob("*") if p.is_file()) if directory.exists() else iter(())


@pytest.mark.parametrize(
    "loader_settings", [{"query_timeout_seconds": 1.0, "max_result_bytes": 64 * 1024}], indirect=True
)
async def test_no_statement_of_the_corpus_changes_anything_in_or_outside_the_lakehouse(
    loader: LoaderState,
    extractor: Extractor,
    query: Query,
    ask: Ask,
    tenant_id: str,
    tmp_path: Path,
) -> None:
    # The caller's tables, and another tenant's table in the same lakehouse.
    await extractor.sync(extractor.target("orders"), [pa.record_batch({"n": pa.array(range(5), pa.int64())})])
    await extractor.sync(extractor.target("wide"), [pa.record_batch({"n": pa.array(range(3000), pa.int64())})])
    await extractor.sync(extractor.target("clean", layer="silver"), [pa.record_batch({"n": pa.array([1, 2])})])
    them = type(extractor)(extractor.nc, extractor.js, extractor.topology, f"{tenant_id}them")
    await them.sync(them.target("secret"), [pa.record_batch({"n": pa.array([42], pa.int64())})])
    await ask(
        loader.runtime.topology.warehouse_gold_view,
        CreateGoldView(tenant_id=tenant_id, name="summary", sql="SELECT n FROM silver.clean"),
        GoldView,
    )
    root = loader.settings.lakehouse
    outside = tmp_path / "outside"
    cwd_before = sorted(os.listdir())
    files_before, versions_before = lakehouse_state(root), table_versions(root)
    catalog = extractor.target("orders").catalog

    outcomes: dict[str, int] = {}
    for case in CASES:
        sql = case.written(catalog, them.target("secret").catalog, str(outside))
        try:
            result = await query(sql)
        except InvalidInput as exc:
            outcome = "refused" if case.category not in ANSWERED | {"not_found"} else f"refused: {exc}"
        except NotFound as exc:
            outcome = "not_found" if case.category == "not_found" else f"not found: {exc}"
        except WarehouseError as exc:
            stopped = "ran longer than 1s and was stopped" in str(exc)
            outcome = "timeout" if stopped and case.category == "timeout" else f"warehouse error: {exc}"
        else:
            outcome = "truncated" if result.truncated and case.category == "truncated" else f"answered: {result}"
        expected = {"truncated": "truncated", "timeout": "timeout", "not_found": "not_found"}.get(
            case.category, "refused"
        )
        assert outcome == expected, f"line {case.line}: {sql[:200]!r} → {outcome[:300]}"
        outcomes[outcome] = outcomes.get(outcome, 0) + 1

    assert lakehouse_state(root) == files_before
    assert table_versions(root) == versions_before
    assert list(files_under(outside)) == []
    assert sorted(os.listdir()) == cwd_before
    assert sum(outcomes.values()) == len(CASES)


def _orders(layer: str) -> list[str]:
    return ["orders"] if layer in {"bronze", "silver"} else []


@pytest.mark.parametrize(
    "sql",
    [
        "SELECT " + _nested("(", "1", ")", 24),
        "SELECT " + _nested("NOT (", "true", ")", 24),
        "SELECT " + _nested("CASE WHEN (", "true", ") THEN 1 END", 12),
        "SELECT " + _nested("abs((SELECT ", "1", "))", 12),
        "SELECT " + _nested("(SELECT max(", "1", ") FROM orders)", 12),
        "SELECT * FROM " + _nested("(SELECT * FROM ", "orders", ") t", 24),
        "SELECT " + _nested("named_struct('a', ", "1", ")", 24),
        "SELECT 1 " + "UNION ALL SELECT 1 " * 256,
        "WITH " + ", ".join(f"t{i} AS (SELECT 1)" for i in range(128)) + " SELECT 1",
        "SELECT 1 FROM orders o0 " + " ".join(f"JOIN orders o{i} ON true" for i in range(1, 65)),
        "SELECT 1 FROM orders WHERE 1 IN (" + ",".join(["1"] * 4000) + ")",
        "SELECT " + " + ".join(["1"] * 99),
    ],
    ids=["parens", "not", "case", "functions", "subqueries", "from", "structs", "union", "ctes", "joins", "in", "sum"],
)
def test_a_statement_at_the_size_limits_is_checked_without_reaching_the_recursion_limit(sql: str) -> None:
    assert isinstance(check(sql, CATALOG, _orders), ReadQuery)


def test_a_size_refusal_names_the_limit_the_measured_value_and_the_setting() -> None:
    with pytest.raises(Refused) as refused:
        check(GENERATED["union"], CATALOG, _orders)

    assert refused.value.category == Refusal.TOO_LARGE
    assert refused.value.message == (
        "the query has 5000 UNION / INTERSECT / EXCEPT operations, more than the 256 accepted "
        "(LAKEGATE_LOADER_QUERY_MAX_SET_OPERATIONS): combine fewer queries, or ask the operator to raise the limit"
    )


def test_what_recurses_too_deeply_without_brackets_is_refused_as_too_large() -> None:
    with pytest.raises(Refused) as refused:
        check("SELECT " + "NOT " * 2000 + "true", CATALOG, _orders)

    assert refused.value.category == Refusal.TOO_LARGE
    assert "nested too deeply to check" in refused.value.message


@pytest.mark.parametrize(
    "loader_settings", [{"query_max_joins": 1, "query_max_nodes": 50, "query_max_chars": 500}], indirect=True
)
async def test_the_size_limits_of_the_settings_hold_for_queries_explanations_and_gold_views(
    loader: LoaderState, extractor: Extractor, query: Query, ask: Ask, tenant_id: str
) -> None:
    await extractor.sync(extractor.target("orders", layer="silver"), [pa.record_batch({"n": pa.array([1, 2])})])

    assert (await query("SELECT count(*) FROM silver.orders a JOIN silver.orders b ON a.n = b.n")).rows == [[2]]
    with pytest.raises(
        InvalidInput, match=r"has 2 joins, more than the 1 accepted \(LAKEGATE_LOADER_QUERY_MAX_JOINS\)"
    ):
        await query("SELECT 1 FROM silver.orders a JOIN silver.orders b ON true JOIN silver.orders c ON true")
    with pytest.raises(InvalidInput, match=r"more than the 50 accepted \(LAKEGATE_LOADER_QUERY_MAX_NODES\)"):
        await query("SELECT n FROM silver.orders WHERE n IN (" + ",".join(["1"] * 60) + ")")
    with pytest.raises(InvalidInput, match=r"more than the 500 accepted \(LAKEGATE_LOADER_QUERY_MAX_CHARS\)"):
        await query("SELECT 1 -- " + "x" * 500)
    with pytest.raises(InvalidInput, match=r"LAKEGATE_LOADER_QUERY_MAX_JOINS"):
        await ask(
            loader.runtime.topology.warehouse_gold_view,
            CreateGoldView(
                tenant_id=tenant_id,
                name="joined",
                sql="SELECT a.n FROM silver.orders a JOIN silver.orders b ON true JOIN silver.orders c ON true",
            ),
            GoldView,
        )
    assert not (loader.settings.lakehouse / extractor.target("x").catalog / "gold").exists()


@pytest.mark.parametrize("loader_settings", [{"query_max_nodes": 500}], indirect=True)
async def test_statements_lakegate_builds_itself_are_not_held_to_the_callers_size_limits(
    loader: LoaderState, extractor: Extractor, ask: Ask, tenant_id: str
) -> None:
    wide = pa.record_batch({f"c{i}": pa.array([i, i + 1], pa.int64()) for i in range(200)})
    await extractor.sync(extractor.target("wide", layer="silver"), [wide])
    await ask(
        loader.runtime.topology.warehouse_gold_view,
        CreateGoldView(tenant_id=tenant_id, name="everything", sql="SELECT * FROM silver.wide"),
        GoldView,
    )

    for name in ("silver.wide", "gold.everything"):
        described = await ask(
            loader.runtime.topology.warehouse_tables_describe,
            DescribeTable(tenant_id=tenant_id, table_name=name, with_stats=True),
            TableDescription,
        )
        assert (len(described.columns), described.columns[199].max) == (200, 200)
