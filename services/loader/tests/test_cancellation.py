"""Uploads, transforms and statistics stop when their caller cancels them, and write nothing; their
statements run under the query process's memory cap.

The loader runs in this process, so a test waits (on `CallStops.running`) until the call has begun,
or until its statement's process runs, before it sends the one cancel the edge would send.
"""

from __future__ import annotations

import asyncio
import base64
import multiprocessing
import resource
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, TypeVar

import pyarrow as pa
import pyarrow.compute as pc
import pytest
from deltalake import DeltaTable, write_deltalake
from lakegate.common.contracts.rpc import CancelCall
from lakegate.common.contracts.transforms import (
    CreateGoldView,
    Dedupe,
    GoldView,
    SilverSpec,
    TransformResult,
    TransformToSilver,
    UploadFile,
    UploadResult,
)
from lakegate.common.contracts.warehouse import DescribeTable, QueryResult, RunQuery, TableDescription
from lakegate.common.errors import Cancelled, WarehouseError
from lakegate.common.names import tenant_catalog
from lakegate.loader.app import LoaderState
from pydantic import BaseModel

if TYPE_CHECKING:
    from conftest import LineageReader

M = TypeVar("M", bound=BaseModel)

#: Rows of the bronze table a long transform reads: seconds of work, in one statement.
BIG_ROWS = 2_000_000


def bronze_path(loader: LoaderState, tenant_id: str, name: str, layer: str = "bronze") -> Path:
    return loader.settings.lakehouse / tenant_catalog(tenant_id) / layer / name


def write_big_bronze(path: Path, rows: int = BIG_ROWS) -> None:
    """A bronze table of `rows` rows (id, its text, a repeating key), written straight to Delta."""
    schema = pa.schema([("id", pa.int64()), ("label", pa.string()), ("key", pa.int64())])

    def batches() -> Iterator[pa.RecordBatch]:
        for start in range(0, rows, 200_000):
            ids = pa.array(range(start, min(start + 200_000, rows)), pa.int64())
            yield pa.record_batch([ids, pc.cast(ids, pa.string()), pc.bit_wise_and(ids, 1023)], schema=schema)

    write_deltalake(str(path), pa.RecordBatchReader.from_batches(schema, batches()))


def new_call_id() -> str:
    return f"call_{uuid.uuid4().hex}"


async def until(condition: Callable[[], bool], timeout: float = 30.0) -> None:
    """Wait until `condition` holds (checked every 20 ms), failing after `timeout` seconds; what it waits for
    (a child process of the loader) signals nothing the test could await."""
    async with asyncio.timeout(timeout):
        while not condition():  # noqa: ASYNC110
            await asyncio.sleep(0.02)


def statement_process_runs() -> bool:
    return any(child.name == "lakegate-statement" for child in multiprocessing.active_children())


async def cancel(loader: LoaderState, call_id: str) -> None:
    rt = loader.runtime
    await rt.broker.publish(CancelCall(call_id=call_id), rt.topology.call_cancel(call_id))


def request_task(loader: LoaderState, subject: str, request: BaseModel, answer: type[M]) -> asyncio.Task[M]:
    return asyncio.create_task(loader.runtime.rpc.call(subject, request, answer, timeout=300))


async def count(loader: LoaderState, tenant_id: str, table: str) -> object:
    rt = loader.runtime
    result = await rt.rpc.call(
        rt.topology.warehouse_query, RunQuery(tenant_id=tenant_id, sql=f"SELECT count(*) FROM {table}"), QueryResult
    )
    return result.rows[0][0]


async def upload(
    loader: LoaderState, tenant_id: str, data: bytes, name: str, call_id: str | None = None
) -> UploadResult:
    request = UploadFile(
        tenant_id=tenant_id,
        file_name=f"{name}.csv",
        dataset_name=name,
        content_base64=base64.b64encode(data).decode(),
        call_id=call_id,
    )
    return await loader.runtime.rpc.call(loader.runtime.topology.warehouse_upload, request, UploadResult, timeout=120)


def big_csv(rows: int = 300_000) -> bytes:
    return b"id,label\n" + b"".join(b"%d,row %d\n" % (i, i) for i in range(rows))


async def gold_view_over_seed(loader: LoaderState, tenant_id: str, rows: int, name: str, sql: str) -> None:
    """A bronze `seed` of `rows` rows, its silver table, and the gold view `name` defined by `sql` over it."""
    write_big_bronze(bronze_path(loader, tenant_id, "seed"), rows=rows)
    rt = loader.runtime
    await rt.rpc.call(
        rt.topology.warehouse_transform, TransformToSilver(tenant_id=tenant_id, bronze_table="seed"), TransformResult
    )
    await rt.rpc.call(
        rt.topology.warehouse_gold_view, CreateGoldView(tenant_id=tenant_id, name=name, sql=sql), GoldView
    )


@pytest.mark.parametrize("loader_settings", [{"transform_timeout_seconds": 600.0}], indirect=True)
async def test_a_transform_cancelled_midway_writes_nothing_and_the_previous_silver_version_stays(
    loader: LoaderState, tenant_id: str, lineage: LineageReader
) -> None:
    write_big_bronze(bronze_path(loader, tenant_id, "small"), rows=3)
    write_big_bronze(bronze_path(loader, tenant_id, "big"))
    topology = loader.runtime.topology
    spec = SilverSpec(target_name="clean")
    await loader.runtime.rpc.call(
        topology.warehouse_transform,
        TransformToSilver(tenant_id=tenant_id, bronze_table="small", spec=spec),
        TransformResult,
    )
    call_id = new_call_id()
    long = request_task(
        loader,
        topology.warehouse_transform,
        TransformToSilver(tenant_id=tenant_id, bronze_table="big", spec=spec, call_id=call_id),
        TransformResult,
    )
    await until(statement_process_runs)  # the statement runs and streams its rows to the writer

    await cancel(loader, call_id)

    with pytest.raises(Cancelled) as cancelled:
        await long
    assert str(cancelled.value) == "the transform was stopped: its caller cancelled the request"
    silver = DeltaTable(str(bronze_path(loader, tenant_id, "clean", layer="silver")))
    assert silver.version() == 0
    assert await count(loader, tenant_id, "silver.clean") == 3
    assert not statement_process_runs()  # the cancel ended the statement's process before the answer
    assert await lineage.pending() == 1  # only the first transform's record


