"""MCP tasks across edge processes: a task made on one process (A) is got, listed, waited for and cancelled
through others (B, C). They are three edges of this test process, each with its own NATS connection and
instance id, on one NATS server under one prefix, as `processes` or replicas are; every client speaks
streamable HTTP to one of them, as a load balancer would send it.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Literal

import httpx2 as httpx
import nats
import pytest
from lakegate.devstack.taskclient import TERMINAL, Answer, TasksExtension, get_detailed, poll_detailed, start_task
from lakegate.devstack.toolresults import structured
from lakegate.edge import task_calls, task_peers
from lakegate.edge.config import EdgeSettings
from lakegate.edge.task_calls import UpdateTaskRequestParams
from lakegate.edge.task_peers import TaskQuestion
from mcp import Client
from mcp.client.session import ClientSession
from mcp.client.streamable_http import streamable_http_client
from mcp.shared.exceptions import MCPError
from mcp_types import (
    INVALID_PARAMS,
    CallToolResult,
    CancelTaskRequest,
    CancelTaskRequestParams,
    CancelTaskResult,
    GetTaskPayloadRequest,
    GetTaskPayloadRequestParams,
    GetTaskRequest,
    GetTaskRequestParams,
    GetTaskResult,
    ListTasksRequest,
    ListTasksResult,
    PaginatedRequestParams,
    Request,
)
from nats.aio.msg import Msg

from .conftest import Fakes
from .processes import EdgeProcess, serving

ORDERS = {"connection_id": "src_seed", "table_name": "orders"}
HUGE = {"connection_id": "src_seed", "table_name": "huge"}


class Process(EdgeProcess):
    """One edge process serving HTTP, called by a client of either protocol era."""

    def legacy(self) -> Client:
        return Client(self.url, mode="legacy")

    def modern(self) -> Client:
        return Client(self.url, extensions=[TasksExtension()])


def process(settings: EdgeSettings) -> contextlib.AbstractAsyncContextManager[Process]:
    return serving(settings, Process)


@pytest.fixture
async def processes(edge_settings: EdgeSettings, fakes: Fakes) -> AsyncIterator[tuple[Process, Process, Process]]:
    async with process(edge_settings) as a, process(edge_settings) as b, process(edge_settings) as c:
        yield a, b, c


async def get(session: ClientSession, task_id: str) -> GetTaskResult:
    request = GetTaskRequest(params=GetTaskRequestParams(task_id=task_id))
    return await session.send_request(request, GetTaskResult, request_read_timeout_seconds=30)


async def result(session: ClientSession, task_id: str) -> CallToolResult:
    request = GetTaskPayloadRequest(params=GetTaskPayloadRequestParams(task_id=task_id))
    return await session.send_request(request, CallToolResult, request_read_timeout_seconds=30)


async def listed(session: ClientSession) -> list[str]:
    answer = await session.send_request(ListTasksRequest(), ListTasksResult, request_read_timeout_seconds=30)
    return [task.task_id for task in answer.tasks]


async def extracting(client: Client, task_id: str) -> None:
    """Until the task shows its run extracting (a stalled run stays there)."""

    async def poll() -> None:
        while "extracting" not in ((await get(client.session, task_id)).status_message or ""):  # noqa: ASYNC110
            await asyncio.sleep(0.05)  # tasks are polled

    await asyncio.wait_for(poll(), 20)


async def test_a_task_made_on_one_process_is_got_listed_waited_for_and_cancelled_through_others(
    processes: tuple[Process, Process, Process], fakes: Fakes
) -> None:
    a, b, c = processes
    async with a.legacy() as on_a:
        finishing = await start_task(on_a, "sync_table_to_bronze", ORDERS)
    async with b.legacy() as on_b:
        waited = await result(on_b.session, finishing)  # the owner, A, waits for the end and answers
        done = await get(on_b.session, finishing)
        own = await start_task(on_b, "sync_table_to_bronze", ORDERS)
    fakes.catalog.plans["huge"] = "stall"
    async with a.legacy() as on_a:
        stalled = await start_task(on_a, "sync_table_to_bronze", HUGE)
    async with c.legacy() as on_c:
        await extracting(on_c, stalled)
        everywhere = await listed(on_c.session)
        cancelled = await on_c.session.send_request(
            CancelTaskRequest(params=CancelTaskRequestParams(task_id=stalled)),
            CancelTaskResult,
            request_read_timeout_seconds=30,
        )
        after = await get(on_c.session, stalled)
        with pytest.raises(MCPError) as no_result:
            await result(on_c.session, stalled)
        [run_id] = [run for run, view in fakes.catalog.runs.items() if view.source_table.endswith("huge")]
        run = structured(await on_c.call_tool("get_sync_run", {"run_id": run_id}))

    assert not waited.is_error
    assert structured(waited)["status"] == "succeeded"
    assert waited.meta is not None
    assert waited.meta["io.modelcontextprotocol/related-task"] == {"taskId": finishing}
    assert done.status == "completed"
    assert everywhere == [stalled, own, finishing], "every process's tasks, newest first"
    assert cancelled.status == "cancelled"
    assert after.status == "cancelled"
    assert "was cancelled" in no_result.value.error.message
    assert run["status"] == "cancelled"
    assert run["row_count"] in (None, 0)


class UpdateTaskRequest(Request[UpdateTaskRequestParams, Literal["tasks/update"]]):
    """The extension's `tasks/update` (the SDK has no type of its own for it)."""

    method: Literal["tasks/update"] = "tasks/update"
    params: UpdateTaskRequestParams


