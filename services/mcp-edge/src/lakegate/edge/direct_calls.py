"""Direct tool calls: a JSON exchange's `tools/call` served without the SDK's runner and tool manager.

For a `tools/call` the SDK builds, per request, a runner, a connection and a session, composes the
middleware chain, validates the params twice (surface and typed), wraps the tool in a `Context`,
looks it up in the tool manager, validates the arguments, converts the result into a
`CallToolResult`, dumps it and validates the dump again against the protocol version's shape.
`DirectCalls` does the same work with what can be built once: the chain is composed at start,
each tool's result serialization is precompiled (`DirectTool`), the
connection of each protocol version is shared (born ready, nothing registers on it: no direct tool
takes a `Context`), and the result is written as the wire dict at once.

The same middleware objects run, in the same order, with a real `ServerRequestContext`: the
internal-error mapping, the SDK's span, audit, scopes, rate limits, cancel routing, metrics, and
any other the server has, but for four that provably do nothing for such a request
(`IDLE_FOR_DIRECT_CALLS`); the SDK's `OpenTelemetryMiddleware` is replaced by `_traced`, which opens
the same span without its four context managers (`tests/test_direct_calls.py` compares the two
spans). What runs inside them mirrors `ServerRunner._inner`, `MCPServer._handle_call_tool`,
`LakegateServer.call_tool`, `Tool.run` and `FuncMetadata.convert_result`, error for error: invalid
arguments are an `isError` result naming each argument (`failures.arguments_named`), a tool's
`ToolError` is `Error executing tool <name>: <message>`, a crash is `Error executing tool <name>`
with the traceback logged, an `MCPError` is the protocol error it carries.

A request is served directly only when it is plain: a handshake-era protocol version, a known
tool, `arguments` an object (or absent), no keys in `params` beyond `name`, `arguments` and
`_meta` (so no `task`, no `requestState`), and a tool that takes no `Context`, uses no
resolvers, is async, has structured output and does not change the resource list
(`changes.CHANGES_RESOURCES`: those send a notification on the session). Everything else, and
every request when `LAKEGATE_EDGE_DIRECT_TOOL_CALLS=false`, is served by `serve_one` as before.
`tests/test_direct_calls.py` answers a corpus both ways and compares the answers.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from functools import partial
from typing import Any

import pydantic_core
from lakegate.edge.changes import CHANGES_RESOURCES, ResourceChanges
from lakegate.edge.failures import arguments_named
from lakegate.edge.missing_resources import MissingResources
from lakegate.edge.task_calls import TaskCalls
from mcp.server._otel import OpenTelemetryMiddleware
from mcp.server.connection import Connection
from mcp.server.context import CallNext, HandlerResult, ServerMiddleware, ServerRequestContext
from mcp.server.mcpserver.exceptions import ResourceError, ToolError, UnexpectedResourceError, UnexpectedToolError
from mcp.server.mcpserver.tools.base import Tool
from mcp.server.mcpserver.utilities.func_metadata import FuncMetadata
from mcp.server.request_state import RequestStateBoundary
from mcp.server.session import ServerSession
from mcp.shared._otel import _tracer as sdk_tracer
from mcp.shared._otel import extract_trace_context
from mcp.shared.dispatcher import DispatchContext
from mcp.shared.exceptions import MCPError
from mcp.shared.transport_context import TransportContext
from mcp_types import INTERNAL_ERROR, INVALID_PARAMS, CallToolResult, RequestParams
from mcp_types import methods as _methods
from mcp_types.version import MODERN_PROTOCOL_VERSIONS
from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.trace import SpanKind, StatusCode
from pydantic import BaseModel, TypeAdapter, ValidationError

#: The SDK's logger for tool failures (`MCPServer._handle_call_tool`), so log lines stay where they were.
sdk_log = logging.getLogger("mcp.server.mcpserver.server")
sdk_runner_log = logging.getLogger("mcp.server.runner")
#: Middleware that does nothing for a direct request, so the direct chain leaves it out: request state acts
#: only on a `requestState` or an `input_required` result, task calls only on a `task` (or in 2026-07-28),
#: missing resources only on `resources/read`, resource changes only after a tool of `CHANGES_RESOURCES`.
IDLE_FOR_DIRECT_CALLS = (RequestStateBoundary, TaskCalls, MissingResources, ResourceChanges)
_PLAIN_KEYS = frozenset({"name", "arguments"})
_PLAIN_RESULT_KEYS = frozenset({"content", "structuredContent", "isError"})
_TEXT_KEYS = frozenset({"type", "text"})
_DIRECT_KEYS = frozenset({"name", "arguments", "_meta"})


class DirectTool:
    """One tool's call, precompiled: its function and its result serializer."""

    def __init__(self, tool: Tool) -> None:
        metadata: FuncMetadata = tool.fn_metadata
        self.name = tool.name
        self._fn: Callable[..., Awaitable[Any]] = tool.fn
        self._metadata = metadata
        # `fits` admits only tools with an unwrapped structured output model.
        self._adapter: TypeAdapter[Any] = metadata._output_adapter(metadata.output_model)

    @staticmethod
    def fits(tool: Tool) -> bool:
        """Whether `tool` can be called directly (see the module docstring)."""
        metadata = tool.fn_metadata
        return (
            tool.context_kwarg is None
            and not tool.resolved_params
            and tool.is_async
            and metadata.output_schema is not None
            and metadata.output_model is not None
            and not metadata.wrap_output
            and tool.name not in CHANGES_RESOURCES
        )

    async def run(self, arguments: dict[str, Any], version: str) -> dict[str, Any]:
        """`Tool.run` with `convert_result`, then the result's wire dict; raises what `Tool.run` raises."""
        try:
            kwargs = self._metadata.validate_arguments(arguments)
        except ValidationError as exc:
            raise ToolError(f"Error executing tool {self.name}: {exc}") from exc
        except MCPError:
            raise
        except Exception as exc:
            raise UnexpectedToolError(f"Error executing tool {self.name}") from exc
        try:
            result = await self._fn(**kwargs)
            if isinstance(result, CallToolResult) or not isinstance(result, BaseModel):
                converted = self._metadata.convert_result(result)
            else:
                return self._structured(result)
        except MCPError:
            raise
        except (UnexpectedToolError, UnexpectedResourceError) as exc:
            raise UnexpectedToolError(f"Error executing tool {self.name}: {exc}") from exc
        except (ToolError, ResourceError) as exc:
            raise ToolError(f"Error executing tool {self.name}: {exc}") from exc
        except Exception as exc:
            raise UnexpectedToolError(f"Error executing tool {self.name}") from exc
        return _wire(converted, version)

    def _structured(self, result: BaseModel) -> dict[str, Any]:
        """`convert_result` of a model and the runner's dump of it at once: the text and the structured content."""
        validated = self._adapter.validate_python(result, by_alias=True, by_name=True)
        if not isinstance(validated, BaseModel):
            structured = self._adapter.dump_python(validated, mode="json", by_alias=True)
        else:
            structured = validated.model_dump(mode="json", by_alias=True)
        text = pydantic_core.to_json(result, fallback=str, indent=2).decode()
        return {"content": [{"text": text, "type": "text"}], "isError": False, "structuredContent": structured}


