"""Long syncs as MCP tasks, in both protocol eras.

**2025-11-25** (tasks in the core protocol): a client that sends `task` with a `tools/call` of a
tool in `TASK_TOOLS` gets a `CreateTaskResult` at once; the edge runs the call in the background,
for as long as the sync runs take (not only `sync_wait_seconds`), and the task's status follows
them: `working` with the runs' progress as `statusMessage`, then `completed`, `failed` (the run
failed) or `cancelled` (by `tasks/cancel` or `cancel_sync`). `tasks/get`, `tasks/result` (waits,
then answers the call's own result), `tasks/list` and `tasks/cancel` (cancels the runs: nothing is
written, no cursor moves) serve only the caller that created the task: the same tenant and the same
`Authorization` header (`cancellation.caller`).

**2026-07-28** (the `io.modelcontextprotocol/tasks` extension, SEP-2663): the server decides. A
`tools/call` of a tool in `TASK_TOOLS` whose request capabilities declare the extension answers a
flat `CreateTaskResult` (`resultType: "task"`, `taskId`, `status`, `ttlMs`, `pollIntervalMs`). The
extension has no `tasks/list` and no `tasks/result` (-32601 here): `tasks/get` answers the task with
its outcome inline, `result` when `completed` (a tool error, `isError`, is a completed call, as the
extension says; only a JSON-RPC error is `failed`, with `error`), and `cancelled` when its runs were
cancelled. Arguments that do not fit the tool's input schema get the tool error at once, without a
task. `tasks/cancel` and `tasks/update` answer an empty acknowledgement (these tasks never ask
for input). A request to them that does not declare the extension is -32021. Status notifications
over `subscriptions/listen` (optional in the extension) are not sent: clients poll `tasks/get`.

A task is kept for its `ttl` after it was created (the client's wish in 2025-11-25, at most a day;
an hour in 2026-07-28), then forgotten; the runs stay in `list_sync_runs`; a tasks/result wait ends
with it. Calls without a task behave as before. The audit log records the call that created the task,
with the task as its result.

A task lives in the process that made it; with `TaskPeers` (HTTP, where a client's requests may
come to any edge process or replica) its id names that process, a request for another's task is
answered by the owner over NATS with the same checks, and tasks/list lists the caller's tasks of
every process (`task_peers`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import uuid
from collections.abc import Awaitable, Callable
from contextvars import ContextVar
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any

from lakegate.common.errors import InvalidInput
from lakegate.edge.audit import call_failed
from lakegate.edge.cancellation import REQUEST_CANCELLED, caller
from lakegate.edge.failures import unknown_tool
from lakegate.edge.internal_errors import internal_error
from lakegate.edge.peers import OwnerGone
from lakegate.edge.task_peers import (
    ListedTask,
    ListQuestion,
    OwnTasks,
    TaskAnswer,
    TaskPeers,
    TaskQuestion,
)
from lakegate.edge.task_peers import owner_of as task_owner
from lakegate.edge.tenancy import Tenancy
from mcp.server.context import CallNext, HandlerResult, ServerRequestContext
from mcp.server.lowlevel import Server
from mcp.shared.exceptions import MCPError
from mcp_types import (
    CLIENT_CAPABILITIES_META_KEY,
    INVALID_PARAMS,
    METHOD_NOT_FOUND,
    MISSING_REQUIRED_CLIENT_CAPABILITY,
    SERVER_INFO_META_KEY,
    CallToolResult,
    CancelTaskRequestParams,
    ErrorData,
    GetTaskPayloadRequestParams,
    GetTaskRequestParams,
    PaginatedRequestParams,
    RequestParams,
    ServerTasksCapability,
    Task,
    TaskStatus,
    TextContent,
)
from mcp_types.version import MODERN_PROTOCOL_VERSIONS
from pydantic import Field

log = logging.getLogger(__name__)

#: Tools a client may run as a task.
TASK_TOOLS = frozenset({"sync_table_to_bronze"})
#: What `capabilities.tasks` says in the handshake era.
CAPABILITY = ServerTasksCapability.model_validate({"list": {}, "cancel": {}, "requests": {"tools": {"call": {}}}})
#: The tasks extension of 2026-07-28, as `capabilities.extensions` names it (no settings are defined).
EXTENSION = "io.modelcontextprotocol/tasks"
RELATED_TASK = "io.modelcontextprotocol/related-task"
DEFAULT_TTL_MS = 60 * 60 * 1000
MAX_TTL_MS = 24 * 60 * 60 * 1000
POLL_INTERVAL_MS = 1000
PAGE = 50
#: Methods of the 2025-11-25 tasks that the 2026-07-28 extension does not have.
_HANDSHAKE_ONLY = {
    "tasks/list": "the extension has no task listing: keep the taskId that tools/call returned",
    "tasks/result": "tasks/get returns the call's result inline once the task is completed",
}

_Owner = tuple[str, str]


class UpdateTaskRequestParams(RequestParams):
    """`tasks/update` of the 2026-07-28 extension: responses to a task's input requests."""

    task_id: str = Field(alias="taskId")
    input_responses: dict[str, Any] = Field(default_factory=dict, alias="inputResponses")


