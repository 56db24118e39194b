"""The second wall: even SQL that never passed the guard cannot leave DuckDB's sealed session."""

from __future__ import annotations

import asyncio
import threading
from pathlib import Path

import pyarrow as pa
import pyarrow.dataset as ds
import pytest
from lakegate.common.contracts.runs import TableRef
from lakegate.common.errors import WarehouseError
from lakegate.loader.warehouses.sqlengine import EngineLimits, interruptible, session

ORDERS = TableRef(catalog="tenant_a", schema_name="bronze", name="orders")


@pytest.mark.parametrize(
    ("sql", "message"),
    [
        ("COPY (SELECT 1) TO '{out}/copy.csv'", "not exactly one SELECT"),
        ("SELECT 1; COPY (SELECT 1) TO '{out}/copy.csv'", "not exactly one SELECT"),
        ("ATTACH '{out}/other.db' AS other", "not exactly one SELECT"),
        ("SET enable_external_access = true", "not exactly one SELECT"),
        ("INSTALL httpfs", "not exactly one SELECT"),
        ("SELECT * FROM read_csv('/etc/passwd')", "the statement failed"),
        ("SELECT * FROM read_text('/etc/hostname')", "the statement failed"),
        ("SELECT * FROM '{out}/file.csv'", "the statement failed"),
        ("SELECT * FROM glob('/etc/*')", "the statement failed"),
        ("SELECT * FROM secret_python_variable", "the statement failed"),
    ],
)
def test_the_sealed_session_refuses_files_writes_settings_and_python_variables(
    sql: str, message: str, tmp_path: Path
) -> None:
    secret_python_variable = pa.table({"password": ["hunter2"]})  # noqa: F841 - what a replacement scan would find
    (tmp_path / "file.csv").write_text("a\n1\n")
    before = sorted(tmp_path.iterdir())
    datasets = {"_lg_bronze__orders": ds.dataset(pa.table({"n": [1, 2]}))}

    with (
        session(datasets, {"_lg_bronze__orders": ORDERS}, timeout=5, limits=EngineLimits(threads=1)) as sealed,
        pytest.raises(WarehouseError, match=message),
    ):
        sealed.table(sql.replace("{out}", str(tmp_path)))

    assert sorted(tmp_path.iterdir()) == before


def test_the_sealed_session_reads_its_own_tables() -> None:
    datasets = {"_lg_bronze__orders": ds.dataset(pa.table({"n": [1, 2]}))}

    with session(datasets, {"_lg_bronze__orders": ORDERS}, timeout=5, limits=EngineLimits(threads=1)) as sealed:
        assert sealed.table("SELECT sum(n) AS s FROM _lg_bronze__orders").to_pylist() == [{"s": 3}]


def test_a_query_that_needs_more_memory_than_its_limit_fails_saying_what_to_do() -> None:
    wide = pa.table({"n": pa.array(range(400_000), pa.int64())})
    datasets = {"_lg_bronze__orders": ds.dataset(wide)}
    limits = EngineLimits(threads=1, memory_limit="8MB")

    with (
        session(datasets, {"_lg_bronze__orders": ORDERS}, timeout=30, limits=limits) as sealed,
        pytest.raises(WarehouseError, match=r"more memory than one query may use \(8MB\).*QUERY_MEMORY_LIMIT"),
    ):
        sealed.table("SELECT list(n || 'padding padding padding') AS all_of_them FROM _lg_bronze__orders")


async def test_a_statement_whose_awaiting_task_is_cancelled_is_interrupted_in_its_thread() -> None:
    wide = ds.dataset(pa.table({"n": pa.array(range(3000), pa.int64())}))
    datasets = {"_lg_bronze__orders": wide}
    running, ended = threading.Event(), threading.Event()
    outcome: list[BaseException] = []
    slow = (
        "SELECT count(*) FROM _lg_bronze__orders a CROSS JOIN _lg_bronze__orders b "
        "CROSS JOIN _lg_bronze__orders c WHERE a.n + b.n + c.n = -1"
    )

    def run() -> None:
        # Minutes of work, with a 600 s timeout: only the interrupt of the cancelled task stops it.
        with session(datasets, {"_lg_bronze__orders": ORDERS}, timeout=600, limits=EngineLimits(threads=1)) as s:
            running.set()
            try:
                s.table(slow)
            except WarehouseError as exc:
                outcome.append(exc)
            finally:
                ended.set()

    async def query() -> None:
        with interruptible():
            await asyncio.to_thread(run)

    task = asyncio.create_task(query())
    await asyncio.to_thread(running.wait, 30)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert await asyncio.to_thread(ended.wait, 30)  # the statement's thread ends, interrupted

    assert "was stopped" in str(outcome[0])


def test_a_session_sees_no_table_of_an_earlier_or_concurrent_session_on_the_same_database() -> None:
    limits = EngineLimits(threads=1)
    first = {"_lg_bronze__orders": ds.dataset(pa.table({"n": [1, 2]}))}
    with session(first, {"_lg_bronze__orders": ORDERS}, timeout=5, limits=limits) as sealed:
        assert sealed.table("SELECT count(*) AS c FROM _lg_bronze__orders").to_pylist() == [{"c": 2}]
        # Another statement on this thread's database while the first is open: its tables are its own.
        with (
            session({}, {}, timeout=5, limits=limits) as other,
            pytest.raises(WarehouseError, match="the statement failed"),
        ):
            other.table("SELECT * FROM _lg_bronze__orders")

    with (
        session({}, {}, timeout=5, limits=limits) as later,
        pytest.raises(WarehouseError, match="the statement failed"),
    ):
        later.table("SELECT * FROM _lg_bronze__orders")
    with session({}, {}, timeout=5, limits=limits) as later:
        assert later.table("SELECT current_setting('TimeZone') AS tz").to_pylist() == [{"tz": "UTC"}]