def _wire(result: Any, version: str) -> dict[str, Any]:
    """What the SDK's runner makes of a converted result (`_dump_result`, then the version's sieve).

    A result of text blocks, structured content and the error flag only is what the sieve would give back
    unchanged, so it is not validated again.
    """
    dumped: dict[str, Any] = result.model_dump(by_alias=True, mode="json", exclude_none=True)
    plain = dumped.keys() <= _PLAIN_RESULT_KEYS and all(
        isinstance(block, dict) and block.keys() == _TEXT_KEYS and block["type"] == "text"
        for block in dumped.get("content", ())
    )
    if plain:
        return dumped
    try:
        sieved: dict[str, Any] = _methods.serialize_server_result("tools/call", version, dumped)
    except ValidationError:
        sdk_runner_log.exception("handler for %r returned an invalid result", "tools/call")
        raise MCPError(code=INTERNAL_ERROR, message="Handler returned an invalid result") from None
    return sieved


def _failed(text: str) -> dict[str, Any]:
    """The wire dict of `CallToolResult(content=[TextContent(text)], is_error=True)`."""
    return {"content": [{"text": text, "type": "text"}], "isError": True}


@dataclass(frozen=True)
class DirectRequest:
    """A `tools/call` that `DirectCalls` serves: its tool and its raw params."""

    tool: DirectTool
    params: dict[str, Any]


