"""A transform or an upload whose MCP tool call the client cancels stops in the loader and writes nothing.

The official Python client over stdio cancels its call (it sends `notifications/cancelled`) once the
loader's request is on NATS; the edge then publishes the `CancelCall` the loader acts on. What the
test checks is the lakehouse afterwards, through the same client, and the loader's own word that it
stopped the work (its log), not merely that the edge gave up waiting.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import sys
from collections.abc import AsyncIterator

import nats
from lakegate.common.contracts.rpc import CancelCall
from lakegate.devstack.stack import Stack
from mcp import Client, StdioServerParameters
from nats.aio.msg import Msg

from tests.conftest import Source
from tests.mcp_calls import call

#: Rows of the source table the long transform reads: seconds of work for the loader.
BIG_ROWS = 2_000_000


@contextlib.asynccontextmanager
async def watching(stack: Stack, subject: str, marker: str) -> AsyncIterator[tuple[asyncio.Event, asyncio.Queue[str]]]:
    """An event set when a request on `subject` holding `marker` is on NATS, and the call ids cancelled."""
    nc = await nats.connect(stack.urls.nats, **stack.nats_credentials())
    sent = asyncio.Event()
    cancelled: asyncio.Queue[str] = asyncio.Queue()

    async def on_request(msg: Msg) -> None:
        if marker.encode() in msg.data:
            sent.set()

    async def on_cancel(msg: Msg) -> None:
        cancelled.put_nowait(CancelCall.model_validate_json(msg.data).call_id)

    try:
        await nc.subscribe(subject, cb=on_request)
        await nc.subscribe(stack.topology.call_cancel("*"), cb=on_cancel)
        await nc.flush()
        yield sent, cancelled
    finally:
        await nc.drain()


async def logged(stack: Stack, pattern: str, timeout: float = 60.0) -> list[str]:
    """The stack's log lines matching `pattern`, once there is one (a log file signals nothing: read it again)."""
    async with asyncio.timeout(timeout):
        while not (found := stack.logs_matching(pattern)):  # noqa: ASYNC110
            await asyncio.sleep(0.1)
    return found


async def cancel_once_sent(call: asyncio.Task[object], sent: asyncio.Event, cancelled: asyncio.Queue[str]) -> str:
    """Cancel the client's call once its request reached the loader; the call id the edge cancelled."""
    await asyncio.wait_for(sent.wait(), 120)
    call.cancel()  # the client sends notifications/cancelled
    with contextlib.suppress(asyncio.CancelledError):
        await call
    return await asyncio.wait_for(cancelled.get(), 30)


async def test_a_cancelled_transform_and_a_cancelled_upload_write_nothing(
    stack: Stack, source: Source, unique: str, edge_env: dict[str, str]
) -> None:
    await source.execute(
        "CREATE TABLE small AS SELECT g::bigint AS id, g::text AS label FROM generate_series(1, 3) g;"
        f"CREATE TABLE big AS SELECT g::bigint AS id, g::text AS label FROM generate_series(1, {BIG_ROWS}) g"
    )
    name, clean, people = f"cancel{unique}", f"clean{unique}", f"people{unique}"
    server = StdioServerParameters(
        command=sys.executable, args=["-m", "lakegate.edge", "--transport", "stdio"], env=edge_env
    )
    async with Client(server) as client:
        connection = await call(client, "connect_postgres", source.connect_arguments(name))
        for table in ("small", "big"):
            run = await call(
                client, "sync_table_to_bronze", {"connection_id": connection["connection_id"], "table_name": table}
            )
            assert run["status"] == "succeeded", run
        first = await call(client, "transform_to_silver", {"bronze_table": f"{name}_small", "target_name": clean})

        async with watching(stack, stack.topology.warehouse_transform, f"{name}_big") as (sent, cancelled):
            transform = asyncio.create_task(
                client.call_tool("transform_to_silver", {"bronze_table": f"{name}_big", "target_name": clean})
            )
            transform_call = await cancel_once_sent(transform, sent, cancelled)

        await call(client, "upload_file", _csv_upload(b"id,label\n1,kept\n", people))
        rows = b"".join(b"%d,row %d\n" % (i, i) for i in range(200_000))
        async with watching(stack, stack.topology.warehouse_upload, people) as (sent, cancelled):
            upload = asyncio.create_task(client.call_tool("upload_file", _csv_upload(b"id,label\n" + rows, people)))
            upload_call = await cancel_once_sent(upload, sent, cancelled)

        # The loader itself stopped each one (as it ran, or as it arrived): not only the edge that gave up.
        await logged(stack, rf"the transform stopped (before it began )?\(call {transform_call}\)")
        await logged(stack, rf"the upload stopped (before it began )?\(call {upload_call}\)")
        silver = await call(client, "describe_table", {"table_name": f"silver.{clean}", "with_stats": False})
        bronze = await call(client, "describe_table", {"table_name": f"bronze.{people}", "with_stats": False})
        counted = await call(client, "query_sql", {"sql": f"SELECT count(*) AS n FROM silver.{clean}"})
        kept = await call(client, "query_sql", {"sql": f"SELECT label FROM bronze.{people}"})

    assert silver["version"] == first["version"]
    assert counted["rows"] == [[3]]
    assert bronze["version"] == 0
    assert kept["rows"] == [["kept"]]


def _csv_upload(data: bytes, dataset: str) -> dict[str, str]:
    return {"file_content": base64.b64encode(data).decode(), "file_name": f"{dataset}.csv", "dataset_name": dataset}
