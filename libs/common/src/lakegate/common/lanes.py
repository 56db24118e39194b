"""Fair concurrency for request handlers: every tenant (and every source) waits in a lane of its own.

A service answers many requests at once (its subscribers run `request_workers` handlers
concurrently per subject), and each request first enters its lanes:

    request ──▶ tenant lane (≤ per_lane running, ≤ waiting queued) ──▶ source lane ──▶ shared slots ──▶ work
                 └── lane full: Unavailable at once, naming the limit and its setting

So a tenant whose queries are slow, or whose source never answers, fills only its own lane: another
tenant's request finds its own lane empty and runs beside them. A lane that is full refuses at once
instead of queueing without bound, so one caller cannot hold every worker of a service. `shared`
bounds what the whole process does at once (e.g. DuckDB queries, which each may use their memory
limit), in arrival order, and a tenant holds at most `per_lane` of those slots.

Lanes are in-process and per replica: replicas multiply the capacity, not a tenant's share of one.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

from lakegate.common.errors import Unavailable
from lakegate.common.settings import ServiceSettings


@dataclass
class _Lane:
    slots: asyncio.Semaphore
    users: int = 0  # running + waiting


@dataclass
class Lanes:
    """Keyed lanes of `per_lane` concurrent holders and `waiting` queued ones each."""

    what: str  # "tenant", "source": how messages name a key
    per_lane: int
    waiting: int
    setting: str  # the setting that raises the limit, for the message
    _lanes: dict[str, _Lane] = field(default_factory=dict)

    @contextlib.asynccontextmanager
    async def enter(self, key: str) -> AsyncIterator[None]:
        """Hold a place in `key`'s lane for the block; refuse at once when the lane is full."""
        lane = self._lanes.get(key)
        if lane is None:
            lane = self._lanes[key] = _Lane(asyncio.Semaphore(self.per_lane))
        if lane.users >= self.per_lane + self.waiting:
            raise Unavailable(
                f"{self.what} {key} already has {self.per_lane} requests running and {self.waiting} waiting "
                f"on this service (limit {self.setting}); wait for some to finish, then retry"
            )
        lane.users += 1
        try:
            async with lane.slots:
                yield
        finally:
            lane.users -= 1
            if lane.users == 0:
                del self._lanes[key]

    def busy(self, key: str) -> int:
        """Requests running or waiting in `key`'s lane."""
        lane = self._lanes.get(key)
        return lane.users if lane else 0


@dataclass
class RequestLanes:
    """A service's lanes: per tenant, per source, and optionally slots shared by the whole process."""

    tenants: Lanes
    sources: Lanes
    shared: asyncio.Semaphore | None = None

    @classmethod
    def from_settings(cls, settings: ServiceSettings, *, shared: int | None = None) -> RequestLanes:
        """Lanes sized by the service's settings (whose env prefix the messages name)."""
        prefix = str(settings.model_config.get("env_prefix", "LAKEGATE_"))
        return cls(
            tenants=Lanes("tenant", settings.lane_per_tenant, settings.lane_waiting, f"{prefix}LANE_PER_TENANT"),
            sources=Lanes("source", settings.lane_per_source, settings.lane_waiting, f"{prefix}LANE_PER_SOURCE"),
            shared=asyncio.Semaphore(shared) if shared else None,
        )

    @contextlib.asynccontextmanager
    async def enter(self, tenant_id: str, source: str | None = None) -> AsyncIterator[None]:
        """Wait in the tenant's lane, then the source's (if any), then for a shared slot (if any)."""
        async with contextlib.AsyncExitStack() as stack:
            await stack.enter_async_context(self.tenants.enter(tenant_id))
            if source is not None:
                await stack.enter_async_context(self.sources.enter(source))
            if self.shared is not None:
                await stack.enter_async_context(self.shared)
            yield
