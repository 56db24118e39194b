"""SQL through the loader's query handler: what the guard refuses, row caps, and the timeout."""

from __future__ import annotations

import asyncio
import multiprocessing
import resource
import shutil
import time
from collections.abc import Callable, Coroutine
from typing import TYPE_CHECKING, Any

import pyarrow as pa
import pytest
from lakegate.common.contracts.rpc import CancelCall
from lakegate.common.contracts.warehouse import QueryResult, RunQuery
from lakegate.common.errors import Cancelled, InvalidInput, NotFound, WarehouseError
from lakegate.loader.app import LoaderState
from lakegate.loader.warehouses.delta import LocalLakehouse
from lakegate.loader.warehouses.queryprocess import IDLE_NAME, IDLE_WORKERS

if TYPE_CHECKING:
    from conftest import Extractor

Query = Callable[..., Coroutine[Any, Any, QueryResult]]


def numbers(count: int) -> pa.RecordBatch:
    return pa.record_batch({"n": pa.array(range(count), pa.int64())})


@pytest.mark.parametrize(
    ("sql", "reason"),
    [
        ("SELECT * FROM orders; SELECT * FROM orders", "2 statements"),
        ("SELECT 1; DROP TABLE orders", "2 statements"),
        ("DELETE FROM orders", "this is DELETE"),
        ("INSERT INTO orders VALUES (1)", "this is INSERT"),
        ("UPDATE orders SET n = 1", "this is UPDATE"),
        ("DROP TABLE orders", "this is DROP"),
        ("CREATE TABLE x AS SELECT * FROM orders", "this is CREATE"),
        ("MERGE INTO orders USING orders AS o ON true WHEN MATCHED THEN DELETE", "this is MERGE"),
        ("OPTIMIZE orders", "this is OPTIMIZE"),
        ("WITH gone AS (DELETE FROM orders RETURNING *) SELECT * FROM gone", "DELETE is not allowed"),
        ("SELECT * INTO copy FROM orders", "SELECT ... INTO is not allowed"),
        ("SELECT * FROM tenant_other.bronze.orders", "catalog `tenant_other` is not yours"),
        ("SELECT * FROM information_schema.tables", "schema `information_schema` does not exist"),
        ("SELECT * FROM parquet.`/etc/passwd`", "file paths"),
        ("SELECT * FROM `/var/lib/lakehouse/orders`", "file paths"),
        ("SELECT * FROM json.`s3://bucket/key`", "file paths"),
        ("SELECT * FROM read_files('/etc/passwd')", "read_files() is not allowed"),
        ("SELECT * FROM read_csv('/etc/passwd')", "read_csv() is not allowed"),
        ("SELECT * FROM range(10)", "table function range() is not allowed"),
        ("SELECT * FROM orders VERSION AS OF 0", "time travel"),
        ("SELECT * FROM orders WHERE n = ?", "query parameters"),
        ("", "the SQL is empty"),
        (
            "SELEC * FRM orders",
            "only SELECT, WITH, VALUES, SHOW TABLES and DESCRIBE are allowed (also UNION); this is `SELEC`",
        ),
        ("SELECT * FROM orders WHERE (n = 1", "could not be parsed as Databricks SQL"),
    ],
)
async def test_the_guard_refuses_what_is_not_one_read_only_query_of_the_own_catalog(
    sql: str, reason: str, extractor: Extractor, query: Query
) -> None:
    await extractor.sync(extractor.target("orders"), [numbers(3)])

    with pytest.raises(InvalidInput) as refused:
        await query(sql)

    assert reason in str(refused.value)


async def test_an_unknown_table_is_not_found_and_the_existing_ones_are_listed(
    extractor: Extractor, query: Query
) -> None:
    await extractor.sync(extractor.target("orders"), [numbers(3)])
    await extractor.sync(extractor.target("users"), [numbers(1)])

    with pytest.raises(NotFound) as missing:
        await query("SELECT * FROM bronze.ordres")

    assert str(missing.value) == (
        f"table {extractor.target('ordres').catalog}.bronze.ordres does not exist; tables in bronze: orders, users"
    )


