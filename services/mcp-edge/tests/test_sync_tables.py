"""Several tables in one sync_table_to_bronze call: one run per table, one progress stream, every outcome listed."""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

from lakegate.common.contracts.sources import SourceColumn, SourceTable, SourceTables
from lakegate.devstack.toolresults import error_text, structured
from lakegate.edge.app import EdgeState
from mcp import Client

if TYPE_CHECKING:
    from conftest import Fakes


async def connect(client: Client) -> str:
    arguments = {"name": "shop", "host": "db.internal", "database": "shop", "user": "reader", "password": "pw"}
    return str(structured(await client.call_tool("connect_postgres", arguments))["connection_id"])


class ProgressLog:
    def __init__(self) -> None:
        self.reports: list[tuple[float, float | None, str | None]] = []

    async def __call__(self, progress: float, total: float | None, message: str | None) -> None:
        self.reports.append((progress, total, message))


def _table(schema: str, name: str, kind: str = "table") -> SourceTable:
    column = SourceColumn(name="id", type="bigint", nullable=False, arrow_type="int64", mapped=True)
    return SourceTable(schema_name=schema, name=name, kind=kind, row_estimate=10, columns=[column])


async def test_a_list_of_tables_starts_one_run_each_and_lists_every_outcome_with_one_progress_stream(
    edge: EdgeState, fakes: Fakes
) -> None:
    fakes.catalog.plans["refunds"] = "fail"
    progress = ProgressLog()
    async with Client(edge.server) as client:
        connection_id = await connect(client)
        result = structured(
            await client.call_tool(
                "sync_table_to_bronze",
                {"connection_id": connection_id, "table_name": ["orders", "sales.customers", "refunds"]},
                progress_callback=progress,
            )
        )

    assert [started.table_name for started in fakes.catalog.started] == [
        "public.orders",
        "sales.customers",
        "public.refunds",
    ]
    assert [(t["source_table"], t["outcome"]) for t in result["tables"]] == [
        ("public.orders", "succeeded"),
        ("sales.customers", "succeeded"),
        ("public.refunds", "failed"),
    ]
    assert len({t["run"]["run_id"] for t in result["tables"]}) == 3
    assert result["tables"][0]["run"]["row_count"] == 1000
    assert result["tables"][2]["error"]
    assert (result["succeeded"], result["failed"], result["running"]) == (2, 1, 0)
    assert "fix the cause" in result["hint"]
    values = [value for value, _, _ in progress.reports]
    assert values == sorted(values)
    assert len(set(values)) == len(values)
    assert {total for _, total, _ in progress.reports} == {12.0}
    assert values[-1] == 12.0
    messages = [message or "" for _, _, message in progress.reports]
    assert any(m.startswith("sales.customers: ") for m in messages)


async def test_a_schema_syncs_its_tables_but_not_its_views_or_other_schemas(edge: EdgeState, fakes: Fakes) -> None:
    fakes.extractor.tables = SourceTables(
        tables=[
            _table("public", "orders"),
            _table("sales", "customers"),
            _table("sales", "invoices", "partitioned table"),
            _table("sales", "recent", "view"),
        ]
    )
    async with Client(edge.server) as client:
        connection_id = await connect(client)
        result = structured(
            await client.call_tool("sync_table_to_bronze", {"connection_id": connection_id, "schema_name": "sales"})
        )
        missing = error_text(
            await client.call_tool("sync_table_to_bronze", {"connection_id": connection_id, "schema_name": "nope"})
        )

    assert [t["source_table"] for t in result["tables"]] == ["sales.customers", "sales.invoices"]
    assert result["succeeded"] == 2
    assert "schema_name 'nope' has no tables" in missing
    assert "public, sales" in missing