_TaskParams = GetTaskRequestParams | GetTaskPayloadRequestParams | CancelTaskRequestParams | UpdateTaskRequestParams


def _stamp(moment: datetime) -> str:
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _now() -> str:
    return _stamp(datetime.now(UTC))


@dataclass
class TaskRecord:
    """One task: its state as `tasks/get` shows it, and the call's outcome once it has one."""

    owner: _Owner
    ttl: int
    task_id: str
    status: TaskStatus = "working"
    status_message: str | None = "started"
    created: datetime = field(default_factory=lambda: datetime.now(UTC))
    last_updated_at: str = field(default_factory=_now)
    result: dict[str, Any] | None = None
    error: MCPError | None = None
    done: asyncio.Event = field(default_factory=asyncio.Event)
    job: asyncio.Task[None] | None = None

    async def report(self, progress: float, total: float | None = None, message: str | None = None) -> None:
        """Progress of the running call, shown as the task's `statusMessage`."""
        if message and self.status == "working":
            self.status_message, self.last_updated_at = message, _now()

    def end(self, status: TaskStatus, message: str | None) -> None:
        if self.status == "working":
            self.status, self.status_message, self.last_updated_at = status, message, _now()
        self.done.set()

    @property
    def created_at(self) -> str:
        return _stamp(self.created)

    def view(self) -> dict[str, Any]:
        """The task as 2025-11-25 shows it."""
        task = Task(
            task_id=self.task_id,
            status=self.status,
            status_message=self.status_message,
            created_at=self.created_at,
            last_updated_at=self.last_updated_at,
            ttl=self.ttl,
            poll_interval=POLL_INTERVAL_MS,
        )
        return task.model_dump(by_alias=True, mode="json", exclude_none=True)

    def detailed(self) -> dict[str, Any]:
        """The task as the 2026-07-28 extension shows it: flat, with its outcome inline (`DetailedTask`)."""
        status = self.status
        if status == "failed" and self.error is None:
            status = "completed"  # a tool error is a completed call there; only a JSON-RPC error is `failed`
        shown: dict[str, Any] = {
            "taskId": self.task_id,
            "status": status,
            "createdAt": self.created_at,
            "lastUpdatedAt": self.last_updated_at,
            "ttlMs": self.ttl,
            "pollIntervalMs": POLL_INTERVAL_MS,
        }
        if self.status_message is not None:
            shown["statusMessage"] = self.status_message
        if status == "completed" and self.result is not None:
            shown["result"] = self.result
        if status == "failed" and self.error is not None:
            shown["error"] = self.error.error.model_dump(by_alias=True, mode="json", exclude_none=True)
        return shown

    def expired(self, now: datetime) -> bool:
        return self.seconds_left(now) < 0

    def seconds_left(self, now: datetime) -> float:
        """How long the task is kept from `now` on (its ttl after it was created)."""
        return self.ttl / 1000 - (now - self.created).total_seconds()