async def test_every_way_of_naming_an_own_table_reads_the_same_table(extractor: Extractor, query: Query) -> None:
    await extractor.sync(extractor.target("orders"), [numbers(3)])
    catalog = extractor.target("orders").catalog

    for name in ("orders", "bronze.orders", f"{catalog}.bronze.orders", "BRONZE.Orders", "`orders`"):
        result = await query(f"SELECT count(*) AS c FROM {name}")
        assert result.rows == [[3]], name


async def test_databricks_sql_is_translated_and_joins_ctes_and_unions_work(extractor: Extractor, query: Query) -> None:
    await extractor.sync(extractor.target("orders"), [numbers(5)])
    await extractor.sync(extractor.target("picked", layer="silver"), [numbers(2)])

    result = await query(
        "WITH big AS (SELECT n FROM orders WHERE n >= 3) "
        "SELECT o.n, nvl(p.n, -1) AS picked FROM bronze.orders o LEFT JOIN silver.picked p ON o.n = p.n "
        "WHERE o.n IN (SELECT n FROM big) OR o.n < 1 "
        "UNION ALL SELECT 100, date_diff(DATE'2024-03-01', DATE'2024-02-01') ORDER BY 1"
    )

    assert result.rows == [[0, 0], [3, -1], [4, -1], [100, 29]]


async def test_the_row_cap_cuts_the_rows_and_says_so(extractor: Extractor, query: Query) -> None:
    await extractor.sync(extractor.target("ten"), [numbers(10)])

    capped = await query("SELECT n FROM ten ORDER BY n DESC", max_rows=3)
    exact = await query("SELECT n FROM ten ORDER BY n DESC", max_rows=10)

    assert (capped.rows, capped.row_count, capped.truncated) == ([[9], [8], [7]], 3, True)
    assert (exact.row_count, exact.truncated) == (10, False)


@pytest.mark.parametrize("loader_settings", [{"query_timeout_seconds": 1.0}], indirect=True)
async def test_a_query_running_past_the_timeout_is_stopped(extractor: Extractor, query: Query) -> None:
    await extractor.sync(extractor.target("wide"), [numbers(3000)])

    started = time.monotonic()
    with pytest.raises(WarehouseError) as stopped:
        # 27 billion combinations: minutes of work unless the timer interrupts DuckDB.
        await query("SELECT count(*) FROM wide a CROSS JOIN wide b CROSS JOIN wide c WHERE a.n + b.n + c.n = -1")
    elapsed = time.monotonic() - started

    assert "ran longer than 1s and was stopped" in str(stopped.value)
    assert elapsed < 10


@pytest.mark.parametrize("loader_settings", [{"query_timeout_seconds": 5.0}], indirect=True)
async def test_a_quick_query_is_answered_while_a_long_one_runs(extractor: Extractor, query: Query) -> None:
    await extractor.sync(extractor.target("wide"), [numbers(3000)])
    slow = asyncio.create_task(
        query("SELECT count(*) FROM wide a CROSS JOIN wide b CROSS JOIN wide c WHERE a.n + b.n + c.n = -1")
    )
    quick = asyncio.create_task(query("SELECT count(*) FROM wide"))

    done, _ = await asyncio.wait({slow, quick}, return_when=asyncio.FIRST_COMPLETED)

    assert done == {quick}
    assert quick.result().rows == [[3000]]
    with pytest.raises(WarehouseError):
        await slow


async def test_a_failing_query_names_tables_as_the_caller_wrote_them(extractor: Extractor, query: Query) -> None:
    await extractor.sync(extractor.target("orders"), [numbers(3)])

    with pytest.raises(WarehouseError) as failed:
        await query("SELECT missing_column FROM bronze.orders")

    assert "missing_column" in str(failed.value)
    assert "_lg_" not in str(failed.value)


@pytest.mark.parametrize("loader_settings", [{"max_result_bytes": 10_000}], indirect=True)
async def test_results_are_cut_at_the_byte_limit_and_marked_truncated(
    loader: LoaderState, extractor: Extractor, query: Query
) -> None:
    text = pa.record_batch({"s": pa.array(["x" * 1000] * 50)})
    await extractor.sync(extractor.target("texts"), [text])

    result = await query("SELECT s FROM texts", max_rows=50)

    assert result.truncated
    assert 0 < result.row_count < 50
    assert result.row_count * 1000 <= loader.settings.max_result_bytes


