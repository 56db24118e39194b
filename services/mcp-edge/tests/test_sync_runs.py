"""Sync modes, progress over parallel ranges, cancellation and run history, through an MCP client."""

from __future__ import annotations

import asyncio
import re
from datetime import timedelta
from typing import TYPE_CHECKING

from lakegate.devstack.toolresults import error_text, structured
from lakegate.edge.app import EdgeState
from mcp import Client
from mcp.types import CallToolResult

if TYPE_CHECKING:
    from conftest import Fakes

#: What the fake catalog's runs write and the cursor its incremental and merge runs end with (conftest).
ROWS = 1000
CURSOR_VALUE = "2024-05-01T12:00:00+00:00"


async def connect(client: Client) -> str:
    arguments = {"name": "shop", "host": "db.internal", "database": "shop", "user": "reader", "password": "pw"}
    return str(structured(await client.call_tool("connect_postgres", arguments))["connection_id"])


class ProgressLog:
    """A progress callback that keeps what the server reported."""

    def __init__(self) -> None:
        self.reports: list[tuple[float, float | None, str | None]] = []

    async def __call__(self, progress: float, total: float | None, message: str | None) -> None:
        self.reports.append((progress, total, message))

    @property
    def messages(self) -> list[str]:
        return [message or "" for _, _, message in self.reports]


async def test_an_incremental_sync_passes_the_cursor_column_and_shows_the_cursor_ranges_and_schema_changes(
    edge: EdgeState, fakes: Fakes
) -> None:
    fakes.catalog.plans["events"] = "ranges"
    async with Client(edge.server) as client:
        connection_id = await connect(client)

        result = structured(
            await client.call_tool(
                "sync_table_to_bronze",
                {
                    "connection_id": connection_id,
                    "table_name": "events",
                    "sync_mode": "incremental",
                    "cursor_column": "updated_at",
                },
            )
        )

    [started] = fakes.catalog.started
    assert (started.sync_mode, started.cursor_column) == ("incremental", "updated_at")
    assert result["status"] == "succeeded"
    assert result["sync_mode"] == "incremental"
    assert (result["rows_extracted"], result["row_count"]) == (1000, 1000)
    assert result["cursor"] == {
        "column": "updated_at",
        "value": CURSOR_VALUE,
        "source_type": "timestamp with time zone",
    }
    assert result["schema_changes"] == [{"column": "note", "change": "added", "before": None, "after": "string"}]
    assert result["duration_seconds"] == 2.0
    assert result["rows_per_second"] == 500.0


async def test_a_sync_without_a_cursor_column_leaves_it_to_be_inferred(edge: EdgeState, fakes: Fakes) -> None:
    async with Client(edge.server) as client:
        connection_id = await connect(client)

        result = structured(
            await client.call_tool(
                "sync_table_to_bronze", {"connection_id": connection_id, "table_name": "orders", "sync_mode": "merge"}
            )
        )

    [started] = fakes.catalog.started
    assert (started.sync_mode, started.cursor_column) == ("merge", None)
    assert result["status"] == "succeeded"


async def test_the_sync_tool_tells_the_model_what_each_mode_and_the_cursor_mean(edge: EdgeState) -> None:
    async with Client(edge.server) as client:
        tools = {tool.name: tool for tool in (await client.list_tools()).tools}

    properties = tools["sync_table_to_bronze"].input_schema["properties"]
    modes = properties["sync_mode"]["description"]
    for words in (
        "replacing bronze atomically",
        "cursor column grew",
        "primary key",
        "greatest cursor",
        "detect_deletes",
    ):
        assert words in modes
    assert "infer" in properties["cursor_column"]["description"]
    assert "only moves when a run commits" in properties["cursor_column"]["description"]


async def test_progress_adds_up_the_rows_of_parallel_ranges_and_shows_rows_loaded(
    edge: EdgeState, fakes: Fakes
) -> None:
    fakes.catalog.plans["events"] = "ranges"
    progress = ProgressLog()
    async with Client(edge.server) as client:
        connection_id = await connect(client)

        result = structured(
            await client.call_tool(
                "sync_table_to_bronze",
                {"connection_id": connection_id, "table_name": "events"},
                progress_callback=progress,
            )
        )

    assert result["status"] == "succeeded"
    said = "\n".join(progress.messages)
    so_far = [int(n.replace(",", "")) for n in re.findall(r"extracting public\.events: ([\d,]+) rows so far", said)]
    # Three ranges report 300, 300 and 400 rows: the sum, never one range's count alone, is what the client sees.
    assert so_far, said
    assert max(so_far) == 1000, said
    assert "across 3 ranges" in said
    assert "extracted 1,000 rows from public.events in 3 ranges" in said
    assert re.search(r"loading into \S+: 500 (of 1,000 rows|rows so far)", said), said
    assert "(schema changes: note added)" in said
    values = [value for value, _, _ in progress.reports]
    assert values == sorted(values)


