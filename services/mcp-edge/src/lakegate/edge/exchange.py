"""JSON exchanges: a POSTed request that wants no progress is answered with one JSON body.

The SDK's stateless streamable-HTTP path builds, for every POST, a transport, a JSON-RPC
dispatcher, memory streams and a task group, and answers with an SSE stream, whether or not the
client asked for progress. That machinery was most of the ~9 ms of CPU the edge spent on a
forwarded call. A stateless POST has nothing for it to do unless the handler streams
notifications, and the only ones our tools send on a request's stream are progress
notifications, which need a progress token. So `JsonExchanges` sits between the SDK's body-size
limit and its session manager and serves one request directly when

- the method is POST, with a JSON `Content-Type`, an `Accept` that takes `application/json`,
  and a handshake-era (or absent) `MCP-Protocol-Version` header;
- the body is one JSON-RPC request (not a batch, a notification, or `initialize`);
- and `params._meta` has no `progressToken`;

calling the server's handler chain once (`serve_one`: the same middleware, audit and telemetry as
the dispatcher) and writing `application/json` with status 200, as the SDK's JSON-response
mode does. Everything else, including every request with a progress token, goes to the SDK
unchanged, byte for byte (the buffered body is replayed), so SSE, progress and every refusal keep
their SDK behaviour. A client that disconnects before the answer cancels the handler, and gets no
answer, like a cancelled request on the SDK's path.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import anyio
import pydantic_core
from mcp.server.connection import Connection
from mcp.server.lowlevel.server import Server
from mcp.server.runner import serve_one
from mcp.server.streamable_http import check_accept_headers
from mcp.server.streamable_http_manager import StreamableHTTPSessionManager
from mcp.server.transport_security import RequestBodyLimitMiddleware, TransportSecurityMiddleware
from mcp.shared.dispatcher import CallOptions
from mcp.shared.exceptions import NoBackChannelError
from mcp.shared.inbound import MCP_PROTOCOL_VERSION_HEADER
from mcp.shared.jsonrpc_dispatcher import handler_exception_to_error_data
from mcp.shared.message import ServerMessageMetadata
from mcp.shared.transport_context import TransportContext
from mcp_types import DEFAULT_NEGOTIATED_VERSION, ErrorData, JSONRPCError, RequestId
from mcp_types.version import HANDSHAKE_PROTOCOL_VERSIONS
from starlette.requests import Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send

log = logging.getLogger(__name__)

_VERSION_HEADER = MCP_PROTOCOL_VERSION_HEADER.lower().encode("latin-1")
_JSON_HEADERS = [(b"content-type", b"application/json")]


@dataclass
class _ExchangeContext:
    """The dispatch context of one JSON exchange: no back-channel, and nowhere for notifications to go."""

    transport: TransportContext
    request_id: RequestId
    message_metadata: ServerMessageMetadata
    cancel_requested: anyio.Event = field(default_factory=anyio.Event)
    can_send_request: bool = field(default=False, init=False)

    async def send_raw_request(
        self, method: str, params: Mapping[str, Any] | None, opts: CallOptions | None = None
    ) -> dict[str, Any]:
        raise NoBackChannelError(method)

    async def notify(self, method: str, params: Mapping[str, Any] | None, opts: CallOptions | None = None) -> None:
        return None  # a JSON answer has no room for notifications; a client wanting progress gets SSE

    async def progress(self, progress: float, total: float | None = None, message: str | None = None) -> None:
        return None

    def close(self) -> None:
        return None


def _single_request(body: bytes) -> dict[str, Any] | None:
    """The body as one JSON-RPC request this module may serve, else None (the SDK serves it)."""
    try:
        message = json.loads(body)
    except (ValueError, RecursionError):
        return None
    if not isinstance(message, dict) or message.get("jsonrpc") != "2.0":
        return None
    method, request_id, params = message.get("method"), message.get("id"), message.get("params")
    if not isinstance(method, str) or method == "initialize":
        return None
    if isinstance(request_id, bool) or not isinstance(request_id, (str, int)):
        return None
    if params is not None and not isinstance(params, dict):
        return None
    meta = (params or {}).get("_meta")
    if meta is not None and (not isinstance(meta, dict) or "progressToken" in meta):
        return None
    return message


class JsonExchanges:
    """ASGI app: serves what needs no stream as one JSON answer, and hands the rest to `fallback`."""

    def __init__(self, manager: StreamableHTTPSessionManager, fallback: ASGIApp) -> None:
        self._manager = manager
        self._server: Server[Any] = manager.app
        self._fallback = fallback
        self._security = TransportSecurityMiddleware(manager.security_settings)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] != "POST" or not self._handshake_era(scope):
            await self._fallback(scope, receive, send)
            return
        first = await receive()
        body: bytes = first.get("body", b"") if first["type"] == "http.request" else b""
        message = None if first.get("more_body", False) else _single_request(body)
        replayed = False

        async def replay() -> Message:
            nonlocal replayed
            if not replayed:
                replayed = True
                return first
            return await receive()

        request = Request(scope, replay)
        if message is None or not self._json_acceptable(request):
            await self._fallback(scope, replay, send)
            return
        refusal = await self._security.validate_request(request, is_post=True)
        if refusal is not None:
            await refusal(scope, replay, send)
            return
        await self._answer(request, message, scope, receive, send)

    @staticmethod
    def _handshake_era(scope: Scope) -> bool:
        version = next((value for key, value in scope["headers"] if key == _VERSION_HEADER), None)
        return version is None or version.decode("latin-1") in HANDSHAKE_PROTOCOL_VERSIONS

    @staticmethod
    def _json_acceptable(request: Request) -> bool:
        content_type = request.headers.get("content-type", "").split(";")[0]
        has_json, _ = check_accept_headers(request)
        return has_json and any(part.strip() == "application/json" for part in content_type.split(","))

    async def _answer(
        self, request: Request, message: dict[str, Any], scope: Scope, receive: Receive, send: Send
    ) -> None:
        request_id: RequestId = message["id"]
        version = request.headers.get(MCP_PROTOCOL_VERSION_HEADER, DEFAULT_NEGOTIATED_VERSION)
        context = _ExchangeContext(
            transport=TransportContext(kind="streamable-http", can_send_request=False, headers=request.headers),
            request_id=request_id,
            message_metadata=ServerMessageMetadata(request_context=request, can_send_request=False),
        )
        handler = asyncio.ensure_future(
            serve_one(
                self._server,
                context,
                message["method"],
                message.get("params"),
                connection=Connection.from_envelope(version, None, None),
                lifespan_state=self._manager._lifespan_state,  # set by the manager's run(), read by every path
            )
        )
        gone = asyncio.ensure_future(_disconnected(receive))
        try:
            await asyncio.wait((handler, gone), return_when=asyncio.FIRST_COMPLETED)
        finally:
            gone.cancel()
            if not handler.done():  # the client left (or this request is being cancelled): stop the work
                handler.cancel()
                with contextlib.suppress(BaseException):
                    await handler
        if not handler.done() or handler.cancelled():
            return
        exc = handler.exception()
        if exc is None:
            answer = pydantic_core.to_json({"jsonrpc": "2.0", "id": request_id, "result": handler.result()})
        else:
            error = handler_exception_to_error_data(exc)
            if error is None:  # what the SDK's dispatcher answers (and logs) for an unmapped exception
                log.error("handler for %r raised", message["method"], exc_info=exc)
                error = ErrorData(code=0, message=str(exc))
            answer = (
                JSONRPCError(jsonrpc="2.0", id=request_id, error=error)
                .model_dump_json(by_alias=True, exclude_unset=True)
                .encode()
            )
        await send({"type": "http.response.start", "status": 200, "headers": [*_JSON_HEADERS, _length(answer)]})
        await send({"type": "http.response.body", "body": answer})


def _length(body: bytes) -> tuple[bytes, bytes]:
    return (b"content-length", str(len(body)).encode("latin-1"))


async def _disconnected(receive: Receive) -> None:
    while (await receive())["type"] != "http.disconnect":
        pass


def install_json_exchanges(manager: StreamableHTTPSessionManager) -> None:
    """Put `JsonExchanges` in front of `manager`, behind its request body limit (and any auth around it)."""
    limit = manager.asgi_app
    if not isinstance(limit, RequestBodyLimitMiddleware):
        raise TypeError("the MCP SDK's session manager no longer starts with its body limit; revisit exchange.py")
    limit.app = JsonExchanges(manager, limit.app)
