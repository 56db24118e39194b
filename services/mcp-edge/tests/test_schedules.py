"""Schedules: created from a human interval or a cron expression, listed, read as a resource, deleted."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

import pytest
from lakegate.common.errors import InvalidInput
from lakegate.devstack.toolresults import error_text, structured
from lakegate.edge.app import EdgeState
from lakegate.edge.durations import seconds_of, spoken
from mcp import Client
from mcp.types import ResourceTemplateReference, TextResourceContents

if TYPE_CHECKING:
    from conftest import Fakes


async def connect(client: Client) -> str:
    arguments = {"name": "shop", "host": "db.internal", "database": "shop", "user": "reader", "password": "pw"}
    return str(structured(await client.call_tool("connect_postgres", arguments))["connection_id"])


async def test_a_schedule_every_quarter_hour_is_stored_in_seconds_and_shown_as_written(
    edge: EdgeState, fakes: Fakes, tenant_id: str
) -> None:
    async with Client(edge.server) as client:
        connection_id = await connect(client)

        created = structured(
            await client.call_tool(
                "schedule_sync",
                {
                    "connection_id": connection_id,
                    "table_name": "orders",
                    "sync_mode": "incremental",
                    "every": "15m",
                    "cursor_column": "updated_at",
                },
            )
        )
        merging = structured(
            await client.call_tool(
                "schedule_sync",
                {
                    "connection_id": connection_id,
                    "table_name": "customers",
                    "sync_mode": "merge",
                    "every": 3600,
                    "detect_deletes": True,
                },
            )
        )

    stored, merge = fakes.catalog.schedules.values()
    assert (merge.sync_mode, merge.detect_deletes, merging["detect_deletes"]) == ("merge", True, True)
    assert not stored.detect_deletes
    assert created["detect_deletes"] is False
    assert (stored.tenant_id, stored.every_seconds, stored.cron) == (tenant_id, 900, None)
    assert (stored.sync_mode, stored.cursor_column, stored.table_name) == ("incremental", "updated_at", "public.orders")
    assert created["schedule_id"] == stored.schedule_id
    assert (created["every"], created["every_seconds"], created["cron"]) == ("15m", 900, None)
    assert "delete_schedule" in created["hint"]
    assert stored.schedule_id in created["hint"]


async def test_a_cron_schedule_is_listed_read_as_a_resource_and_deleted(edge: EdgeState) -> None:
    async with Client(edge.server) as client:
        connection_id = await connect(client)
        created = structured(
            await client.call_tool(
                "schedule_sync", {"connection_id": connection_id, "table_name": "orders", "cron": " 0 2 * * * "}
            )
        )
        schedule_id = created["schedule_id"]
        listed = structured(await client.call_tool("list_schedules", {}))
        resource = await client.read_resource(f"schedule://{schedule_id}")
        uris = {str(r.uri) for r in (await client.list_resources()).resources}
        completed = await client.complete(
            ResourceTemplateReference(type="ref/resource", uri="schedule://{id}"), {"name": "id", "value": "sch_"}
        )

        deleted = structured(await client.call_tool("delete_schedule", {"schedule_id": schedule_id}))
        after = structured(await client.call_tool("list_schedules", {}))
        again = await client.call_tool("delete_schedule", {"schedule_id": schedule_id})

    assert created["cron"] == "0 2 * * *"
    assert created["every"] is None
    assert [s["schedule_id"] for s in listed["schedules"]] == [schedule_id]
    assert listed["next_offset"] is None
    [contents] = resource.contents
    assert isinstance(contents, TextResourceContents)
    assert json.loads(contents.text)["cron"] == "0 2 * * *"
    assert f"schedule://{schedule_id}" in uris
    assert completed.completion.values == [schedule_id]
    assert deleted["schedule_id"] == schedule_id
    assert "starts no more runs" in deleted["hint"]
    assert after["schedules"] == []
    assert f"schedule {schedule_id} does not exist" in error_text(again)


async def test_schedules_are_listed_a_page_at_a_time(edge: EdgeState) -> None:
    async with Client(edge.server) as client:
        connection_id = await connect(client)
        for every in ("1h", "2h", "3h"):
            await client.call_tool(
                "schedule_sync", {"connection_id": connection_id, "table_name": "orders", "every": every}
            )

        first = structured(await client.call_tool("list_schedules", {"limit": 2}))
        second = structured(await client.call_tool("list_schedules", {"limit": 2, "offset": first["next_offset"]}))

    assert [s["every"] for s in first["schedules"]] == ["1h", "2h"]
    assert first["next_offset"] == 2
    assert [s["every"] for s in second["schedules"]] == ["3h"]
    assert second["next_offset"] is None


@pytest.mark.parametrize(
    ("arguments", "expected"),
    [
        ({}, "say how often to sync: give every"),
        ({"every": "1h", "cron": "0 * * * *"}, "give either every ('1h') or cron ('0 * * * *'), not both"),
        ({"every": "30s"}, "every='30s' is 30s, shorter than the shortest interval, 1m"),
        ({"every": "fortnightly"}, "every='fortnightly' is not a duration"),
        ({"every": 0}, "every=0 is not a positive number of seconds"),
        ({"cron": "every day"}, "not a five-field cron expression"),
        ({"every": "99999999999999999999d"}, "longer than the longest interval, 366d"),
        ({"every": 10**15}, "longer than the longest interval, 366d"),
        ({"every": "9" * 5000 + "s"}, "every is 5001 characters long, too long for a duration"),
    ],
)
async def test_a_schedule_without_exactly_one_valid_interval_or_cron_is_refused_with_the_reason(
    edge: EdgeState, fakes: Fakes, arguments: dict[str, object], expected: str
) -> None:
    async with Client(edge.server) as client:
        connection_id = await connect(client)

        request = {"connection_id": connection_id, "table_name": "orders", **arguments}
        text = error_text(await client.call_tool("schedule_sync", request))

    assert expected in text
    assert fakes.catalog.schedules == {}


async def test_a_schedule_for_an_unknown_source_is_refused_by_the_catalog(edge: EdgeState) -> None:
    async with Client(edge.server) as client:
        text = error_text(
            await client.call_tool("schedule_sync", {"connection_id": "src_gone", "table_name": "t", "every": 3600})
        )

    assert "src_gone does not exist" in text


def test_durations_are_read_as_people_write_them_and_written_back_the_same_way() -> None:
    cases = {"90": 90, "15m": 900, "1h30m": 5400, "1 day": 86400, "2 hours": 7200, "1w": 604800, "1h 15m": 4500}
    for text, seconds in cases.items():
        assert seconds_of(text) == seconds, text
    assert seconds_of(3600) == 3600
    assert [spoken(s) for s in (60, 900, 5400, 86400, 90061)] == ["1m", "15m", "1h30m", "1d", "1d1h1m1s"]
    with pytest.raises(InvalidInput, match="not a duration"):
        seconds_of("1.5h")
