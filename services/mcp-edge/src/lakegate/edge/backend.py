"""What the tools talk to: the other services over NATS, on behalf of the caller's tenant."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from typing import TypeVar

from lakegate.common.errors import LakegateError, Unavailable
from lakegate.common.service import Runtime
from lakegate.common.subjects import Topology
from lakegate.edge.config import EdgeSettings
from lakegate.edge.failures import Failures
from lakegate.edge.nats_link import NatsLink
from lakegate.edge.tenancy import Tenancy
from nats.errors import NoRespondersError
from pydantic import BaseModel

M = TypeVar("M", bound=BaseModel)


@dataclass(frozen=True)
class Backend:
    """The runtime, the settings and the tenancy every tool body needs."""

    runtime: Runtime
    settings: EdgeSettings
    tenancy: Tenancy
    #: The link to NATS when it is made in the background; a call waits a little for it, then fails.
    link: NatsLink | None = None
    failures: Failures = field(init=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "failures", Failures(self.runtime.topology.prefix))

    @property
    def topology(self) -> Topology:
        return self.runtime.topology

    def tenant(self) -> str:
        """The tenant the current tool call acts for."""
        return self.tenancy.current()

    async def call(
        self, subject: str, request: BaseModel, answer: type[M], *, timeout: float | None = None, cancels: bool = False
    ) -> M:
        """Ask another service; its errors come back with public messages that name no subject.

        With `cancels`, `request` carries a fresh `call_id`, and a tool call cancelled meanwhile (the MCP
        request was cancelled, or its client went away) tells the service to stop the work (`rpc.stoppable`).
        """
        if self.link is not None:
            await self.link.ready()
        cancel_subject = None
        if cancels:
            call_id = f"call_{uuid.uuid4().hex}"
            request = request.model_copy(update={"call_id": call_id})
            cancel_subject = self.topology.call_cancel(call_id)
        try:
            return await self.runtime.rpc.call(subject, request, answer, timeout=timeout, cancel_subject=cancel_subject)
        except Unavailable as exc:
            if isinstance(exc.__cause__, NoRespondersError):
                service = subject.split(".rpc.", 1)[-1].split(".", 1)[0]
                raise Unavailable(
                    f"the {service} service is not running, so lakegate cannot do this now: start it "
                    "(`make up` starts the whole stack), then retry"
                ) from exc
            raise type(exc)(self.failures.public(exc.message)) from exc
        except LakegateError as exc:
            raise type(exc)(self.failures.public(exc.message)) from exc
