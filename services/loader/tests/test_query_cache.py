"""The local lakehouse's answer cache: the same answer, never stale, never volatile, never another tenant's."""

from __future__ import annotations

import base64
import dataclasses
import shutil
from collections.abc import Callable, Coroutine
from typing import TYPE_CHECKING, Any

import pyarrow as pa
import pytest
from deltalake import write_deltalake
from lakegate.common.contracts.transforms import (
    CreateGoldView,
    GoldView,
    TransformResult,
    TransformToSilver,
    UploadFile,
    UploadResult,
)
from lakegate.common.contracts.warehouse import QueryResult, ResultColumn, RunQuery
from lakegate.common.errors import NotFound, Unavailable
from lakegate.loader.app import LoaderState
from lakegate.loader.warehouses.delta import LocalLakehouse
from lakegate.loader.warehouses.determinism import Determinism
from lakegate.loader.warehouses.duckdbsql import EngineQuery
from lakegate.loader.warehouses.querycache import ENTRY_OVERHEAD, Answers, Plan
from lakegate.loader.warehouses.tablestate import TableStates

if TYPE_CHECKING:
    from conftest import Extractor

Query = Callable[..., Coroutine[Any, Any, QueryResult]]
Ask = Callable[..., Coroutine[Any, Any, Any]]
#: One request at a time per tenant and none waiting: a held lane refuses anything that needs one.
ONE_LANE = {"lane_per_tenant": 1, "lane_waiting": 0}


def numbers(count: int, start: int = 0) -> pa.RecordBatch:
    return pa.record_batch({"n": pa.array(range(start, start + count), pa.int64())})


def answers(loader: LoaderState) -> Answers:
    assert isinstance(loader.warehouse, LocalLakehouse)
    return loader.warehouse.answers


@pytest.mark.parametrize("loader_settings", [ONE_LANE], indirect=True)
async def test_a_repeated_statement_gets_the_same_answer_from_memory_without_a_lane(
    loader: LoaderState, extractor: Extractor, query: Query, tenant_id: str
) -> None:
    await extractor.sync(extractor.target("orders"), [numbers(5)])
    first = await query("SELECT count(*) AS c, sum(n) AS s FROM orders")

    async with loader.handlers.lanes.enter(tenant_id):  # the tenant's only lane is taken
        again = await query("SELECT count(*) AS c, sum(n) AS s FROM orders")
        with pytest.raises(Unavailable, match="LANE_PER_TENANT"):
            await query("SELECT max(n) FROM orders")  # asked for the first time: it needs a lane

    assert again == first
    assert first.rows == [[5, "10"]]
    assert len(answers(loader)) == 1


async def test_two_spellings_of_one_statement_share_one_answer(
    loader: LoaderState, extractor: Extractor, query: Query
) -> None:
    await extractor.sync(extractor.target("orders"), [numbers(3)])

    first = await query("SELECT sum(n) FROM orders")
    second = await query("select   SUM(n)\nfrom bronze.orders -- the same")

    assert first == second
    assert len(answers(loader)) == 1


async def test_a_sync_into_a_table_read_makes_the_next_answer_new(
    loader: LoaderState, extractor: Extractor, query: Query
) -> None:
    orders = extractor.target("orders")
    await extractor.sync(orders, [numbers(3)])
    assert (await query("SELECT count(*) FROM orders")).rows == [[3]]
    await query("SELECT count(*) FROM orders")

    await extractor.sync(orders, [numbers(2, start=3)], "incremental")
    assert (await query("SELECT count(*) FROM orders")).rows == [[5]]
    await extractor.sync(orders, [numbers(1)], "full")
    assert (await query("SELECT count(*) FROM orders")).rows == [[1]]


async def test_a_commit_by_another_writer_on_the_same_lakehouse_is_seen(
    loader: LoaderState, extractor: Extractor, query: Query
) -> None:
    orders = extractor.target("orders")
    await extractor.sync(orders, [numbers(3)])
    assert (await query("SELECT count(*) FROM orders")).rows == [[3]]
    assert isinstance(loader.warehouse, LocalLakehouse)

    # Another loader replica (or any Delta writer) commits: this loader learns of it only from the files.
    write_deltalake(str(loader.warehouse.table_path(orders)), pa.table(numbers(4, start=3)), mode="append")

    assert (await query("SELECT count(*) FROM orders")).rows == [[7]]


