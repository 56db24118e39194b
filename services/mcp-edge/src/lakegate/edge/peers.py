"""Asking the edge process that holds something for a client (a password page, an MCP task) over NATS.

Each process has an instance id (`NatsLink.instance`) and answers for what it holds on subjects that
name it; any other process of the edge, or replica, that gets a request about it asks that one. A
long wait is asked in turns of `WAIT_TURN_SECONDS`, so an owner killed meanwhile is noticed within a
turn instead of at the end of the wait.
"""

from __future__ import annotations

from typing import TypeVar

from lakegate.common.errors import Unavailable
from lakegate.common.service import Runtime
from lakegate.edge.nats_link import NatsLink
from nats.errors import NoRespondersError
from pydantic import BaseModel

#: Longest one wait for another process's page or task lasts before it is asked again.
WAIT_TURN_SECONDS = 10.0
#: How much longer than the wait it asks for an asker gives the owner's answer to come.
ANSWER_MARGIN_SECONDS = 5.0

_A = TypeVar("_A", bound=BaseModel)


class OwnerGone(Exception):
    """No edge process answers for the owner: it has stopped, and what it held is gone with it."""


async def ask_owner(
    rt: Runtime, link: NatsLink, subject: str, request: BaseModel, answer: type[_A], *, wait: float | None, holds: str
) -> _A:
    """The owner's answer on `subject` to a request that waits up to `wait` seconds there (None: the
    requests' own timeout).

    `OwnerGone` when no process answers on `subject`; an owner that does not answer in time is a
    transient error naming what it `holds` ("this password page"); its own error is raised as it is.
    """
    await link.ready()
    try:
        timeout = None if wait is None else wait + ANSWER_MARGIN_SECONDS
        return await rt.rpc.call(subject, request, answer, timeout=timeout)
    except Unavailable as exc:
        if isinstance(exc.__cause__, NoRespondersError):
            raise OwnerGone from None
        if isinstance(exc.__cause__, TimeoutError):  # nats-py's is one too
            raise Unavailable(f"the edge process that holds {holds} did not answer in time; retry shortly") from exc
        raise