async def test_2026_a_task_made_on_one_process_is_got_updated_and_cancelled_through_others(
    processes: tuple[Process, Process, Process], fakes: Fakes
) -> None:
    a, b, c = processes
    fakes.catalog.plans["huge"] = "stall"
    async with a.modern() as on_a:
        finishing = await start_task(on_a, "sync_table_to_bronze", ORDERS)
        stalled = await start_task(on_a, "sync_table_to_bronze", HUGE)
    async with b.modern() as on_b:
        done = await asyncio.wait_for(poll_detailed(on_b.session, finishing, TERMINAL), 20)
        working = await get_detailed(on_b.session, stalled)
        updated = await on_b.session.send_request(
            UpdateTaskRequest(params=UpdateTaskRequestParams(taskId=stalled)), Answer, 30
        )
        ack = await on_b.session.send_request(
            CancelTaskRequest(params=CancelTaskRequestParams(task_id=stalled)), Answer, 30
        )
    async with c.modern() as on_c:
        after = await asyncio.wait_for(poll_detailed(on_c.session, stalled, TERMINAL), 20)

    assert done.status == "completed"
    assert done.result is not None
    assert done.result["structuredContent"]["status"] == "succeeded"
    assert working.status == "working"
    assert updated.model_extra == {"resultType": "complete"}
    assert ack.model_extra == {"resultType": "complete"}
    assert after.status == "cancelled"


async def test_another_tenant_or_authorization_on_another_process_sees_none_of_a_callers_tasks(
    processes: tuple[Process, Process, Process], edge_settings: EdgeSettings
) -> None:
    a, b, _ = processes
    async with a.legacy() as on_a:
        task_id = await start_task(on_a, "sync_table_to_bronze", ORDERS)
    other_tenant = edge_settings.model_copy(update={"default_tenant": "someone_else"})
    async with process(other_tenant) as other, other.legacy() as elsewhere:
        with pytest.raises(MCPError) as tenant_get:
            await get(elsewhere.session, task_id)
        with pytest.raises(MCPError) as tenant_cancel:
            await elsewhere.session.send_request(
                CancelTaskRequest(params=CancelTaskRequestParams(task_id=task_id)), CancelTaskResult
            )
        tenant_list = await listed(elsewhere.session)
    async with (
        httpx.AsyncClient(headers={"Authorization": "Bearer someone-else"}) as http,
        Client(streamable_http_client(b.url, http_client=http), mode="legacy") as stranger,
    ):
        with pytest.raises(MCPError) as header_result:
            await result(stranger.session, task_id)
        header_list = await listed(stranger.session)
    async with b.legacy() as on_b:
        mine = await listed(on_b.session)

    for refused in (tenant_get, tenant_cancel, header_result):
        assert refused.value.error.code == INVALID_PARAMS
        assert "is another caller's" in refused.value.error.message
    assert tenant_list == header_list == []
    assert mine == [task_id]