async def test_a_transform_into_a_silver_table_read_makes_the_next_answer_new(
    loader: LoaderState, extractor: Extractor, ask: Ask, query: Query, tenant_id: str
) -> None:
    await extractor.sync(extractor.target("customers"), [numbers(3)])
    transform = TransformToSilver(tenant_id=tenant_id, bronze_table="customers")
    await ask(loader.runtime.topology.warehouse_transform, transform, TransformResult)
    assert (await query("SELECT count(*) FROM silver.customers")).rows == [[3]]

    await extractor.sync(extractor.target("customers"), [numbers(6)])
    await ask(loader.runtime.topology.warehouse_transform, transform, TransformResult)

    assert (await query("SELECT count(*) FROM silver.customers")).rows == [[6]]


async def test_an_upload_replacing_a_table_read_makes_the_next_answer_new(
    loader: LoaderState, ask: Ask, query: Query, tenant_id: str
) -> None:
    async def upload(csv: str) -> None:
        request = UploadFile(
            tenant_id=tenant_id,
            file_name="prices.csv",
            dataset_name="prices",
            content_base64=base64.b64encode(csv.encode()).decode(),
        )
        await ask(loader.runtime.topology.warehouse_upload, request, UploadResult)

    await upload("price\n1\n2\n")
    assert (await query("SELECT sum(price) FROM prices")).rows == [["3"]]

    await upload("price\n10\n20\n")

    assert (await query("SELECT sum(price) FROM prices")).rows == [["30"]]


async def silver(loader: LoaderState, extractor: Extractor, ask: Ask, rows: int) -> None:
    """`silver.orders` with `rows` numbers, by a sync and a transform."""
    await extractor.sync(extractor.target("orders"), [numbers(rows)])
    transform = TransformToSilver(tenant_id=extractor.tenant_id, bronze_table="orders")
    await ask(loader.runtime.topology.warehouse_transform, transform, TransformResult)


async def define(loader: LoaderState, ask: Ask, tenant_id: str, name: str, sql: str) -> None:
    request = CreateGoldView(tenant_id=tenant_id, name=name, sql=sql)
    await ask(loader.runtime.topology.warehouse_gold_view, request, GoldView)


async def test_a_gold_view_defined_again_or_over_a_new_commit_answers_anew(
    loader: LoaderState, extractor: Extractor, ask: Ask, query: Query, tenant_id: str
) -> None:
    await silver(loader, extractor, ask, 4)

    await define(loader, ask, tenant_id, "big", "SELECT n FROM silver.orders WHERE n >= 2")
    assert (await query("SELECT count(*) FROM gold.big")).rows == [[2]]

    await define(loader, ask, tenant_id, "big", "SELECT n FROM silver.orders WHERE n >= 1")
    assert (await query("SELECT count(*) FROM gold.big")).rows == [[3]]

    await silver(loader, extractor, ask, 10)
    assert (await query("SELECT count(*) FROM gold.big")).rows == [[9]]


@pytest.mark.parametrize(
    "sql",
    [
        "SELECT rand() AS r",
        "SELECT current_timestamp() AS t",
        "SELECT current_date() AS d",
        "SELECT uuid() AS u",
        "SELECT n, rand() AS r FROM orders",
        "SELECT n FROM orders ORDER BY rand()",
        "SELECT n FROM orders WHERE n < (SELECT max(n) * rand() FROM orders)",
        "SELECT count(*) FROM orders TABLESAMPLE (50 PERCENT)",
    ],
)
async def test_a_statement_with_a_volatile_function_or_a_sample_is_never_kept(
    sql: str, loader: LoaderState, extractor: Extractor, query: Query
) -> None:
    await extractor.sync(extractor.target("orders"), [numbers(20)])

    await query(sql)
    await query(sql)

    assert len(answers(loader)) == 0