async def test_show_tables_and_describe_are_answered_from_the_lakehouse_metadata(
    extractor: Extractor, query: Query
) -> None:
    await extractor.sync(extractor.target("orders"), [numbers(3)])
    await extractor.sync(extractor.target("order_items"), [numbers(1)])
    await extractor.sync(extractor.target("users"), [numbers(1)])
    await extractor.sync(extractor.target("clean", layer="silver"), [pa.record_batch({"d": pa.array([1.5])})])
    catalog = extractor.target("orders").catalog

    shown = await query("SHOW TABLES")
    in_silver = await query(f"SHOW TABLES IN {catalog}.silver")
    matching = await query("show tables from bronze like 'order*|us*'")
    described = await query("DESCRIBE TABLE silver.clean")
    schemas = await query("SHOW SCHEMAS")

    assert [c.name for c in shown.columns] == ["database", "tableName", "isTemporary"]
    assert shown.rows == [["bronze", "order_items", False], ["bronze", "orders", False], ["bronze", "users", False]]
    assert in_silver.rows == [["silver", "clean", False]]
    assert [r[1] for r in matching.rows] == ["order_items", "orders", "users"]
    assert described.rows == [["d", "double", None]]
    assert schemas.rows == [["bronze"], ["silver"], ["gold"]]
    with pytest.raises(InvalidInput, match="catalog `tenant_other` is not yours"):
        await query("SHOW TABLES IN tenant_other.bronze")
    with pytest.raises(NotFound, match="tables in silver: clean"):
        await query("DESCRIBE silver.nothing")


async def test_avg_of_a_decimal_column_is_an_exact_decimal_rounded_half_up_as_on_databricks(
    extractor: Extractor, query: Query
) -> None:
    amounts = pa.array(["-1.500", "-2.250", "-3.125", None]).cast(pa.decimal128(12, 3))
    groups = pa.array([1, 1, 1, 2], pa.int64())
    await extractor.sync(extractor.target("amounts"), [pa.record_batch({"g": groups, "amount": amounts})])

    result = await query("SELECT g, avg(amount) AS mean, avg(g) AS plain FROM amounts GROUP BY g ORDER BY g")

    assert [c.type for c in result.columns] == ["int64", "decimal128(16, 7)", "double"]
    assert result.rows == [[1, "-2.2916667", 1.0], [2, None, 2.0]]


async def test_values_without_a_table_are_a_read_query(query: Query) -> None:
    result = await query("VALUES (1, 'a'), (2, 'b')")

    assert result.rows == [[1, "a"], [2, "b"]]


@pytest.mark.parametrize("loader_settings", [{"query_process_memory": "256MB"}], indirect=True)
@pytest.mark.parametrize(
    "sql",
    [
        "SELECT len(range(0, 100000000)) AS n",
        "SELECT length(repeat('x', 1000000000)) AS n",
        "SELECT list_sum(range(0, 60000000)) AS n FROM orders",
    ],
)
async def test_lists_and_strings_the_engine_limit_misses_fail_at_the_process_limit_and_the_loader_stays_small(
    sql: str, extractor: Extractor, query: Query
) -> None:
    await extractor.sync(extractor.target("orders"), [numbers(3)])
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024

    with pytest.raises(WarehouseError) as refused:
        await query(sql)

    assert "more memory than one query may use (128MB in the engine, 256MB for its process)" in str(refused.value)
    assert "LAKEGATE_LOADER_QUERY_PROCESS_MEMORY" in str(refused.value)
    assert resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 - before < 128 * 1024**2
    assert (await query("SELECT count(*) AS c FROM orders")).rows == [[3]]


async def test_a_list_that_fits_the_process_limit_is_answered(extractor: Extractor, query: Query) -> None:
    await extractor.sync(extractor.target("orders"), [numbers(3)])

    result = await query("SELECT len(range(0, 2000000)) AS n FROM orders LIMIT 1")

    assert result.rows == [[2000000]]