async def test_a_running_sync_is_cancelled_and_the_waiting_call_returns_it_as_cancelled(
    edge: EdgeState, fakes: Fakes
) -> None:
    async with Client(edge.server) as client:
        sync, run_id = await start_stalled_sync(client, fakes)

        cancelled = structured(await client.call_tool("cancel_sync", {"run_id": run_id}))
        waited = structured(await asyncio.wait_for(sync, 10))
        again = await client.call_tool("cancel_sync", {"run_id": run_id})

    assert cancelled["run_id"] == run_id
    assert cancelled["status"] == "cancelled"
    assert cancelled["error_code"] == "cancelled"
    assert cancelled["finished_at"] is not None
    assert waited["status"] == "cancelled"
    assert "is as it was before the run" in waited["hint"]
    text = error_text(again)
    assert f"sync run {run_id} already finished (cancelled" in text
    assert "nothing to cancel" in text
    assert "retry" not in text


async def test_cancelling_a_finished_run_says_it_finished_and_what_it_left(edge: EdgeState) -> None:
    async with Client(edge.server) as client:
        connection_id = await connect(client)
        run = structured(
            await client.call_tool("sync_table_to_bronze", {"connection_id": connection_id, "table_name": "orders"})
        )

        text = error_text(await client.call_tool("cancel_sync", {"run_id": run["run_id"]}))
        missing = error_text(await client.call_tool("cancel_sync", {"run_id": "run_nope"}))

    assert f"sync run {run['run_id']} already finished (succeeded" in text
    assert f"its rows are in {run['bronze_table']}" in text
    assert "run run_nope does not exist" in missing


async def test_cancel_sync_is_annotated_as_a_write_that_destroys_nothing(edge: EdgeState) -> None:
    async with Client(edge.server) as client:
        tools = {tool.name: tool for tool in (await client.list_tools()).tools}

    hints = tools["cancel_sync"].annotations
    assert hints is not None
    assert (hints.read_only_hint, hints.destructive_hint, hints.idempotent_hint) == (False, False, True)


async def test_run_history_shows_durations_throughput_cursor_and_the_schedule_that_started_a_run(
    edge: EdgeState, fakes: Fakes
) -> None:
    fakes.catalog.plans["events"] = "ranges"
    async with Client(edge.server) as client:
        connection_id = await connect(client)
        ranged = structured(
            await client.call_tool(
                "sync_table_to_bronze",
                {"connection_id": connection_id, "table_name": "events", "sync_mode": "merge"},
            )
        )
        plain = structured(
            await client.call_tool("sync_table_to_bronze", {"connection_id": connection_id, "table_name": "orders"})
        )
        scheduled = fakes.catalog.runs[plain["run_id"]]
        started = scheduled.started_at or scheduled.created_at
        fakes.catalog.runs[plain["run_id"]] = scheduled.model_copy(
            update={
                "schedule_id": "sch_nightly",
                "finished_at": started + timedelta(seconds=4),
                "duration_seconds": 4.0,
                "rows_per_second": 250.0,
            }
        )

        history = structured(await client.call_tool("list_sync_runs", {"connection_id": connection_id}))

    by_id = {run["run_id"]: run for run in history["runs"]}
    assert set(by_id) == {ranged["run_id"], plain["run_id"]}
    newest = history["runs"][0]
    assert newest["run_id"] == plain["run_id"]
    assert (newest["schedule_id"], newest["duration_seconds"], newest["rows_per_second"]) == ("sch_nightly", 4.0, 250.0)
    assert newest["row_count"] == ROWS
    merged = by_id[ranged["run_id"]]
    assert merged["cursor"]["column"] == "updated_at"
    assert (merged["duration_seconds"], merged["rows_per_second"]) == (2.0, 500.0)
    assert merged["columns"] == []


async def test_a_sync_whose_call_the_client_cancels_ends_cancelled_and_writes_nothing(
    edge: EdgeState, fakes: Fakes
) -> None:
    async with Client(edge.server) as client:
        sync, run_id = await start_stalled_sync(client, fakes)
        told = asyncio.Event()

        async def on_cancel(msg: object) -> None:
            told.set()

        nats = edge.runtime.broker.connection
        watch = await nats.subscribe(edge.runtime.topology.cancel(run_id), cb=on_cancel)
        await nats.flush()
        sync.cancel()
        await asyncio.wait_for(told.wait(), 10)  # the catalog tells the workers to stop
        await watch.unsubscribe()
        run = structured(await client.call_tool("get_sync_run", {"run_id": run_id}))

    assert run["status"] == "cancelled"
    assert run["error_code"] == "cancelled"


async def start_stalled_sync(client: Client, fakes: Fakes) -> tuple[asyncio.Task[CallToolResult], str]:
    """A sync of a table the fake catalog never finishes, once it reports extracting: its call and run id."""
    fakes.catalog.plans["huge"] = "stall"
    extracting = asyncio.Event()

    async def on_progress(progress: float, total: float | None, message: str | None) -> None:
        if message and message.startswith("extracting public.huge"):
            extracting.set()

    connection_id = await connect(client)
    sync = asyncio.create_task(
        client.call_tool(
            "sync_table_to_bronze",
            {"connection_id": connection_id, "table_name": "huge"},
            progress_callback=on_progress,
        )
    )
    await asyncio.wait_for(extracting.wait(), 10)
    [run_id] = fakes.catalog.runs
    return sync, run_id
