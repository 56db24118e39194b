"""MCP tasks across the edge's processes and replicas: the process that made a task answers for it over NATS.

A task lives in the memory of the edge process that runs its call (its owner), yet a client's
next request may come to any process (`processes` on one port, replicas behind a load balancer).
So the task id names its owner, `task_<instance>_<32 random hex>` (`NatsLink.instance`; the random
part is what makes it unguessable, as before), and

    tasks/get, /cancel,     of another process's task are handed to the owner over NATS request/reply
    /update                 (`Topology.edge_peer(owner, "task")`): the method, its params, the era and
                            the caller's identity (tenant and `Authorization` digest, `cancellation.caller`).
                            The owner checks them exactly as for its own request and answers the JSON-RPC
                            result or error, which the asker answers as it is
    tasks/result            asks the owner to wait in turns of at most `WAIT_TURN_SECONDS`; the owner
                            bounds each turn by the task's ttl, after which the task is unknown
    tasks/list              asks every process (`edge_peer("all", "tasklist")`) on a reply inbox of its
                            own and gathers the answers until none came for `LIST_STALL_SECONDS` (at most
                            `LIST_WAIT_SECONDS` in all): NATS does not say how many processes listen, so a
                            pause ends the gathering (the "stall" of NATS's request-many pattern, ADR-47)
    an owner that is gone   (stopped, killed) has no responder: the task is unknown (-32602), as an
                            expired one, after the RPC client's few retries (~3 s)

A task of the process itself costs no NATS round trip. Only the edge's NATS user may publish or
subscribe to `<prefix>.edges.*.*` (`lakegate.common.nats_users`), so an owner trusts the caller
identity a peer forwards as it trusts its own HTTP layer.
"""

from __future__ import annotations

import asyncio
import logging
import re
import uuid
from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import Any

from lakegate.common.errors import LakegateError
from lakegate.common.rpc import answer_from, answers
from lakegate.common.service import Runtime
from lakegate.edge.nats_link import NatsLink
from lakegate.edge.peers import WAIT_TURN_SECONDS, ask_owner
from nats.aio.client import NO_RESPONDERS_STATUS
from nats.errors import TimeoutError as NatsTimeoutError
from nats.js.api import Header
from pydantic import BaseModel, Field

log = logging.getLogger(__name__)

#: A listing stops gathering once no process answered for this long; it gathers this long at most.
LIST_STALL_SECONDS = 0.25
LIST_WAIT_SECONDS = 2.0
#: Forwarded requests an owner handles at once; a tasks/result turn holds its worker for a turn.
ASKS_AT_ONCE = 256
LISTS_AT_ONCE = 16
#: One token each: the edge may use `<prefix>.edges.*.*` only.
_TASKS, _LIST = "task", "tasklist"
#: A task id: `task_`, the owner's instance id (`secrets.token_hex(8)`), and 128 random bits.
_TASK_ID = re.compile(r"task_([0-9a-f]{16})_[0-9a-f]{32}")


class TaskQuestion(BaseModel):
    """A tasks/* request for one task, as the process it came to hands it to the task's owner."""

    method: str = Field(description="tasks/get, tasks/result, tasks/cancel or tasks/update.")
    params: dict[str, Any] = Field(description="The method's params, as the client sent them (without `_meta`).")
    tenant_id: str = Field(description="The caller's tenant.")
    caller_key: str = Field(description="The digest of the caller's Authorization header (`cancellation.caller`).")
    modern: bool = Field(description="The request is of protocol 2026-07-28 (the tasks extension).")
    seconds: float = Field(default=0.0, ge=0, description="tasks/result: longest the owner waits in this turn.")


class TaskAnswer(BaseModel):
    """The owner's answer: the JSON-RPC result or error, or (tasks/result) that the task is still running."""

    result: dict[str, Any] | None = None
    error: dict[str, Any] | None = Field(default=None, description="A JSON-RPC error object (code, message, data).")
    pending: bool = Field(default=False, description="tasks/result: the turn ended before the task did.")


class ListQuestion(BaseModel):
    """tasks/list, asked of every process: the caller's newest `limit` tasks of each."""

    tenant_id: str
    caller_key: str
    limit: int = Field(ge=0)