class DirectCalls:
    """Serves plain `tools/call` requests through the server's middleware and precompiled tools."""

    def __init__(
        self,
        tools: Mapping[str, Tool],
        middleware: list[ServerMiddleware[Any]],
    ) -> None:
        self._tools = {name: DirectTool(tool) for name, tool in tools.items() if DirectTool.fits(tool)}
        call: CallNext = self._inner
        for layer in reversed(middleware):
            if isinstance(layer, OpenTelemetryMiddleware):
                call = partial(_traced, call)  # the same span, without four context managers around it
            elif not isinstance(layer, IDLE_FOR_DIRECT_CALLS):
                call = partial(_apply, layer, call)
        self._chain = call
        self._connections: dict[str, Connection] = {}

    @property
    def tools(self) -> frozenset[str]:
        """The tools served directly."""
        return frozenset(self._tools)

    def accepts(self, method: str, params: Any, version: str) -> DirectRequest | None:
        """The direct request for a JSON-RPC `method` and `params` in protocol `version`, or None (the SDK's)."""
        if method != "tools/call" or not isinstance(params, dict) or not params.keys() <= _DIRECT_KEYS:
            return None
        if version in MODERN_PROTOCOL_VERSIONS:  # tasks, subscriptions and the result stamp differ there
            return None
        name, arguments = params.get("name"), params.get("arguments")
        tool = self._tools.get(name) if isinstance(name, str) else None
        if tool is None or (arguments is not None and not isinstance(arguments, dict)):
            return None
        return DirectRequest(tool, params)

    async def serve(
        self,
        request: DirectRequest,
        dctx: DispatchContext[TransportContext],
        http_request: Any,
        version: str,
        lifespan_state: Any,
    ) -> dict[str, Any]:
        """The result dict of one direct request, through the whole middleware chain; raises as `serve_one`."""
        connection = self._connections.get(version)
        if connection is None:
            connection = self._connections[version] = Connection.from_envelope(version, None, None)
        params = request.params
        meta = None if "_meta" not in params else _meta(params)
        ctx: ServerRequestContext[Any, Any] = ServerRequestContext(
            session=ServerSession(dctx, connection, request_meta=meta),
            lifespan_context=lifespan_state,
            method="tools/call",
            params=params,
            request_id=dctx.request_id,
            meta=meta,
            protocol_version=version,
            request=http_request,
        )
        result = await self._chain(ctx)
        return result if isinstance(result, dict) else _dump(result)

    async def _inner(self, ctx: ServerRequestContext[Any, Any]) -> HandlerResult:
        params: Mapping[str, Any] = ctx.params or {}
        if not params.keys() <= _PLAIN_KEYS:  # `_meta`: the SDK's surface check of the params, as `_inner` does
            _methods.validate_client_request(ctx.method, ctx.protocol_version, params)
        tool = self._tools[params["name"]]
        try:
            with arguments_named(tool.name):  # as `LakegateServer.call_tool`
                return await tool.run(params.get("arguments") or {}, ctx.protocol_version)
        except MCPError:
            raise
        except Exception as exc:  # `MCPServer._handle_call_tool`
            if isinstance(exc, ToolError) and not isinstance(exc, UnexpectedToolError):
                if isinstance(exc.__cause__, ValidationError):
                    fields = sorted({".".join(str(part) for part in err["loc"]) for err in exc.__cause__.errors()})
                    sdk_log.info("Tool %r rejected arguments: %r", tool.name, fields)
                else:
                    sdk_log.info("Tool %r failed: %r", tool.name, str(exc))
            else:
                sdk_log.exception("Tool %r raised an unexpected exception", tool.name)
            return _failed(str(exc))