#: What one method does with the task a request names: (task, 2026-07-28?, longest wait) → its result.
_Serve = Callable[[TaskRecord, bool, float], Awaitable[dict[str, Any]]]

_CURRENT: ContextVar[TaskRecord | None] = ContextVar("lakegate_edge_task", default=None)


def current_task() -> TaskRecord | None:
    """The task the running tool call serves, if it runs as one (it then waits until its runs end)."""
    return _CURRENT.get()


def _modern(ctx: ServerRequestContext[Any, Any]) -> bool:
    return ctx.protocol_version in MODERN_PROTOCOL_VERSIONS


def declares_extension(ctx: ServerRequestContext[Any, Any]) -> bool:
    """Whether this request's own capabilities (2026-07-28 `_meta`) declare the tasks extension."""
    meta = (ctx.params or {}).get("_meta")
    capabilities = meta.get(CLIENT_CAPABILITIES_META_KEY) if isinstance(meta, dict) else None
    extensions = capabilities.get("extensions") if isinstance(capabilities, dict) else None
    return isinstance(extensions, dict) and EXTENSION in extensions


def _extension_required(method: str) -> MCPError:
    return MCPError(
        code=MISSING_REQUIRED_CLIENT_CAPABILITY,
        message=f"{method} needs the {EXTENSION} extension: declare it in the request's client capabilities",
        data={"requiredCapabilities": {"extensions": {EXTENSION: {}}}},
    )


