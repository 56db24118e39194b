"""How a failure reaches the model: a tool error it can read and act on, naming nothing internal.

    LakegateError (from any service, over RPC)  →  ToolError with the same message
    a sync run that ended `failed`              →  a LakegateError naming the run, the cause and the fix
    a resource that cannot be read              →  ResourceError (ResourceNotFoundError) with the same message
    a prompt that cannot be filled              →  MCPError (invalid params, or internal if transient)
    arguments that do not fit the input schema  →  ToolError naming each argument and what it must be

Anything else is a crash: the SDK answers `Error executing tool <name>` and logs the traceback, so
no internal detail reaches the client. Every text that leaves goes through `Failures.public`, which
replaces NATS subject names (they say how lakegate is wired, which no caller needs) with the
service they belong to.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import ParamSpec, TypeVar

from lakegate.common.contracts.runs import RunView
from lakegate.common.errors import LakegateError, error_from_code
from lakegate.edge.audit import note_error_code
from mcp.server.mcpserver.exceptions import ResourceError, ResourceNotFoundError, ToolError
from mcp.shared.exceptions import MCPError
from mcp_types import INTERNAL_ERROR, INVALID_PARAMS
from pydantic import ValidationError

P = ParamSpec("P")
R = TypeVar("R")

#: Kinds of subject under a prefix, and how a message names them instead.
_SUBJECT_KINDS = {
    "rpc": "a lakegate service",
    "cmd": "a lakegate work queue",
    "run": "a run's step log",
    "stage": "the staging stream",
    "progress": "a run's progress",
    "cancel": "a run's cancellation",
    "events": "the event stream",
}
#: Suffixes of the JetStream stream names under a prefix (`<PREFIX>_CMD`, ...).
_STREAMS = ("CMD", "RUN", "STAGE", "EVENTS")


@dataclass(frozen=True)
class Failures:
    """Turns errors into tool errors, and keeps internal names out of every message."""

    prefix: str
    _subjects: re.Pattern[str] = field(init=False, repr=False, compare=False)
    _streams: re.Pattern[str] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        kinds, streams = "|".join(_SUBJECT_KINDS), "|".join(_STREAMS)
        subjects = rf"\b{re.escape(self.prefix)}\.({kinds})\.([A-Za-z0-9_$*>-]+)(?:\.[A-Za-z0-9_$*>-]+)*"
        object.__setattr__(self, "_subjects", re.compile(subjects))
        object.__setattr__(self, "_streams", re.compile(rf"\b{re.escape(self.prefix.upper())}_({streams})\b"))

    def public(self, text: str) -> str:
        """`text` with NATS subject and stream names replaced by what they stand for."""
        return self._streams.sub("a lakegate stream", self._subjects.sub(_plain_name, text))

    def public_run(self, run: RunView) -> RunView:
        """`run` with a public error message."""
        if run.error is None:
            return run
        return run.model_copy(
            update={"error": run.error.model_copy(update={"message": self.public(run.error.message)})}
        )

    def tool_errors(self, fn: Callable[P, Awaitable[R]]) -> Callable[P, Awaitable[R]]:
        """Report every `LakegateError` the tool meets as a tool error with its (public) message."""

        @functools.wraps(fn)
        async def tool(*args: P.args, **kwargs: P.kwargs) -> R:
            try:
                return await fn(*args, **kwargs)
            except LakegateError as exc:
                note_error_code(exc.code)
                suffix = " (this is temporary: retry shortly)" if exc.transient and "retry" not in exc.message else ""
                raise ToolError(f"{self.public(exc.message)}{suffix}") from exc
            except ToolError:
                note_error_code("invalid_input")
                raise
            except Exception:
                note_error_code("internal")
                raise

        return tool

    def resource_errors(self, fn: Callable[P, Awaitable[R]]) -> Callable[P, Awaitable[R]]:
        """Report a `LakegateError` met while reading a resource as a resource error the client can read."""

        @functools.wraps(fn)
        async def resource(*args: P.args, **kwargs: P.kwargs) -> R:
            try:
                return await fn(*args, **kwargs)
            except LakegateError as exc:
                error = ResourceNotFoundError if exc.code == "not_found" else ResourceError
                raise error(self.public(exc.message)) from exc

        return resource

    def prompt_errors(self, fn: Callable[P, Awaitable[R]]) -> Callable[P, Awaitable[R]]:
        """Report a `LakegateError` met while filling a prompt with its public message."""

        @functools.wraps(fn)
        async def prompt(*args: P.args, **kwargs: P.kwargs) -> R:
            try:
                return await fn(*args, **kwargs)
            except LakegateError as exc:
                # The SDK hides any other exception's text behind "Error rendering prompt"; an MCPError passes.
                code = INTERNAL_ERROR if exc.transient else INVALID_PARAMS
                raise MCPError(code=code, message=self.public(exc.message)) from exc

        return prompt

    def run_failure(self, run: RunView) -> LakegateError:
        """The error of a run that ended `failed`, with its own code."""
        reason = (
            f"{self.public(run.error.message).rstrip('. ')} [{run.error.code}]"
            if run.error
            else "no reason was recorded; the catalog, extractor and loader logs have the details"
        )
        return error_from_code(
            run.error.code if run.error else "internal",
            f"sync run {run.run_id} of {run.source_table} into {run.target} failed: {reason}. "
            f"{run.target} is as it was before the run; fix the cause, then call sync_table_to_bronze again.",
            transient=False,
        )


def _plain_name(match: re.Match[str]) -> str:
    kind, first = match.group(1), match.group(2)
    return f"the {first} service" if kind == "rpc" else _SUBJECT_KINDS[kind]


def unknown_tool(name: str) -> MCPError:
    """Calling a tool that does not exist: invalid params (-32602), a protocol error as the spec's tools page says."""
    return MCPError(
        code=INVALID_PARAMS, message=f"unknown tool {name!r}; tools/list shows the tools there are", data={"name": name}
    )


def argument_problems(tool: str, exc: ValidationError) -> str:
    """What is wrong with a call's arguments, per argument, without the values (one may be a password)."""
    problems = []
    for error in exc.errors(include_url=False, include_input=False, include_context=False):
        where = ".".join(str(part) for part in error["loc"]) or "arguments"
        problems.append(f"`{where}`: {error['msg'][:1].lower()}{error['msg'][1:]}")
    return (
        f"the arguments of {tool} do not fit its input schema: {'; '.join(problems)}. "
        "Fix them and call again; tools/list shows each argument's type and limits."
    )


@contextmanager
def arguments_named(tool: str) -> Iterator[None]:
    """Re-raises the `ToolError` of arguments that do not fit the schema as one naming each (`argument_problems`)."""
    try:
        yield
    except ToolError as exc:
        if isinstance(exc.__cause__, ValidationError):
            raise ToolError(argument_problems(tool, exc.__cause__)) from exc.__cause__
        raise