@pytest.mark.parametrize("loader_settings", [{"query_process_memory": "256MB"}], indirect=True)
async def test_every_statement_a_reused_worker_runs_gets_the_whole_process_limit_and_no_more(
    extractor: Extractor, query: Query
) -> None:
    await extractor.sync(extractor.target("orders"), [numbers(3)])

    # More rounds than idle workers, so workers that answered before (and ones that replaced a failed
    # one) run each kind of statement again.
    for _ in range(IDLE_WORKERS + 2):
        with pytest.raises(WarehouseError) as refused:
            await query("SELECT len(range(0, 100000000)) AS n")
        fits = await query("SELECT len(range(0, 2000000)) AS n FROM orders LIMIT 1")

        assert "more memory than one query may use" in str(refused.value)
        assert fits.rows == [[2000000]]


async def test_statement_processes_killed_while_idle_cost_no_caller_an_error(
    extractor: Extractor, query: Query
) -> None:
    await extractor.sync(extractor.target("orders"), [numbers(3)])
    await query("SELECT count(*) FROM orders")  # the loader's workers are up
    idle = [child for child in multiprocessing.active_children() if child.name == IDLE_NAME]
    for child in idle:
        child.kill()  # as the OOM killer would

    answers = [(await query("SELECT count(*) FROM orders")).rows for _ in range(IDLE_WORKERS + 1)]

    assert idle
    assert answers == [[[3]]] * (IDLE_WORKERS + 1)


async def test_a_table_replaced_or_written_anew_is_read_at_its_latest_version_by_every_worker(
    loader: LoaderState, extractor: Extractor, query: Query
) -> None:
    target = extractor.target("orders")
    assert isinstance(loader.warehouse, LocalLakehouse)
    path = loader.warehouse.table_path(target)
    rounds = IDLE_WORKERS + 2  # every kept worker has the table open before it changes

    await extractor.sync(target, [numbers(3)])
    first = [(await query("SELECT count(*) FROM orders")).rows for _ in range(rounds)]
    await extractor.sync(target, [numbers(5)])
    replaced = [(await query("SELECT count(*) FROM orders")).rows for _ in range(rounds)]
    shutil.rmtree(path)  # the table is gone; the next sync writes a new one at the same path, version 0 again
    await extractor.sync(target, [numbers(2)])
    anew = [(await query("SELECT count(*), max(n) FROM orders")).rows for _ in range(rounds)]

    assert first == [[[3]]] * rounds
    assert replaced == [[[5]]] * rounds
    assert anew == [[[2, 1]]] * rounds


@pytest.mark.parametrize("loader_settings", [{"query_timeout_seconds": 600.0}], indirect=True)
async def test_a_query_whose_caller_cancels_it_is_stopped_in_the_engine_and_answered_cancelled(
    extractor: Extractor, loader: LoaderState, tenant_id: str
) -> None:
    await extractor.sync(extractor.target("wide"), [numbers(3000)])
    rt = loader.runtime
    call_id = "call_test_cancel"
    slow = asyncio.create_task(
        rt.rpc.call(
            rt.topology.warehouse_query,
            RunQuery(
                tenant_id=tenant_id,
                # Minutes of work; only the cancel can stop it before the 600 s timeout.
                sql="SELECT count(*) FROM wide a CROSS JOIN wide b CROSS JOIN wide c WHERE a.n + b.n + c.n = -1",
                call_id=call_id,
            ),
            QueryResult,
            timeout=600,
        )
    )
    # One cancel, as the edge sends it: whether the loader took the request up yet or not, the query stops.
    await rt.broker.publish(CancelCall(call_id=call_id), rt.topology.call_cancel(call_id))

    with pytest.raises(Cancelled) as cancelled:
        await slow
    after = await rt.rpc.call(
        rt.topology.warehouse_query, RunQuery(tenant_id=tenant_id, sql="SELECT count(*) FROM wide"), QueryResult
    )

    assert str(cancelled.value).startswith("the query was stopped: its caller")
    assert after.rows == [[3000]]