async def test_a_task_of_a_process_that_stopped_is_unknown_at_once_rather_than_a_hang(
    edge_settings: EdgeSettings, fakes: Fakes
) -> None:
    async with process(edge_settings) as b:
        async with process(edge_settings) as a, a.legacy() as on_a:
            task_id = await start_task(on_a, "sync_table_to_bronze", ORDERS)
            structured(await result(on_a.session, task_id))
        async with b.legacy() as on_b, asyncio.timeout(15):  # NATS says at once; the asker retries for ~3 s
            with pytest.raises(MCPError) as got:
                await get(on_b.session, task_id)
            with pytest.raises(MCPError) as waited:
                await result(on_b.session, task_id)
            remaining = await listed(on_b.session)

    for unknown in (got, waited):
        assert unknown.value.error.code == INVALID_PARAMS
        assert "has stopped" in unknown.value.error.message
    assert remaining == []


async def test_a_result_waited_for_on_another_process_comes_back_across_several_turns(
    processes: tuple[Process, Process, Process], fakes: Fakes, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(task_peers, "WAIT_TURN_SECONDS", 0.2)
    a, b, _ = processes
    turns: list[TaskQuestion] = []

    async def overhear(msg: Msg) -> None:
        if (question := TaskQuestion.model_validate_json(msg.data)).method == "tasks/result":
            turns.append(question)

    watcher = await nats.connect(a.state.settings.nats.servers)
    await watcher.subscribe(a.state.settings.nats.topology.edge_peer(a.state.link.instance, "task"), cb=overhear)
    await watcher.flush()
    fakes.catalog.plans["huge"] = "stall"
    async with a.legacy() as on_a:
        task_id = await start_task(on_a, "sync_table_to_bronze", HUGE)
    async with b.legacy() as on_b:
        await extracting(on_b, task_id)
        waiting = asyncio.create_task(result(on_b.session, task_id))
        async with asyncio.timeout(10):
            while len(turns) < 3:  # noqa: ASYNC110 - turns the test overhears, not an event it could wait on
                await asyncio.sleep(0.01)
        assert not waiting.done(), "the turns ended while the run stalls, and the wait goes on"
        [run_id] = fakes.catalog.runs
        await on_b.call_tool("cancel_sync", {"run_id": run_id})
        async with asyncio.timeout(20):
            ended = await waiting

    await watcher.drain()
    assert structured(ended)["status"] == "cancelled"


async def test_a_listing_pages_through_every_processs_tasks_newest_first(
    processes: tuple[Process, Process, Process], fakes: Fakes, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(task_calls, "PAGE", 2)
    a, b, c = processes
    made = []
    for owner in (a, b, a, c, b):
        async with owner.legacy() as client:
            made.append(await start_task(client, "sync_table_to_bronze", ORDERS))
    pages: list[list[str]] = []
    async with c.legacy() as on_c:
        cursor: str | None = None
        while True:
            request = ListTasksRequest(params=PaginatedRequestParams(cursor=cursor) if cursor else None)
            page = await on_c.session.send_request(request, ListTasksResult, request_read_timeout_seconds=30)
            pages.append([task.task_id for task in page.tasks])
            if (cursor := page.next_cursor) is None:
                break

    assert pages == [made[::-1][0:2], made[::-1][2:4], made[::-1][4:]]