async def test_bad_arguments_are_named(edge: EdgeState) -> None:
    async with Client(edge.server) as client:
        connection_id = await connect(client)
        neither = error_text(await client.call_tool("sync_table_to_bronze", {"connection_id": connection_id}))
        empty = error_text(
            await client.call_tool("sync_table_to_bronze", {"connection_id": connection_id, "table_name": []})
        )
        both = error_text(
            await client.call_tool(
                "sync_table_to_bronze", {"connection_id": connection_id, "table_name": ["a"], "schema_name": "public"}
            )
        )
        twice = error_text(
            await client.call_tool(
                "sync_table_to_bronze", {"connection_id": connection_id, "table_name": ["orders", "public.orders"]}
            )
        )
        quoted = error_text(
            await client.call_tool("sync_table_to_bronze", {"connection_id": connection_id, "table_name": ["a;b"]})
        )
        unknown = error_text(
            await client.call_tool("sync_table_to_bronze", {"connection_id": "src_nope", "table_name": ["orders"]})
        )

    assert "give either table_name" in neither
    assert "table_name is an empty list" in empty
    assert "schema_name" in neither
    assert "not both" in both
    assert "public.orders more than once" in twice
    assert "a;b" in quoted
    assert "src_nope" in unknown


async def test_runs_still_going_when_the_edge_stops_waiting_are_listed_as_running(
    edge: EdgeState, fakes: Fakes
) -> None:
    fakes.catalog.plans["huge"] = "stall"
    edge.settings.sync_wait_seconds = 0.5
    async with Client(edge.server) as client:
        connection_id = await connect(client)
        result = structured(
            await client.call_tool(
                "sync_table_to_bronze", {"connection_id": connection_id, "table_name": ["orders", "huge"]}
            )
        )

    assert [(t["source_table"], t["outcome"]) for t in result["tables"]] == [
        ("public.orders", "succeeded"),
        ("public.huge", "running"),
    ]
    assert result["running"] == 1
    assert "get_sync_run" in result["hint"]


async def test_cancelling_the_call_cancels_every_run_it_started(edge: EdgeState, fakes: Fakes) -> None:
    fakes.catalog.plans["huge"] = fakes.catalog.plans["vast"] = "stall"
    extracting: set[str] = set()
    both = asyncio.Event()

    async def on_progress(progress: float, total: float | None, message: str | None) -> None:
        for table in ("public.huge", "public.vast"):
            if message and message.startswith(f"{table}: extracting"):
                extracting.add(table)
        if len(extracting) == 2:
            both.set()

    async with Client(edge.server) as client:
        connection_id = await connect(client)
        sync = asyncio.create_task(
            client.call_tool(
                "sync_table_to_bronze",
                {"connection_id": connection_id, "table_name": ["huge", "vast"]},
                progress_callback=on_progress,
            )
        )
        await asyncio.wait_for(both.wait(), 10)
        told: dict[str, asyncio.Event] = {run_id: asyncio.Event() for run_id in fakes.catalog.runs}
        nats = edge.runtime.broker.connection
        watches = []
        for run_id, event in told.items():

            async def on_cancel(msg: object, event: asyncio.Event = event) -> None:
                event.set()

            watches.append(await nats.subscribe(edge.runtime.topology.cancel(run_id), cb=on_cancel))
        await nats.flush()
        sync.cancel()
        for event in told.values():
            await asyncio.wait_for(event.wait(), 10)  # the catalog tells the workers to stop each run
        for watch in watches:
            await watch.unsubscribe()
        runs = [structured(await client.call_tool("get_sync_run", {"run_id": run_id})) for run_id in told]

    assert len(runs) == 2
    assert {(run["status"], run["error_code"]) for run in runs} == {("cancelled", "cancelled")}


async def test_one_table_name_returns_its_run_and_a_list_of_one_returns_its_outcome(edge: EdgeState) -> None:
    async with Client(edge.server) as client:
        connection_id = await connect(client)
        one = structured(
            await client.call_tool("sync_table_to_bronze", {"connection_id": connection_id, "table_name": "orders"})
        )
        listed = structured(
            await client.call_tool("sync_table_to_bronze", {"connection_id": connection_id, "table_name": ["orders"]})
        )

    assert one["status"] == "succeeded"
    assert one["row_count"] == 1000
    assert one["tables"] is None
    assert listed["run_id"] is None
    assert [(t["source_table"], t["outcome"]) for t in listed["tables"]] == [("public.orders", "succeeded")]
    assert listed["succeeded"] == 1