def _apply(
    middleware: ServerMiddleware[Any], call_next: CallNext, ctx: ServerRequestContext[Any, Any]
) -> Awaitable[HandlerResult]:
    return middleware(ctx, call_next)


async def _traced(call_next: CallNext, ctx: ServerRequestContext[Any, Any]) -> HandlerResult:
    """`OpenTelemetryMiddleware` for a `tools/call`: the same span (name, kind, attributes, parent, status).

    The SDK's layer opens it through `otel_span`, the proxy tracer's and the SDK tracer's
    `start_as_current_span` and `use_span`: four generator context managers, ~10% of the edge's
    samples under load. Here the span is started and made current directly, as those do with
    `record_exception` and `set_status_on_exception` off.
    """
    name = ctx.params.get("name") if ctx.params else None
    target = name if isinstance(name, str) else None
    attributes: dict[str, Any] = {"mcp.method.name": ctx.method, "mcp.protocol.version": ctx.protocol_version}
    if ctx.request_id is not None:
        attributes["jsonrpc.request.id"] = str(ctx.request_id)
    attributes["gen_ai.operation.name"] = "execute_tool"  # a direct request is always a tools/call
    if target is not None:
        attributes["gen_ai.tool.name"] = target
    span = sdk_tracer.start_span(
        f"{ctx.method}{f' {target}' if target else ''}",
        context=extract_trace_context(ctx.meta),
        kind=SpanKind.SERVER,
        attributes=attributes,
        record_exception=False,
        set_status_on_exception=False,
    )
    token = otel_context.attach(trace.set_span_in_context(span))
    try:
        try:
            result = await call_next(ctx)
        except MCPError as e:
            _protocol_error(span, e.error.code, e.error.message)
            raise
        except ValidationError:
            _protocol_error(span, INVALID_PARAMS, "Invalid request parameters")
            raise
        except Exception as e:
            span.set_attribute("error.type", type(e).__qualname__)
            span.record_exception(e)
            span.set_status(StatusCode.ERROR, str(e))
            raise
        match result:
            case CallToolResult(is_error=True) | {"isError": True}:
                span.set_attribute("error.type", "tool_error")
                span.set_status(StatusCode.ERROR)
        return result
    finally:
        otel_context.detach(token)
        span.end()


def _protocol_error(span: trace.Span, code: int, message: str) -> None:
    """A call answered with a JSON-RPC error: its code on the span, as the SDK's layer sets it."""
    span.set_attributes({"error.type": str(code), "rpc.response.status_code": str(code)})
    span.set_status(StatusCode.ERROR, message)


def _meta(params: Mapping[str, Any]) -> Any:
    """`params._meta` as the SDK's runner reads it (None when malformed)."""
    try:
        return RequestParams.model_validate(params, by_name=False).meta
    except ValidationError:
        return None


def _dump(result: Any) -> dict[str, Any]:
    """A middleware's own result (a refusal) as the runner dumps it."""
    if result is None:
        return {}
    if isinstance(result, BaseModel):
        dumped: dict[str, Any] = result.model_dump(by_alias=True, mode="json", exclude_none=True)
        return dumped
    return dict(result)
