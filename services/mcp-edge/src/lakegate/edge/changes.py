"""`list_changed` notifications that are true: sent after every tool call that changes the resource list.

A call of a tool in `CHANGES_RESOURCES` that succeeded (a source connected, a table synced,
uploaded or built, a schedule made or deleted) publishes `ResourcesListChanged` on the server's
subscription bus, which every 2026-07-28 `subscriptions/listen` stream that asked for it receives;
in the handshake era it is also sent on the call's own session (over stdio: the client's one
connection). The event carries no data, so a listener learns only that something changed and
re-reads its own `resources/list`. Tools and prompts never change at run time.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from lakegate.edge.audit import call_failed
from mcp.server.context import CallNext, HandlerResult, ServerRequestContext
from mcp.server.subscriptions import ResourcesListChanged, SubscriptionBus
from mcp_types.version import MODERN_PROTOCOL_VERSIONS

log = logging.getLogger(__name__)

#: Tools whose success adds, removes or replaces a resource of `resources/list`.
CHANGES_RESOURCES = frozenset(
    {
        "connect_postgres",
        "sync_table_to_bronze",
        "schedule_sync",
        "delete_schedule",
        "upload_file",
        "transform_to_silver",
        "create_gold_view",
    }
)


@dataclass(frozen=True)
class ResourceChanges:
    """Server middleware: announces a changed resource list after a tool call that changed it."""

    bus: SubscriptionBus

    async def __call__(self, ctx: ServerRequestContext[Any, Any], call_next: CallNext) -> HandlerResult:
        result = await call_next(ctx)
        if ctx.method != "tools/call" or (ctx.params or {}).get("name") not in CHANGES_RESOURCES:
            return result
        if call_failed(result) is False:  # None: a round that asks the client for input changed nothing yet
            await self.bus.publish(ResourcesListChanged())
            if ctx.protocol_version not in MODERN_PROTOCOL_VERSIONS:
                try:
                    await ctx.session.send_resource_list_changed()
                except Exception as exc:  # a session without a channel for it (stateless HTTP)
                    log.debug("resources/list_changed not sent on the session: %r", exc)
        return result