async def test_an_upload_cancelled_midway_writes_nothing_and_the_previous_table_stays(
    loader: LoaderState, tenant_id: str, lineage: LineageReader
) -> None:
    await upload(loader, tenant_id, b"id,label\n1,kept\n", "people")
    call_id = new_call_id()
    long = asyncio.create_task(upload(loader, tenant_id, big_csv(), "people", call_id))
    await asyncio.wait_for(loader.runtime.call_stops.running(call_id), 30)

    await cancel(loader, call_id)

    with pytest.raises(Cancelled) as cancelled:
        await long
    assert str(cancelled.value) == "the upload was stopped: its caller cancelled the request"
    assert DeltaTable(str(bronze_path(loader, tenant_id, "people"))).version() == 0
    assert await count(loader, tenant_id, "bronze.people") == 1
    assert await lineage.pending() == 1


async def test_an_upload_whose_cancel_came_before_it_was_taken_up_creates_no_table(
    loader: LoaderState, tenant_id: str
) -> None:
    call_id = new_call_id()
    await cancel(loader, call_id)
    await loader.runtime.broker.connection.flush()  # the cancel is at the server before the request is sent

    with pytest.raises(Cancelled) as cancelled:
        await upload(loader, tenant_id, big_csv(1000), "early", call_id)

    assert str(cancelled.value) == "the upload was stopped: its caller had cancelled it before it began"
    assert not bronze_path(loader, tenant_id, "early").exists()


@pytest.mark.parametrize("loader_settings", [{"query_memory_limit": "16MB"}], indirect=True)
async def test_a_transform_past_the_memory_limit_fails_naming_the_settings_writes_nothing_and_the_loader_stays_up(
    loader: LoaderState, tenant_id: str
) -> None:
    write_big_bronze(bronze_path(loader, tenant_id, "big"))
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    # Keeping the latest row of each key ranks every row of the table: far more than 16 MB.
    spec = SilverSpec(steps=[Dedupe(kind="dedupe", keys=["key"], latest_by="id")])

    with pytest.raises(WarehouseError) as refused:
        await loader.runtime.rpc.call(
            loader.runtime.topology.warehouse_transform,
            TransformToSilver(tenant_id=tenant_id, bronze_table="big", spec=spec),
            TransformResult,
            timeout=300,
        )

    assert "more memory than one query may use (16MB in the engine, 1GB for its process)" in str(refused.value)
    assert "LAKEGATE_LOADER_QUERY_MEMORY_LIMIT and LAKEGATE_LOADER_QUERY_PROCESS_MEMORY" in str(refused.value)
    assert resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 - before < 128 * 1024**2
    assert not DeltaTable.is_deltatable(str(bronze_path(loader, tenant_id, "big", layer="silver")))
    assert await count(loader, tenant_id, "bronze.big") == BIG_ROWS  # the loader still answers


@pytest.mark.parametrize("loader_settings", [{"query_process_memory": "256MB"}], indirect=True)
async def test_statistics_of_a_hostile_gold_view_fail_at_the_process_limit_and_the_loader_stays_small(
    loader: LoaderState, tenant_id: str
) -> None:
    topology = loader.runtime.topology
    hostile = "SELECT id, len(range(0, 100000000)) AS n FROM silver.seed"
    await gold_view_over_seed(loader, tenant_id, rows=3, name="hostile", sql=hostile)
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024

    with pytest.raises(WarehouseError) as refused:
        await loader.runtime.rpc.call(
            topology.warehouse_tables_describe,
            DescribeTable(tenant_id=tenant_id, table_name="gold.hostile", with_stats=True),
            TableDescription,
            timeout=120,
        )

    assert "more memory than one query may use (128MB in the engine, 256MB for its process)" in str(refused.value)
    assert "LAKEGATE_LOADER_QUERY_PROCESS_MEMORY" in str(refused.value)
    assert resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 - before < 128 * 1024**2
    assert await count(loader, tenant_id, "silver.seed") == 3


@pytest.mark.parametrize("loader_settings", [{"query_timeout_seconds": 600.0}], indirect=True)
async def test_statistics_cancelled_midway_stop_their_process_and_answer_cancelled(
    loader: LoaderState, tenant_id: str
) -> None:
    topology = loader.runtime.topology
    # Minutes of work for each statistic; only the cancel stops it before the 600 s timeout.
    slow = "SELECT a.id FROM silver.seed a CROSS JOIN silver.seed b CROSS JOIN silver.seed c WHERE a.id + b.id = c.id"
    await gold_view_over_seed(loader, tenant_id, rows=3000, name="slow", sql=slow)
    call_id = new_call_id()
    describing = request_task(
        loader,
        topology.warehouse_tables_describe,
        DescribeTable(tenant_id=tenant_id, table_name="gold.slow", with_stats=True, call_id=call_id),
        TableDescription,
    )
    await until(statement_process_runs)

    await cancel(loader, call_id)

    with pytest.raises(Cancelled) as cancelled:
        await describing
    assert str(cancelled.value) == "describing the table was stopped: its caller cancelled the request"
    assert not statement_process_runs()
