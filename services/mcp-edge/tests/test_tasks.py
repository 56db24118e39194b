"""Long syncs as MCP tasks: in 2025-11-25 task-augmented tools/call, tasks/get, /result, /list, /cancel;
in 2026-07-28 the io.modelcontextprotocol/tasks extension, through the official client's extension API.

The Python SDK 2.3 has no task-augmented call (its check of a tools/call result knows no
CreateTaskResult), so the augmented call goes through the client session's own dispatcher; every
tasks/* request goes through `ClientSession.send_request` with the SDK's own request and result types.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Any

import pytest
from lakegate.devstack.taskclient import (
    EXTENSION,
    TERMINAL,
    Answer,
    DetailedTask,
    TaskHandle,
    TasksExtension,
    get_detailed,
    poll_detailed,
)
from lakegate.devstack.toolresults import error_text, structured
from lakegate.edge.app import EdgeState, http_app
from lakegate.edge.listener import listening
from mcp import Client
from mcp.client.session import ClientSession
from mcp.server.mcpserver import MCPServer
from mcp.shared.exceptions import MCPError
from mcp_types import (
    INVALID_PARAMS,
    METHOD_NOT_FOUND,
    CallToolResult,
    CancelTaskRequest,
    CancelTaskRequestParams,
    CancelTaskResult,
    CreateTaskResult,
    GetTaskPayloadRequest,
    GetTaskPayloadRequestParams,
    GetTaskRequest,
    GetTaskRequestParams,
    GetTaskResult,
    ListTasksRequest,
    ListTasksResult,
)

if TYPE_CHECKING:
    from conftest import Fakes


Target = MCPServer | str


@pytest.fixture(params=["memory", "http"])
async def target(request: pytest.FixtureRequest, edge: EdgeState) -> AsyncIterator[Target]:
    """The edge in process, or over streamable HTTP (where each request is its own POST)."""
    if request.param == "memory":
        yield edge.server
        return
    async with listening(http_app(edge), "127.0.0.1", 0, grace_seconds=5) as listener:
        yield f"{listener.url}{edge.settings.path}"


async def call_as_task(
    session: ClientSession, name: str, arguments: dict[str, Any], ttl: int = 60_000
) -> CreateTaskResult:
    raw = await session._dispatcher.send_raw_request(
        "tools/call", {"name": name, "arguments": arguments, "task": {"ttl": ttl}}, {}
    )
    return CreateTaskResult.model_validate(raw)


async def get(session: ClientSession, task_id: str) -> GetTaskResult:
    return await session.send_request(
        GetTaskRequest(params=GetTaskRequestParams(task_id=task_id)), GetTaskResult, request_read_timeout_seconds=10
    )


async def until(session: ClientSession, task_id: str, wanted: set[str]) -> GetTaskResult:
    async def poll() -> GetTaskResult:
        while (task := await get(session, task_id)).status not in wanted:  # noqa: ASYNC110 (tasks are polled)
            await asyncio.sleep(0.05)
        return task

    return await asyncio.wait_for(poll(), 20)


async def test_the_handshake_era_says_sync_table_to_bronze_may_run_as_a_task(edge: EdgeState) -> None:
    async with Client(edge.server, mode="legacy") as client:
        capabilities = client.session.server_capabilities
        tools = {tool.name: tool for tool in (await client.list_tools()).tools}

    assert capabilities is not None
    assert capabilities.tasks is not None
    assert capabilities.tasks.requests is not None
    assert capabilities.tasks.requests.tools is not None
    assert capabilities.tasks.cancel is not None
    assert capabilities.tasks.list is not None
    sync = tools["sync_table_to_bronze"]
    assert sync.execution is not None
    assert sync.execution.task_support == "optional"
    assert tools["query_sql"].execution is None


async def test_a_sync_run_as_a_task_answers_at_once_and_its_result_is_the_finished_run(
    target: Target, fakes: Fakes
) -> None:
    async with Client(target, mode="legacy") as client:
        session = client.session
        created = await call_as_task(
            session, "sync_table_to_bronze", {"connection_id": "src_seed", "table_name": "orders"}
        )
        assert created.task.status == "working"
        task_id = created.task.task_id

        result = await session.send_request(
            GetTaskPayloadRequest(params=GetTaskPayloadRequestParams(task_id=task_id)),
            CallToolResult,
            request_read_timeout_seconds=20,
        )
        done = await get(session, task_id)
        listed = await session.send_request(ListTasksRequest(), ListTasksResult)

    assert not result.is_error
    run = structured(result)
    assert run["status"] == "succeeded"
    assert run["row_count"] == 1000
    assert result.meta is not None
    assert result.meta["io.modelcontextprotocol/related-task"] == {"taskId": task_id}
    assert done.status == "completed"
    assert run["run_id"] in (done.status_message or "")
    assert [task.task_id for task in listed.tasks] == [task_id]


async def test_tasks_cancel_cancels_the_run_so_nothing_is_written_and_the_task_ends_cancelled(
    target: Target, fakes: Fakes
) -> None:
    fakes.catalog.plans["huge"] = "stall"
    async with Client(target, mode="legacy") as client:
        session = client.session
        created = await call_as_task(
            session, "sync_table_to_bronze", {"connection_id": "src_seed", "table_name": "huge"}
        )
        task_id = created.task.task_id
        working = await until(session, task_id, {"working"})
        while "extracting" not in (working.status_message or ""):  # the task shows the run's progress
            working = await until(session, task_id, {"working"})
        [run_id] = fakes.catalog.runs

        cancelled = await session.send_request(
            CancelTaskRequest(params=CancelTaskRequestParams(task_id=task_id)),
            CancelTaskResult,
            request_read_timeout_seconds=10,
        )
        after = await get(session, task_id)
        run = structured(await client.call_tool("get_sync_run", {"run_id": run_id}))
        with pytest.raises(MCPError) as again:
            await session.send_request(
                CancelTaskRequest(params=CancelTaskRequestParams(task_id=task_id)), CancelTaskResult
            )

    assert cancelled.status == "cancelled"
    assert after.status == "cancelled"
    assert run["status"] == "cancelled"
    assert run["error_code"] == "cancelled"
    assert run["row_count"] in (None, 0)
    assert again.value.error.code == INVALID_PARAMS
    assert "already ended (cancelled)" in again.value.error.message


async def test_an_unknown_task_is_invalid_params_naming_tasks_list(edge: EdgeState) -> None:
    async with Client(edge.server, mode="legacy") as client:
        with pytest.raises(MCPError) as unknown:
            await get(client.session, "task_nope")

    assert unknown.value.error.code == INVALID_PARAMS
    assert "tasks/list shows yours" in unknown.value.error.message


async def test_a_tool_that_cannot_run_as_a_task_is_refused_and_calls_without_task_are_unchanged(
    edge: EdgeState,
) -> None:
    async with Client(edge.server, mode="legacy") as client:
        with pytest.raises(MCPError) as refused:
            await call_as_task(client.session, "list_sources", {})
        plain = await client.call_tool("sync_table_to_bronze", {"connection_id": "src_seed", "table_name": "orders"})

    assert refused.value.error.code == METHOD_NOT_FOUND
    assert "does not run as a task" in refused.value.error.message
    assert structured(plain)["status"] == "succeeded"


async def test_an_unknown_tool_asked_as_a_task_is_invalid_params_like_a_plain_call(edge: EdgeState) -> None:
    async with Client(edge.server, mode="legacy") as client:
        with pytest.raises(MCPError) as unknown:
            await call_as_task(client.session, "sync_everything", {})

    assert unknown.value.error.code == INVALID_PARAMS
    assert "unknown tool 'sync_everything'" in unknown.value.error.message


# --- 2026-07-28: the io.modelcontextprotocol/tasks extension (SEP-2663) -------------------------

MISSING_REQUIRED_CLIENT_CAPABILITY = -32021


async def poll_until(session: ClientSession, task_id: str, wanted: set[str] | frozenset[str]) -> DetailedTask:
    return await asyncio.wait_for(poll_detailed(session, task_id, wanted), 20)


async def test_2026_discovery_declares_the_tasks_extension_and_no_core_tasks(edge: EdgeState) -> None:
    async with Client(edge.server, extensions=[TasksExtension()]) as client:
        capabilities = client.session.server_capabilities

    assert capabilities is not None
    assert capabilities.extensions is not None
    assert capabilities.extensions[EXTENSION] == {}
    assert capabilities.tasks is None


async def test_2026_a_sync_declaring_the_extension_returns_a_task_at_once_and_tasks_get_carries_its_result(
    target: Target, fakes: Fakes
) -> None:
    async with Client(target, extensions=[TasksExtension()]) as client:
        assert client.protocol_version == "2026-07-28"
        handle = await client.session.call_tool(
            "sync_table_to_bronze", {"connection_id": "src_seed", "table_name": "orders"}, allow_claimed=True
        )
        assert isinstance(handle, TaskHandle)
        done = await poll_until(client.session, handle.task_id, TERMINAL)
        resolved = await client.call_tool("sync_table_to_bronze", {"connection_id": "src_seed", "table_name": "orders"})

    assert handle.status == "working"
    assert handle.ttl_ms == 3_600_000
    assert done.status == "completed"
    assert done.result_type == "complete"
    assert done.result is not None
    run = done.result["structuredContent"]
    assert run["status"] == "succeeded"
    assert run["row_count"] == 1000
    assert run["run_id"] in (done.status_message or "")
    assert structured(resolved)["status"] == "succeeded"  # the official client finishes the task itself
    assert len(fakes.catalog.runs) == 2


async def test_2026_tasks_cancel_acknowledges_and_the_run_ends_cancelled_with_nothing_written(
    target: Target, fakes: Fakes
) -> None:
    fakes.catalog.plans["huge"] = "stall"
    async with Client(target, extensions=[TasksExtension()]) as client:
        session = client.session
        handle = await session.call_tool(
            "sync_table_to_bronze", {"connection_id": "src_seed", "table_name": "huge"}, allow_claimed=True
        )
        assert isinstance(handle, TaskHandle)
        working = await poll_until(session, handle.task_id, {"working"})
        while "extracting" not in (working.status_message or ""):  # the task shows the run's progress
            working = await poll_until(session, handle.task_id, {"working"})
        [run_id] = fakes.catalog.runs

        ack = await session.send_request(
            CancelTaskRequest(params=CancelTaskRequestParams(task_id=handle.task_id)), Answer, 10
        )
        after = await poll_until(session, handle.task_id, TERMINAL)
        run = structured(await client.call_tool("get_sync_run", {"run_id": run_id}))

    assert ack.model_extra == {"resultType": "complete"}  # an empty acknowledgement
    assert after.status == "cancelled"
    assert after.result is None
    assert run["status"] == "cancelled"
    assert run["error_code"] == "cancelled"
    assert run["row_count"] in (None, 0)


async def test_2026_a_several_table_task_lists_every_run_and_its_cancel_cancels_them_all(
    target: Target, fakes: Fakes
) -> None:
    fakes.catalog.plans["huge"] = fakes.catalog.plans["vast"] = "stall"
    async with Client(target, extensions=[TasksExtension()]) as client:
        session = client.session
        finished = await client.call_tool(
            "sync_table_to_bronze", {"connection_id": "src_seed", "table_name": ["orders", "public.refunds"]}
        )
        handle = await session.call_tool(
            "sync_table_to_bronze",
            {"connection_id": "src_seed", "table_name": ["huge", "vast"]},
            allow_claimed=True,
        )
        assert isinstance(handle, TaskHandle)
        working = await poll_until(session, handle.task_id, {"working"})
        while "extracting" not in (working.status_message or "") or len(fakes.catalog.runs) < 4:
            working = await poll_until(session, handle.task_id, {"working"})
        stalled = list(fakes.catalog.runs)[2:]
        await session.send_request(
            CancelTaskRequest(params=CancelTaskRequestParams(task_id=handle.task_id)), Answer, 10
        )
        after = await poll_until(session, handle.task_id, TERMINAL)
        runs = [structured(await client.call_tool("get_sync_run", {"run_id": run_id})) for run_id in stalled]

    listed = structured(finished)
    assert [(t["source_table"], t["outcome"]) for t in listed["tables"]] == [
        ("public.orders", "succeeded"),
        ("public.refunds", "succeeded"),
    ]
    assert after.status == "cancelled"
    assert [run["status"] for run in runs] == ["cancelled", "cancelled"]


async def test_2026_task_methods_need_the_extension_and_the_extension_has_no_list_or_result(
    edge: EdgeState,
) -> None:
    async with Client(edge.server, extensions=[TasksExtension()]) as declaring:
        handle = await declaring.session.call_tool(
            "sync_table_to_bronze", {"connection_id": "src_seed", "table_name": "orders"}, allow_claimed=True
        )
        assert isinstance(handle, TaskHandle)
        with pytest.raises(MCPError) as listing:
            await declaring.session.send_request(ListTasksRequest(), Answer)
        with pytest.raises(MCPError) as result:
            await declaring.session.send_request(
                GetTaskPayloadRequest(params=GetTaskPayloadRequestParams(task_id=handle.task_id)), Answer
            )
        with pytest.raises(MCPError) as unknown:
            await get_detailed(declaring.session, "task_nope")
        await poll_until(declaring.session, handle.task_id, TERMINAL)
    async with Client(edge.server) as plain:
        direct = await plain.call_tool("sync_table_to_bronze", {"connection_id": "src_seed", "table_name": "orders"})
        with pytest.raises(MCPError) as undeclared:
            await get_detailed(plain.session, handle.task_id)

    assert listing.value.error.code == METHOD_NOT_FOUND
    assert "keep the taskId" in listing.value.error.message
    assert result.value.error.code == METHOD_NOT_FOUND
    assert "inline" in result.value.error.message
    assert unknown.value.error.code == INVALID_PARAMS
    assert structured(direct)["status"] == "succeeded"  # a client without the extension gets the result itself
    assert undeclared.value.error.code == MISSING_REQUIRED_CLIENT_CAPABILITY
    assert undeclared.value.error.data == {"requiredCapabilities": {"extensions": {EXTENSION: {}}}}


async def test_2026_arguments_that_do_not_fit_get_their_tool_error_at_once_without_a_task(edge: EdgeState) -> None:
    async with Client(edge.server, extensions=[TasksExtension()]) as client:
        answer = await client.session.call_tool(
            "sync_table_to_bronze", {"connection_id": "src_seed", "sync_mode": "sideways"}, allow_claimed=True
        )

    assert isinstance(answer, CallToolResult)
    assert answer.is_error
    assert "sync_mode" in error_text(answer)


async def test_tasks_result_waits_no_longer_than_the_tasks_ttl(edge: EdgeState, fakes: Fakes) -> None:
    fakes.catalog.plans["huge"] = "stall"
    async with Client(edge.server, mode="legacy") as client:
        session = client.session
        made = await call_as_task(
            session, "sync_table_to_bronze", {"connection_id": "src_seed", "table_name": "huge"}, ttl=500
        )
        task_id = made.task.task_id
        async with asyncio.timeout(10):  # the run stalls for ever
            with pytest.raises(MCPError) as expired:
                await session.send_request(
                    GetTaskPayloadRequest(params=GetTaskPayloadRequestParams(task_id=task_id)), CallToolResult
                )

    assert expired.value.error.code == INVALID_PARAMS
    assert "expired" in expired.value.error.message
