"""How a failure reaches the model: a tool error it can read and act on.

    LakegateError (from any service, over RPC)  →  ToolError with the same message
    a sync run that ended `failed`              →  ToolError naming the run, the cause and the fix

Anything else is a crash: the SDK answers `Error executing tool <name>` and logs the traceback, so
no internal detail reaches the client.
"""

from __future__ import annotations

import functools
from collections.abc import Awaitable, Callable
from typing import ParamSpec, TypeVar

from lakegate.common.contracts.runs import RunView
from lakegate.common.errors import LakegateError
from mcp.server.mcpserver.exceptions import ToolError

P = ParamSpec("P")
R = TypeVar("R")


def tool_errors(fn: Callable[P, Awaitable[R]]) -> Callable[P, Awaitable[R]]:
    """Report every `LakegateError` the tool meets as a tool error with its message."""

    @functools.wraps(fn)
    async def tool(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return await fn(*args, **kwargs)
        except LakegateError as exc:
            suffix = " (this is temporary: retry shortly)" if exc.transient and "retry" not in exc.message else ""
            raise ToolError(f"{exc.message}{suffix}") from exc

    return tool


def run_failure(run: RunView) -> ToolError:
    """The tool error for a run that ended `failed`."""
    reason = (
        f"{run.error.message.rstrip('. ')} [{run.error.code}]"
        if run.error
        else "no reason was recorded; the catalog, extractor and loader logs have the details"
    )
    return ToolError(
        f"sync run {run.run_id} of {run.source_table} into {run.target} failed: {reason}. "
        f"{run.target} is as it was before the run; fix the cause, then call sync_table_to_bronze again."
    )
