"""An exception no handler maps answers -32603 (internal error), never JSON-RPC code 0.

The SDK's JSON-RPC dispatcher (stdio, and HTTP requests answered as SSE) answers an exception
that is neither an `MCPError` nor a pydantic `ValidationError` with code `0` and the exception's
own text, which is no JSON-RPC code and can carry library internals (a NATS subject, a SQL
fragment, a Python repr). `InternalErrors`, the outermost server middleware, turns such an
exception into `MCPError(-32603)` with a message naming only the method, and logs the traceback,
so every transport and era answers the same spec code. A `LakegateError` that reaches it (from a
handler other than a tool's, e.g. a resource listing while NATS is down) is meant for the caller:
its message (with NATS names made public) is kept, as -32602 when the caller's input is at fault
(`InvalidInput`, `NotFound`) and -32603 otherwise, with lakegate's error code as `data.code`.
The JSON exchange path (`exchange`) answers -32603 for anything raised outside the middleware chain.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from lakegate.common.errors import InvalidInput, LakegateError, NotFound
from mcp.server.context import CallNext, HandlerResult, ServerRequestContext
from mcp.shared.exceptions import MCPError
from mcp_types import INTERNAL_ERROR, INVALID_PARAMS
from pydantic import ValidationError

log = logging.getLogger(__name__)


def internal_error(method: str) -> MCPError:
    """The error a caller gets for a failure of the edge itself: the method, and where the details are."""
    return MCPError(
        code=INTERNAL_ERROR,
        message=f"the edge failed to answer {method}: an internal error (its log has the details); "
        "try again, and report it if it persists",
    )


class InternalErrors:
    """Server middleware: unmapped exceptions become -32603 with a message free of library internals."""

    def __init__(self, public: Callable[[str], str]) -> None:
        self._public = public

    async def __call__(self, ctx: ServerRequestContext[Any, Any], call_next: CallNext) -> HandlerResult:
        try:
            return await call_next(ctx)
        except (MCPError, ValidationError):
            raise  # the SDK maps these itself (the error's own code; -32602 without pydantic text)
        except LakegateError as exc:
            code = INVALID_PARAMS if isinstance(exc, InvalidInput | NotFound) else INTERNAL_ERROR
            raise MCPError(code=code, message=self._public(exc.message), data={"code": exc.code}) from exc
        except Exception as exc:
            log.exception("handler for %r raised", ctx.method)
            raise internal_error(ctx.method) from exc