class ListedTask(BaseModel):
    """One task of a listing: when it was made (the order of the listing) and how tasks/list shows it."""

    created: datetime
    task: dict[str, Any]


class OwnTasks(BaseModel):
    """One process's answer to a listing: the caller's newest tasks there and how many it has in all."""

    instance: str
    total: int
    tasks: list[ListedTask]


def owner_of(task_id: str) -> str | None:
    """The instance id a task id names, None when it names none."""
    match = _TASK_ID.fullmatch(task_id)
    return None if match is None else match.group(1)


class TaskPeers:
    """This process's answers for its own tasks to the other edge processes, and its questions about theirs."""

    def __init__(self, rt: Runtime, link: NatsLink) -> None:
        self._rt, self._link = rt, link
        self.instance = link.instance

    def new_task_id(self) -> str:
        """A new task's id, naming this process as its owner."""
        return f"task_{self.instance}_{uuid.uuid4().hex}"

    def answer_with(
        self,
        ask: Callable[[TaskQuestion], Awaitable[TaskAnswer]],
        listing: Callable[[ListQuestion], OwnTasks],
    ) -> None:
        """Answer the other processes' questions about this process's tasks (called before NATS connects: the
        runtime subscribes its request subjects at start)."""

        @answers
        async def answer_task(question: TaskQuestion) -> TaskAnswer:
            return await ask(question)

        @answers
        async def answer_list(question: ListQuestion) -> OwnTasks:
            return listing(question)

        topology = self._rt.topology
        own, everyone = topology.edge_peer(self.instance, _TASKS), topology.edge_peer("all", _LIST)
        self._rt.requests.answer(own, answer_task, queue=own, workers=ASKS_AT_ONCE)
        # Its own queue group: every process gets each listing.
        queue = topology.edge_peer(self.instance, _LIST)
        self._rt.requests.answer(everyone, answer_list, queue=queue, workers=LISTS_AT_ONCE)

    async def ask(self, owner: str, question: TaskQuestion) -> TaskAnswer:
        """The owner's answer, of a tasks/result once the task ended (asked in turns of `WAIT_TURN_SECONDS`);
        `OwnerGone` when no process answers for `owner`."""
        if question.method == "tasks/result":
            question = question.model_copy(update={"seconds": WAIT_TURN_SECONDS})
        while True:  # a turn that ended while the task goes on is asked again; an owner gone meanwhile has no responder
            answer = await self._ask(owner, question)
            if not answer.pending:
                return answer

    def _ask(self, owner: str, question: TaskQuestion) -> Awaitable[TaskAnswer]:
        subject = self._rt.topology.edge_peer(owner, _TASKS)
        wait = question.seconds or None
        return ask_owner(self._rt, self._link, subject, question, TaskAnswer, wait=wait, holds="this task")

    async def gather(self, question: ListQuestion) -> list[OwnTasks]:
        """Every other process's answer to a listing that came within the gathering time.

        `rt.rpc.call` takes the first answer only, so the listing is published with a reply inbox of its
        own, whose subscription takes every answer the other processes' responders send.
        """
        await self._link.ready()
        connection = self._rt.broker.connection
        inbox = connection.new_inbox()  # under the edge user's own inbox prefix: no other user reads it
        subscription = await connection.subscribe(inbox)
        gathered: list[OwnTasks] = []
        loop = asyncio.get_running_loop()
        try:
            await connection.publish(
                self._rt.topology.edge_peer("all", _LIST), question.model_dump_json().encode(), reply=inbox
            )
            deadline = loop.time() + LIST_WAIT_SECONDS
            while (left := deadline - loop.time()) > 0:
                try:
                    message = await subscription.next_msg(timeout=min(left, LIST_STALL_SECONDS))
                except (TimeoutError, NatsTimeoutError):
                    break
                if message.headers and message.headers.get(Header.STATUS) == NO_RESPONDERS_STATUS:
                    continue
                try:
                    answer = answer_from(message.data, OwnTasks)
                except LakegateError as exc:
                    log.warning("an edge process could not list its tasks: %s", exc.message)
                    continue
                if answer.instance != self.instance:  # its own are listed without NATS
                    gathered.append(answer)
        finally:
            await subscription.unsubscribe()
        return gathered