class TaskCalls:
    """Server middleware and request handlers of task-augmented tool calls."""

    def __init__(self, tenancy: Tenancy, peers: TaskPeers | None = None) -> None:
        """`peers`: the other edge processes, which may get requests for this process's tasks (HTTP)."""
        self._tenancy = tenancy
        self._peers = peers
        self._tasks: dict[str, TaskRecord] = {}
        self._knows: Callable[[str], bool] = lambda tool: True
        self._fits: Callable[[str, dict[str, Any]], bool] = lambda tool, arguments: True
        self._server_info: Callable[[], dict[str, Any]] = dict
        #: The methods of one task: their params, and what each does with the task, whichever process the
        #: request came to.
        self._methods: dict[str, tuple[type[_TaskParams], _Serve]] = {
            "tasks/get": (GetTaskRequestParams, self._show),
            "tasks/result": (GetTaskPayloadRequestParams, self._outcome),
            "tasks/cancel": (CancelTaskRequestParams, self._stop),
            "tasks/update": (UpdateTaskRequestParams, self._acknowledge),
        }
        if peers is not None:
            peers.answer_with(self._answer_peer, self._own_tasks)

    def install(
        self,
        server: Server[Any],
        knows: Callable[[str], bool] | None = None,
        fits: Callable[[str, dict[str, Any]], bool] | None = None,
    ) -> None:
        """Serve the tasks/* methods of both eras on `server`; `knows` says which tools exist, `fits`
        whether arguments fit a tool's input schema."""
        if knows is not None:
            self._knows = knows
        if fits is not None:
            self._fits = fits
        self._server_info = lambda: server.server_info_stamp
        server.add_request_handler("tasks/list", PaginatedRequestParams, self._list)
        for method, (params_type, _) in self._methods.items():
            server.add_request_handler(method, params_type, self._asked)

    async def __call__(self, ctx: ServerRequestContext[Any, Any], call_next: CallNext) -> HandlerResult:
        if ctx.method != "tools/call":
            return await call_next(ctx)
        params = ctx.params or {}
        name = str(params.get("name", ""))
        if _modern(ctx):
            plain = {key: value for key, value in params.items() if key != "task"}  # not a 2026 field
            arguments = params.get("arguments")
            # Validate the arguments ahead of the call only for a task call: every other call would pay it twice.
            task = name in TASK_TOOLS and declares_extension(ctx)
            if not (task and isinstance(arguments, dict) and self._fits(name, arguments)):
                # Arguments that do not fit get their tool error at once, not a task to poll for it.
                return await call_next(replace(ctx, params=plain) if "task" in params else ctx)
            record = self._start(ctx, plain, call_next, DEFAULT_TTL_MS)
            return {"resultType": "task", **record.detailed(), "_meta": {SERVER_INFO_META_KEY: self._server_info()}}
        if params.get("task") is None:
            return await call_next(ctx)
        if not self._knows(name):
            raise unknown_tool(name)
        if name not in TASK_TOOLS:
            raise MCPError(
                code=METHOD_NOT_FOUND,
                message=f"tool {name!r} does not run as a task (only {', '.join(sorted(TASK_TOOLS))}); "
                "call it without `task`",
            )
        requested = params["task"].get("ttl") if isinstance(params["task"], dict) else None
        ttl = min(requested, MAX_TTL_MS) if isinstance(requested, int) and requested > 0 else DEFAULT_TTL_MS
        plain = {key: value for key, value in params.items() if key != "task"}
        return {"task": self._start(ctx, plain, call_next, ttl).view()}

    def _start(
        self, ctx: ServerRequestContext[Any, Any], params: dict[str, Any], call_next: CallNext, ttl: int
    ) -> TaskRecord:
        """Create a task and run the call in the background; the task is findable before this returns."""
        self._forget_expired()
        task_id = f"task_{uuid.uuid4().hex}" if self._peers is None else self._peers.new_task_id()
        record = TaskRecord(owner=caller(self._tenancy, ctx), ttl=ttl, task_id=task_id)
        meta = {key: value for key, value in (params.get("_meta") or {}).items() if key != "progressToken"}
        background = replace(ctx, params={**params, "_meta": meta})
        token = _CURRENT.set(record)
        try:
            record.job = asyncio.create_task(self._run(record, call_next, background))
        finally:
            _CURRENT.reset(token)
        self._tasks[record.task_id] = record
        log.info("tool call %s runs as task %s", params.get("name"), record.task_id)
        return record

    async def _run(self, record: TaskRecord, call_next: CallNext, ctx: ServerRequestContext[Any, Any]) -> None:
        try:
            result = await call_next(ctx)
        except asyncio.CancelledError:
            record.end("cancelled", "cancelled: the sync runs were cancelled and nothing was written")
            raise
        except MCPError as exc:
            record.error = exc
            record.end("failed", exc.error.message)
            return
        except Exception:  # the call's own error handling missed it; the task must still end
            log.exception("task %s failed", record.task_id)
            record.error = internal_error("tools/call")
            record.end("failed", record.error.error.message)
            return
        dumped = _dump(result)
        record.result = dumped
        structured = dumped.get("structuredContent")
        run = structured if isinstance(structured, dict) else {}
        run_status, run_id = run.get("status"), run.get("run_id")
        if run_status == "cancelled":
            record.end("cancelled", f"sync run {run_id} was cancelled; nothing was written")
        elif call_failed(dumped):
            record.end("failed", _text(dumped))
        elif isinstance(run.get("tables"), list):
            record.end("completed", _tables_summary(run))
        else:
            record.end("completed", f"sync run {run_id} {run_status}" if run_id else "completed")

    def _find(self, owner: _Owner, task_id: str, modern: bool) -> TaskRecord:
        self._forget_expired()
        record = self._tasks.get(task_id)
        if record is None or record.owner != owner:
            raise _unknown(task_id, modern)
        return record

    def _modern_gate(self, ctx: ServerRequestContext[Any, Any]) -> None:
        """2026-07-28: the method belongs to the extension, which the request must declare."""
        if ctx.method in _HANDSHAKE_ONLY:
            raise MCPError(
                code=METHOD_NOT_FOUND,
                message=f"{ctx.method} is not part of the {EXTENSION} extension of protocol 2026-07-28: "
                f"{_HANDSHAKE_ONLY[ctx.method]}",
            )
        if not declares_extension(ctx):
            raise _extension_required(ctx.method)

    async def _asked(self, ctx: ServerRequestContext[Any, Any], params: _TaskParams) -> dict[str, Any]:
        """tasks/get, /result, /cancel or /update: answered here for a task of this process, else by its owner."""
        modern = _modern(ctx)
        if ctx.method == "tasks/update" and not modern:
            raise MCPError(
                code=METHOD_NOT_FOUND, message="tasks/update is part of protocol 2026-07-28's tasks extension only"
            )
        if modern:
            self._modern_gate(ctx)
        tenant_id, caller_key = caller(self._tenancy, ctx)
        peer = None if self._peers is None else task_owner(params.task_id)
        if self._peers is None or peer is None or peer == self._peers.instance:
            record = self._find((tenant_id, caller_key), params.task_id, modern)
            _, serve = self._methods[ctx.method]
            return await serve(record, modern, math.inf)
        question = TaskQuestion(
            method=ctx.method,
            params=params.model_dump(by_alias=True, mode="json", exclude_none=True, exclude={"meta"}),
            tenant_id=tenant_id,
            caller_key=caller_key,
            modern=modern,
        )
        try:
            answer = await self._peers.ask(peer, question)
        except OwnerGone:
            raise _unknown(params.task_id, modern, "the edge process that held it has stopped") from None
        if answer.error is not None:
            raise MCPError.from_error_data(ErrorData.model_validate(answer.error))
        return answer.result or {}

    async def _answer_peer(self, question: TaskQuestion) -> TaskAnswer:
        """Another process's request for one of this process's tasks, checked as if it had come here."""
        method = self._methods.get(question.method)
        if method is None:
            raise InvalidInput(f"{question.method} is not a method of one task; the sending edge must be fixed")
        params_type, serve = method
        task_id = params_type.model_validate(question.params).task_id
        try:
            record = self._find((question.tenant_id, question.caller_key), task_id, question.modern)
            return TaskAnswer(result=await serve(record, question.modern, question.seconds or math.inf))
        except _TurnEnded:
            return TaskAnswer(pending=True)
        except MCPError as exc:
            return TaskAnswer(error=exc.error.model_dump(by_alias=True, mode="json", exclude_none=True))

    async def _show(self, record: TaskRecord, modern: bool, seconds: float) -> dict[str, Any]:
        return record.detailed() if modern else record.view()

    async def _outcome(self, record: TaskRecord, modern: bool, seconds: float) -> dict[str, Any]:
        """tasks/result: the call's own result once the task ended, waiting `seconds` at most (`_TurnEnded`
        then), and never past the task's ttl (it is unknown then)."""
        if not record.done.is_set():
            left = record.seconds_left(datetime.now(UTC))
            try:
                await asyncio.wait_for(record.done.wait(), min(seconds, left))
            except TimeoutError:
                if seconds < left:
                    raise _TurnEnded from None
                self._forget_expired()
                raise _unknown(record.task_id, modern) from None
        related = {RELATED_TASK: {"taskId": record.task_id}}
        if record.result is not None:
            return {**record.result, "_meta": {**(record.result.get("_meta") or {}), **related}}
        if record.error is not None:
            raise record.error
        raise MCPError(code=REQUEST_CANCELLED, message=f"task {record.task_id} was cancelled; it has no result")

    async def _stop(self, record: TaskRecord, modern: bool, seconds: float) -> dict[str, Any]:
        """tasks/cancel: cancel the call, which cancels its runs before it ends."""
        if record.status != "working":
            if modern:
                return {}  # the extension's cancel is an acknowledgement; the task keeps its own end
            raise MCPError(
                code=INVALID_PARAMS,
                message=f"task {record.task_id} already ended ({record.status}), so there is nothing to cancel",
            )
        if record.job is not None:
            record.job.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await record.job  # the call cancels its runs before it ends
        return {} if modern else record.view()

    async def _acknowledge(self, record: TaskRecord, modern: bool, seconds: float) -> dict[str, Any]:
        return {}  # these tasks never ask for input, so every response is one the extension says to ignore

    async def _list(self, ctx: ServerRequestContext[Any, Any], params: PaginatedRequestParams) -> dict[str, Any]:
        """The caller's tasks of every edge process, newest first (`createdAt`, then `taskId`), 50 a page;
        the cursor is the offset of the next page in that order."""
        if _modern(ctx):
            self._modern_gate(ctx)
        try:
            start = int(params.cursor or 0)
            if start < 0:
                raise ValueError(start)
        except ValueError as exc:
            raise MCPError(code=INVALID_PARAMS, message="cursor: send the nextCursor of a tasks/list answer") from exc
        tenant_id, caller_key = caller(self._tenancy, ctx)
        # Each process's newest `start + PAGE` hold every task of the page.
        question = ListQuestion(tenant_id=tenant_id, caller_key=caller_key, limit=start + PAGE)
        listings = [self._own_tasks(question)]
        if self._peers is not None:
            listings += await self._peers.gather(question)
        listed = sorted(
            (task for listing in listings for task in listing.tasks),
            key=lambda task: (task.created, task.task["taskId"]),
            reverse=True,
        )
        answer: dict[str, Any] = {"tasks": [task.task for task in listed[start : start + PAGE]]}
        if start + PAGE < sum(listing.total for listing in listings):
            answer["nextCursor"] = str(start + PAGE)
        return answer

    def _own_tasks(self, question: ListQuestion) -> OwnTasks:
        """The caller's newest `question.limit` tasks of this process, and how many it has."""
        self._forget_expired()
        owner = (question.tenant_id, question.caller_key)
        own = [record for record in reversed(self._tasks.values()) if record.owner == owner]
        return OwnTasks(
            instance="" if self._peers is None else self._peers.instance,
            total=len(own),
            tasks=[ListedTask(created=record.created, task=record.view()) for record in own[: question.limit]],
        )

    def _forget_expired(self) -> None:
        now = datetime.now(UTC)
        for task_id in [task_id for task_id, record in self._tasks.items() if record.expired(now)]:
            record = self._tasks.pop(task_id)
            if record.job is not None and not record.job.done():
                record.job.cancel()


class _TurnEnded(Exception):
    """A forwarded tasks/result turn ended while the task goes on: the asker asks again."""


def _unknown(task_id: str, modern: bool, why: str = "it never existed, is another caller's, or expired") -> MCPError:
    where = "" if modern else "; tasks/list shows yours"
    return MCPError(code=INVALID_PARAMS, message=f"no task {task_id!r}: {why}{where}")


def _dump(result: HandlerResult) -> dict[str, Any]:
    if isinstance(result, dict):
        return result
    if result is None:
        return CallToolResult(content=[]).model_dump(by_alias=True, mode="json", exclude_none=True)
    return result.model_dump(by_alias=True, mode="json", exclude_none=True)


def _text(result: dict[str, Any]) -> str | None:
    for block in result.get("content") or []:
        if isinstance(block, dict) and block.get("type") == "text":
            return TextContent.model_validate(block).text
    return None


def _tables_summary(result: dict[str, Any]) -> str:
    tables = result.get("tables") or []
    counts = ", ".join(f"{result.get(key) or 0} {key}" for key in ("succeeded", "failed", "running"))
    return f"{len(tables)} tables synced: {counts}"
