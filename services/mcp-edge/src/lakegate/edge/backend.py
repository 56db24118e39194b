"""What the tools talk to: the other services over NATS, on behalf of the caller's tenant."""

from __future__ import annotations

from dataclasses import dataclass

from lakegate.common.rpc import RpcClient
from lakegate.common.service import Runtime
from lakegate.common.subjects import Topology
from lakegate.edge.config import EdgeSettings
from lakegate.edge.tenancy import Tenancy


@dataclass(frozen=True)
class Backend:
    """The runtime, the settings and the tenancy every tool body needs."""

    runtime: Runtime
    settings: EdgeSettings
    tenancy: Tenancy

    @property
    def rpc(self) -> RpcClient:
        return self.runtime.rpc

    @property
    def topology(self) -> Topology:
        return self.runtime.topology

    def tenant(self) -> str:
        """The tenant the current tool call acts for."""
        return self.tenancy.current()