async def test_random_values_are_drawn_again_on_every_call(
    loader: LoaderState, extractor: Extractor, query: Query
) -> None:
    drawn = {(await query("SELECT rand() AS r")).rows[0][0] for _ in range(3)}

    assert len(drawn) == 3


async def test_a_gold_view_that_calls_a_volatile_function_is_never_kept(
    loader: LoaderState, extractor: Extractor, ask: Ask, query: Query, tenant_id: str
) -> None:
    await silver(loader, extractor, ask, 3)
    await define(loader, ask, tenant_id, "noisy", "SELECT n, rand() AS r FROM silver.orders")

    first = await query("SELECT * FROM gold.noisy")
    second = await query("SELECT * FROM gold.noisy")

    assert first != second
    assert len(answers(loader)) == 0


async def test_tenants_never_get_each_others_answers(
    loader: LoaderState, extractor: Extractor, query: Query, tenant_id: str
) -> None:
    other = dataclasses.replace(extractor, tenant_id=f"{tenant_id}x")
    await extractor.sync(extractor.target("orders"), [numbers(3)])
    await other.sync(other.target("orders"), [numbers(7)])
    rt = loader.runtime

    async def ask_as(tenant: str, sql: str) -> QueryResult:
        request = RunQuery(tenant_id=tenant, sql=sql, max_rows=100)
        return await rt.rpc.call(rt.topology.warehouse_query, request, QueryResult)

    mine = [await ask_as(tenant_id, "SELECT count(*) FROM orders") for _ in range(2)]
    theirs = [await ask_as(other.tenant_id, "SELECT count(*) FROM orders") for _ in range(2)]

    assert [answer.rows for answer in mine] == [[[3]], [[3]]]
    assert [answer.rows for answer in theirs] == [[[7]], [[7]]]
    assert len(answers(loader)) == 2


async def test_a_row_cap_is_part_of_the_key(loader: LoaderState, extractor: Extractor, query: Query) -> None:
    await extractor.sync(extractor.target("orders"), [numbers(5)])

    few = await query("SELECT n FROM orders ORDER BY n", max_rows=2)
    all_of_them = await query("SELECT n FROM orders ORDER BY n", max_rows=10)

    assert (few.rows, few.truncated) == ([[0], [1]], True)
    assert (len(all_of_them.rows), all_of_them.truncated) == (5, False)


@pytest.mark.parametrize("loader_settings", [{"query_cache_bytes": 64 * 1024}], indirect=True)
async def test_the_kept_answers_stay_within_their_byte_bound(
    loader: LoaderState, extractor: Extractor, query: Query
) -> None:
    await extractor.sync(extractor.target("orders"), [numbers(500)])
    kept = answers(loader)

    for limit in range(1, 60):
        await query(f"SELECT n, repeat('x', 40) AS pad FROM orders ORDER BY n LIMIT {limit * 5}")
        assert kept.held_bytes <= kept.most_bytes

    assert 0 < len(kept) < 59


@pytest.mark.parametrize("loader_settings", [{"query_cache_bytes": 0, **ONE_LANE}], indirect=True)
async def test_with_the_cache_off_every_statement_runs_again_in_its_lane(
    loader: LoaderState, extractor: Extractor, query: Query, tenant_id: str
) -> None:
    await extractor.sync(extractor.target("orders"), [numbers(5)])
    first = await query("SELECT sum(n) FROM orders")
    second = await query("SELECT sum(n) FROM orders")

    async with loader.handlers.lanes.enter(tenant_id):
        with pytest.raises(Unavailable, match="LANE_PER_TENANT"):
            await query("SELECT sum(n) FROM orders")

    assert first == second
    assert len(answers(loader)) == 0


def result(rows: int) -> QueryResult:
    return QueryResult(
        columns=[ResultColumn(name="n", type="int64")], rows=[[i] for i in range(rows)], row_count=rows, truncated=False
    )


def plan(sql: str, *, deterministic: bool = True) -> Plan:
    return Plan(EngineQuery(sql, {}), (), (), deterministic)


