"""A posted `notifications/cancelled` reaches the call it names, also on stateless HTTP.

Stateless streamable HTTP serves every POST with its own transport, so the SDK routes a cancel
to no request: the call it names lives in another POST. The edge process holds every call, so
`CancelRouting`, server middleware, keeps the cancel scope of each running `tools/call` under the
caller and the JSON-RPC request id, and a `notifications/cancelled` of the same caller cancels
that scope. The caller is the tenant plus a digest of the `Authorization` header, so one caller
cannot cancel another's call by guessing its request id (anonymous loopback callers share one
tenant and one key). The cancelled tool stops its own work: `sync_table_to_bronze` cancels its run.
Over stdio and in the 2026-07-28 era (a client cancels by closing the response stream) the SDK
cancels the call itself; the routing is then a second, harmless cancel of the same scope.
"""

from __future__ import annotations

import hashlib
from typing import Any

import anyio
from anyio._backends._asyncio import CancelScope as AsyncioCancelScope
from lakegate.edge.tenancy import Tenancy
from mcp.server.context import CallNext, HandlerResult, ServerRequestContext
from mcp.shared.exceptions import MCPError

#: JSON-RPC code of a request that was cancelled (what the SDK's HTTP transport answers, too).
REQUEST_CANCELLED = -32800

_Key = tuple[str, str, str]


class CancelRouting:
    """Server middleware: cancels the running call a `notifications/cancelled` of the same caller names."""

    def __init__(self, tenancy: Tenancy) -> None:
        self._tenancy = tenancy
        self._calls: dict[_Key, anyio.CancelScope] = {}

    async def __call__(self, ctx: ServerRequestContext[Any, Any], call_next: CallNext) -> HandlerResult:
        if ctx.method == "notifications/cancelled":
            request_id = (ctx.params or {}).get("requestId")
            if request_id is not None and (scope := self._calls.get(self._key(ctx, request_id))) is not None:
                scope.cancel()
            return await call_next(ctx)
        if ctx.method != "tools/call" or ctx.request_id is None:
            return await call_next(ctx)
        key = self._key(ctx, ctx.request_id)
        # anyio's own class for asyncio, which the edge always runs on: `anyio.CancelScope()` looks the
        # event loop's library up (sniffio, then the backend) on every call first.
        with AsyncioCancelScope() as scope:
            self._calls[key] = scope
            try:
                return await call_next(ctx)
            finally:
                if self._calls.get(key) is scope:
                    del self._calls[key]
        raise MCPError(code=REQUEST_CANCELLED, message="the request was cancelled by the client")

    def _key(self, ctx: ServerRequestContext[Any, Any], request_id: object) -> _Key:
        return (*caller(self._tenancy, ctx), str(request_id))


def caller(tenancy: Tenancy, ctx: ServerRequestContext[Any, Any]) -> tuple[str, str]:
    """Who sent a request: its tenant and a digest of its `Authorization` header (never the header itself)."""
    headers = getattr(ctx.request, "headers", None)
    authorization = headers.get("authorization", "") if headers is not None else ""
    return tenancy.known() or "", hashlib.sha256(authorization.encode()).hexdigest()[:32]
