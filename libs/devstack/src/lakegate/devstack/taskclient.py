"""Driving MCP tasks from a test through the official client, in both protocol eras.

2025-11-25 keeps tasks in the core protocol: a `tools/call` with `task` answers a
`CreateTaskResult`, then `tasks/get`, `tasks/result` and `tasks/cancel`. The Python SDK 2.3 has no
task-augmented call of its own (its check of a tools/call result knows no `CreateTaskResult`), so
that call goes through the session's dispatcher. 2026-07-28 has the `io.modelcontextprotocol/tasks`
extension: the client declares it (`TasksExtension`, the SDK's `ClientExtension`), the server may
answer a flat task handle (`resultType: "task"`), and `tasks/get` carries the outcome inline.
`start_task`, `task_state` and `cancel_task` hide the difference.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any, Literal

from mcp import Client
from mcp.client.extension import ClaimContext, ClientExtension, ResultClaim
from mcp.client.session import ClientSession
from mcp_types import (
    CallToolResult,
    CancelTaskRequest,
    CancelTaskRequestParams,
    CreateTaskResult,
    GetTaskPayloadRequest,
    GetTaskPayloadRequestParams,
    GetTaskRequest,
    GetTaskRequestParams,
    GetTaskResult,
    Result,
)
from mcp_types.version import MODERN_PROTOCOL_VERSIONS
from pydantic import ConfigDict

EXTENSION = "io.modelcontextprotocol/tasks"
TERMINAL = frozenset({"completed", "failed", "cancelled"})


class Answer(Result):
    """Any answer, its fields kept as sent."""

    model_config = ConfigDict(extra="allow")


class TaskHandle(Result):
    """The extension's `CreateTaskResult`: a flat task with `resultType: "task"`."""

    result_type: Literal["task"]
    task_id: str
    status: str
    status_message: str | None = None
    created_at: str
    last_updated_at: str
    ttl_ms: int | None
    poll_interval_ms: int | None = None


class DetailedTask(Result):
    """What `tasks/get` answers in the extension: the task with its outcome inline."""

    model_config = ConfigDict(extra="allow")
    result_type: str
    task_id: str
    status: str
    status_message: str | None = None
    result: dict[str, Any] | None = None
    error: dict[str, Any] | None = None


@dataclass(frozen=True)
class TaskState:
    """A task as either era shows it; `result` once it is completed."""

    status: str
    status_message: str | None
    result: CallToolResult | None = None


async def get_detailed(session: ClientSession, task_id: str) -> DetailedTask:
    """2026-07-28 `tasks/get` through the session, so the request carries the envelope and capabilities."""
    request = GetTaskRequest(params=GetTaskRequestParams(task_id=task_id))
    return await session.send_request(request, DetailedTask, request_read_timeout_seconds=10)


async def poll_detailed(session: ClientSession, task_id: str, wanted: frozenset[str] | set[str]) -> DetailedTask:
    """Poll `tasks/get` until the task's status is one of `wanted` (the caller bounds the wait)."""
    while (task := await get_detailed(session, task_id)).status not in wanted:  # noqa: ASYNC110 (tasks are polled)
        await asyncio.sleep(0.05)
    return task


class TasksExtension(ClientExtension):
    """The client side of the extension: declares it, and finishes a task handle by polling `tasks/get`."""

    identifier = EXTENSION

    def claims(self) -> list[ResultClaim[Any]]:
        return [ResultClaim(result_type="task", model=TaskHandle, resolve=self._resolve)]

    async def _resolve(self, handle: TaskHandle, ctx: ClaimContext) -> CallToolResult:
        task = await poll_detailed(ctx.session, handle.task_id, TERMINAL)
        if task.status != "completed":
            raise RuntimeError(f"task {handle.task_id} ended {task.status}: {task.status_message}")
        return CallToolResult.model_validate(task.result)


def modern(client: Client) -> bool:
    """Whether the client speaks 2026-07-28 (the extension) rather than the handshake era."""
    return client.protocol_version in MODERN_PROTOCOL_VERSIONS


async def start_task(client: Client, name: str, arguments: dict[str, Any]) -> str:
    """Call a tool as a task and return the task's id (the server must answer with a task)."""
    session = client.session
    if modern(client):
        handle = await session.call_tool(name, arguments, allow_claimed=True)
        assert isinstance(handle, TaskHandle), handle
        return handle.task_id
    raw = await session._dispatcher.send_raw_request(
        "tools/call", {"name": name, "arguments": arguments, "task": {"ttl": 600_000}}, {}
    )
    return CreateTaskResult.model_validate(raw).task.task_id


async def task_state(client: Client, task_id: str) -> TaskState:
    """The task now; a completed one with the call's result."""
    session = client.session
    if modern(client):
        task = await get_detailed(session, task_id)
        result = CallToolResult.model_validate(task.result) if task.result is not None else None
        return TaskState(task.status, task.status_message, result)
    got = await session.send_request(
        GetTaskRequest(params=GetTaskRequestParams(task_id=task_id)), GetTaskResult, request_read_timeout_seconds=10
    )
    result = None
    if got.status == "completed":
        request = GetTaskPayloadRequest(params=GetTaskPayloadRequestParams(task_id=task_id))
        result = await session.send_request(request, CallToolResult, request_read_timeout_seconds=10)
    return TaskState(got.status, got.status_message, result)


async def wait_task(client: Client, task_id: str, wanted: frozenset[str] | set[str], timeout: float) -> TaskState:
    """Poll the task until its status is one of `wanted`, for at most `timeout` seconds."""

    async def poll() -> TaskState:
        while (state := await task_state(client, task_id)).status not in wanted:  # noqa: ASYNC110 (polled)
            await asyncio.sleep(0.1)
        return state

    return await asyncio.wait_for(poll(), timeout)


async def cancel_task(client: Client, task_id: str) -> None:
    """`tasks/cancel`: the extension acknowledges it; 2025-11-25 answers the task."""
    request = CancelTaskRequest(params=CancelTaskRequestParams(task_id=task_id))
    await client.session.send_request(request, Answer, request_read_timeout_seconds=30)