def test_least_recently_used_answers_go_first_and_big_ones_are_not_kept() -> None:
    size = len(result(10).model_dump_json()) + len("SELECT 0") + ENTRY_OVERHEAD
    kept = Answers(most_bytes=8 * size)  # eight answers of `size`; one of more than `size` is not kept

    for i in range(8):
        kept.put("tenant_a", plan(f"SELECT {i}"), 10, result(10))
    assert kept.get("tenant_a", plan("SELECT 0"), 10) is not None  # used: now the most recent
    kept.put("tenant_a", plan("SELECT 8"), 10, result(10))
    kept.put("tenant_a", plan("SELECT 9"), 10, result(11))

    assert kept.held_bytes <= kept.most_bytes
    still = [i for i in range(10) if kept.get("tenant_a", plan(f"SELECT {i}"), 10) is not None]
    assert still == [0, 2, 3, 4, 5, 6, 7, 8]
    assert kept.get("tenant_b", plan("SELECT 0"), 10) is None
    assert kept.get("tenant_a", plan("SELECT 0"), 9) is None


def test_a_plan_that_is_not_deterministic_is_never_kept() -> None:
    kept = Answers(most_bytes=1 << 20)

    kept.put("tenant_a", plan("SELECT random()", deterministic=False), 10, result(1))

    assert len(kept) == 0


@pytest.mark.parametrize(
    ("sql", "deterministic"),
    [
        ("SELECT 1", True),
        ("SELECT count(*), sum(a), avg(a) FROM t GROUP BY b HAVING count(*) > 1", True),
        ("SELECT a + 1, a || 'x', CAST(a AS VARCHAR), coalesce(a, 0), CASE WHEN a > 1 THEN 1 END FROM t", True),
        ("SELECT row_number() OVER (ORDER BY a), lag(a) OVER (ORDER BY a) FROM t", True),
        ("SELECT date_trunc('day', d), strftime(d, '%Y'), repeat('x', 3) FROM t", True),
        ("SELECT random()", False),
        ("SELECT uuid()", False),
        ("SELECT gen_random_uuid()", False),
        ("SELECT now()", False),
        ("SELECT CURRENT_TIMESTAMP", False),
        ("SELECT CURRENT_DATE", False),
        ("SELECT current_user", False),
        ("SELECT current_setting('threads')", False),
        ("SELECT a FROM t ORDER BY random()", False),
        ("SELECT a FROM t WHERE a IN (SELECT random() FROM t)", False),
        ("SELECT a FROM t TABLESAMPLE 10%", False),
        ("SELECT a FROM t USING SAMPLE 5", False),
        ("SELECT * FROM range(3)", False),  # a table function: no stability, so not kept
        ("SELECT nextval('s')", False),
        ("SELECT FROM WHERE", False),  # what DuckDB cannot parse
    ],
)
def test_duckdb_says_which_statements_are_deterministic(sql: str, deterministic: bool) -> None:
    determinism = Determinism()
    try:
        assert determinism.deterministic(sql) is deterministic
    finally:
        determinism.close()


def test_a_table_state_changes_with_every_commit_and_when_the_table_is_written_again(tmp_path: Any) -> None:
    path = str(tmp_path / "t")
    states = TableStates()
    assert states.delta(path) is None

    write_deltalake(path, pa.table(numbers(1)))
    first = states.delta(path)
    assert states.delta(path) == first
    write_deltalake(path, pa.table(numbers(1)), mode="append")
    second = states.delta(path)
    assert second != first

    shutil.rmtree(path)
    write_deltalake(path, pa.table(numbers(1)))
    write_deltalake(path, pa.table(numbers(1)), mode="append")
    assert states.delta(path) != second  # the same version of another table


async def test_a_table_dropped_after_its_statement_was_planned_is_not_found_again(
    loader: LoaderState, extractor: Extractor, query: Query
) -> None:
    orders = extractor.target("orders")
    await extractor.sync(orders, [numbers(3)])
    await extractor.sync(extractor.target("users"), [numbers(1)])
    assert (await query("SELECT count(*) FROM orders")).rows == [[3]]
    assert isinstance(loader.warehouse, LocalLakehouse)

    shutil.rmtree(loader.warehouse.table_path(orders))

    with pytest.raises(NotFound, match="tables in bronze: users"):
        await query("SELECT count(*) FROM orders")
