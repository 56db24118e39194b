"""What the tools talk to: the other services over NATS, on behalf of the caller's tenant."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from typing import TypeVar

from lakegate.common.errors import InvalidInput, LakegateError, Unavailable, Unsupported
from lakegate.common.sealing import Sealer
from lakegate.common.service import Runtime
from lakegate.common.subjects import Topology
from lakegate.edge.config import EdgeSettings
from lakegate.edge.failures import Failures
from lakegate.edge.nats_link import NatsLink
from lakegate.edge.password_pages import PasswordPages
from lakegate.edge.task_peers import TaskPeers
from lakegate.edge.tenancy import Tenancy
from nats.errors import NoRespondersError
from pydantic import BaseModel

M = TypeVar("M", bound=BaseModel)


def sealer_from_settings(settings: EdgeSettings) -> Sealer | None:
    """What seals passwords for the extractor, from the public key or its file; None when neither is set."""
    if settings.seal_public_key is not None:
        return Sealer(settings.seal_public_key, origin="LAKEGATE_EDGE_SEAL_PUBLIC_KEY")
    if settings.seal_public_key_file is None:
        return None
    origin = f"the key file {settings.seal_public_key_file} (LAKEGATE_EDGE_SEAL_PUBLIC_KEY_FILE)"
    try:
        text = settings.seal_public_key_file.read_text()
    except OSError as exc:
        raise InvalidInput(f"cannot read {origin}: {exc.strerror}; check the path and its permissions") from None
    return Sealer(text, origin=origin)


@dataclass(frozen=True)
class Backend:
    """The runtime, the settings and the tenancy every tool body needs."""

    runtime: Runtime
    settings: EdgeSettings
    tenancy: Tenancy
    #: The link to NATS when it is made in the background; a call waits a little for it, then fails.
    link: NatsLink | None = None
    #: The one-time password pages connect_postgres offers; None on stdio, which serves no pages.
    password_pages: PasswordPages | None = None
    #: The other edge processes, which may get requests for this process's MCP tasks; None on stdio.
    task_peers: TaskPeers | None = None
    failures: Failures = field(init=False)
    _sealer: Sealer | None = field(init=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "failures", Failures(self.runtime.topology.prefix))
        object.__setattr__(self, "_sealer", sealer_from_settings(self.settings))

    @property
    def topology(self) -> Topology:
        return self.runtime.topology

    def sealer(self) -> Sealer:
        """What seals source passwords for the extractor; refused with the fix when no key is configured."""
        if self._sealer is None:
            raise Unsupported(
                "this edge cannot take source passwords: it has no key to seal them for the extractor. Set "
                "LAKEGATE_EDGE_SEAL_PUBLIC_KEY to the extractor's sealing public key (`make up` does), or pass "
                "password_ref instead of password"
            )
        return self._sealer

    def tenant(self) -> str:
        """The tenant the current tool call acts for."""
        return self.tenancy.current()

    async def call(
        self, subject: str, request: BaseModel, answer: type[M], *, timeout: float | None = None, cancels: bool = False
    ) -> M:
        """Ask another service; its errors come back with public messages that name no subject.

        With `cancels`, `request` carries a fresh `call_id`, and a tool call cancelled meanwhile (the MCP
        request was cancelled, or its client went away) tells the service to stop the work (`CallStops.stoppable`).
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
