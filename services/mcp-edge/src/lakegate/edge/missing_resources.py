"""A resource that does not exist is -32002 in the handshake era, as 2024-11-05 to 2025-11-25 name it.

The SDK answers every missing resource with -32602 (invalid params), which is what 2026-07-28
names (it retired -32002). `MissingResources`, server middleware, gives a `resources/read` of a
handshake-era request the older code, with the same message and `data.uri`.
"""

from __future__ import annotations

from typing import Any

from mcp.server.context import CallNext, HandlerResult, ServerRequestContext
from mcp.shared.exceptions import MCPError
from mcp_types import INVALID_PARAMS
from mcp_types.version import MODERN_PROTOCOL_VERSIONS

#: "Resource not found" of the 2024-11-05 … 2025-11-25 protocol versions.
RESOURCE_NOT_FOUND = -32002


class MissingResources:
    """Server middleware: -32002 for a missing resource of a handshake-era `resources/read`."""

    async def __call__(self, ctx: ServerRequestContext[Any, Any], call_next: CallNext) -> HandlerResult:
        if ctx.method != "resources/read" or ctx.protocol_version in MODERN_PROTOCOL_VERSIONS:
            return await call_next(ctx)
        try:
            return await call_next(ctx)
        except MCPError as exc:
            data = exc.error.data
            if exc.error.code == INVALID_PARAMS and isinstance(data, dict) and "uri" in data:
                raise MCPError(code=RESOURCE_NOT_FOUND, message=exc.error.message, data=data) from exc
            raise
