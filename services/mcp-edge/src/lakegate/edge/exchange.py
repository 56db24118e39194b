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

JSON-RPC batches (a JSON array body) were part of protocol version 2025-03-26 only, which is
also what a POST without `MCP-Protocol-Version` speaks. Such a batch is served here: each request
in it is served like a JSON exchange (without progress: a batch answer has no stream), each
notification goes to the SDK as a POST of its own (so a `notifications/cancelled` still reaches its
call), and the answer is the JSON array of the requests' responses (202 when there are none). A
batch under any later version is refused with one JSON-RPC error, -32600, saying to send one
message per POST, instead of the SDK's validation dump.

The checks (`protocol_version`, `handshake_era`, `json_acceptable`, `single_request`), the answer's
encoding (`encoded_answer`), the direct serving and the Host/Origin refusal are shared with the
fast path (`fast_calls`), which answers the same plain calls from the HTTP protocol itself.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Awaitable, Mapping
from dataclasses import dataclass, field
from typing import Any

import anyio
import pydantic_core
from lakegate.edge.direct_calls import DirectCalls, DirectRequest
from lakegate.edge.internal_errors import internal_error
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
from mcp_types import (
    DEFAULT_NEGOTIATED_VERSION,
    INVALID_PARAMS,
    INVALID_REQUEST,
    UNSUPPORTED_PROTOCOL_VERSION,
    ErrorData,
    JSONRPCError,
    RequestId,
)
from mcp_types.version import HANDSHAKE_PROTOCOL_VERSIONS, MODERN_PROTOCOL_VERSIONS
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

log = logging.getLogger(__name__)

_JSON_HEADERS = [(b"content-type", b"application/json")]
#: Every protocol version the edge speaks, oldest first.
SUPPORTED_VERSIONS = (*HANDSHAKE_PROTOCOL_VERSIONS, *MODERN_PROTOCOL_VERSIONS)
#: The one protocol version with JSON-RPC batches (and the one a POST without a version header speaks).
BATCH_VERSION = "2025-03-26"


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


def _context(request: Request, request_id: RequestId) -> _ExchangeContext:
    return _ExchangeContext(
        transport=TransportContext(kind="streamable-http", can_send_request=False, headers=request.headers),
        request_id=request_id,
        message_metadata=ServerMessageMetadata(request_context=request, can_send_request=False),
    )


def single_request(body: bytes) -> dict[str, Any] | None:
    """The body as one JSON-RPC request a JSON exchange may serve, else None (the SDK serves it)."""
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


def protocol_version(request: Request) -> str | None:
    """The request's `MCP-Protocol-Version` header, None when it has none."""
    return request.headers.get(MCP_PROTOCOL_VERSION_HEADER)


def handshake_era(version: str | None) -> bool:
    """Whether a request of `version` (None: no header) may be a JSON exchange: a handshake-era version or none."""
    return version is None or version in HANDSHAKE_PROTOCOL_VERSIONS


def json_acceptable(request: Request) -> bool:
    """Whether the request is JSON and takes a JSON answer (its `Content-Type` and `Accept`)."""
    content_type = request.headers.get("content-type", "").split(";")[0]
    has_json, _ = check_accept_headers(request)
    return has_json and any(part.strip() == "application/json" for part in content_type.split(","))


def encoded_answer(request_id: RequestId, method: str, outcome: dict[str, Any] | Exception) -> bytes:
    """The JSON body answering a request: its handler's result, or the JSON-RPC error its exception maps to."""
    if isinstance(outcome, Exception):
        error = JSONRPCError(jsonrpc="2.0", id=request_id, error=_error_data(method, outcome))
        return error.model_dump_json(by_alias=True, exclude_unset=True).encode()
    return pydantic_core.to_json({"jsonrpc": "2.0", "id": request_id, "result": outcome})


class JsonExchanges:
    """ASGI app: serves what needs no stream as one JSON answer, and hands the rest to `fallback`."""

    def __init__(
        self, manager: StreamableHTTPSessionManager, fallback: ASGIApp, direct: DirectCalls | None = None
    ) -> None:
        self._manager = manager
        self._direct = direct
        self._server: Server[Any] = manager.app
        self._fallback = fallback
        self._security = TransportSecurityMiddleware(manager.security_settings)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] != "POST":
            await self._fallback(scope, receive, send)
            return
        first = await receive()
        body: bytes = first.get("body", b"") if first["type"] == "http.request" else b""
        while first["type"] == "http.request" and first.get("more_body", False) and body.lstrip()[:1] == b"[":
            more = await receive()  # a batch is read whole (the SDK's body limit is in front of this)
            body += more.get("body", b"")
            first = {"type": "http.request", "body": body, "more_body": more.get("more_body", False)}
        replayed = False

        async def replay() -> Message:
            nonlocal replayed
            if not replayed:
                replayed = True
                return first
            return await receive()

        request = Request(scope, replay)
        version = protocol_version(request)
        if version is not None and version not in SUPPORTED_VERSIONS:
            await self._unsupported(request, version, scope, send)
            return
        if body.lstrip()[:1] == b"[":
            await self._batch(request, scope, body, send)
            return
        message = None if first.get("more_body", False) or not handshake_era(version) else single_request(body)
        if message is None or not json_acceptable(request):
            await self._fallback(scope, replay, send)
            return
        refusal = await self.refusal(request)
        if refusal is not None:
            await refusal(scope, replay, send)
            return
        await self._answer(request, message, scope, receive, send)

    async def _batch(self, request: Request, scope: Scope, body: bytes, send: Send) -> None:
        refusal = await self.refusal(request)
        if refusal is not None:
            await refusal(scope, _nothing, send)
            return
        version = protocol_version(request) or BATCH_VERSION
        try:
            messages = json.loads(body)
        except (ValueError, RecursionError):
            messages = None
        if version != BATCH_VERSION or not isinstance(messages, list) or not messages:
            why = (
                "the batch is not a non-empty JSON array of JSON-RPC messages"
                if version == BATCH_VERSION
                else f"JSON-RPC batches are part of protocol version {BATCH_VERSION} only and this request "
                f"speaks {version}: send one JSON-RPC message per POST"
            )
            await _reply(send, 400, _error(None, INVALID_REQUEST, why))
            return
        answers: list[dict[str, Any]] = []
        for message in messages:
            answer = await self._batched(request, scope, message)
            if answer is not None:
                answers.append(answer)
        if answers:
            await _reply(send, 200, answers)
        else:
            await send({"type": "http.response.start", "status": 202, "headers": []})
            await send({"type": "http.response.body", "body": b""})

    async def _batched(self, request: Request, scope: Scope, message: Any) -> dict[str, Any] | None:
        """The response to one message of a batch; None for a notification or a response."""
        if not isinstance(message, dict) or message.get("jsonrpc") != "2.0":
            return _error(None, INVALID_REQUEST, "each message of a batch must be a JSON-RPC 2.0 object")
        request_id, method, params = message.get("id"), message.get("method"), message.get("params")
        if not isinstance(method, str):
            return None  # a response to a request of ours: a stateless edge sends none
        if request_id is None:
            await self._fallback_one(scope, message)
            return None
        if isinstance(request_id, bool) or not isinstance(request_id, (str, int)):
            return _error(None, INVALID_REQUEST, "a request id is a string or an integer")
        if method == "initialize":
            return _error(request_id, INVALID_REQUEST, "initialize must not be part of a batch: POST it alone")
        if params is not None and not isinstance(params, dict):
            return _error(request_id, INVALID_PARAMS, "params must be an object")
        outcome = await self._serve(request, request_id, method, params, BATCH_VERSION)
        if isinstance(outcome, ErrorData):
            return {"jsonrpc": "2.0", "id": request_id, "error": outcome.model_dump(by_alias=True, exclude_none=True)}
        return {"jsonrpc": "2.0", "id": request_id, "result": outcome}

    async def _fallback_one(self, scope: Scope, message: dict[str, Any]) -> None:
        """Hand one notification of a batch to the SDK as a POST of its own; its answer (202) is dropped."""
        body = json.dumps(message).encode()
        headers = [(key, value) for key, value in scope["headers"] if key != b"content-length"]
        sent = False

        async def once() -> Message:
            nonlocal sent
            if sent:
                await anyio.sleep_forever()
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}

        async def drop(message: Message) -> None:
            return None

        await self._fallback({**scope, "headers": [*headers, _length(body)]}, once, drop)

    async def _serve(
        self, request: Request, request_id: RequestId, method: str, params: Any, version: str
    ) -> dict[str, Any] | ErrorData:
        try:
            return await self._serve_one(request, request_id, method, params, version)
        except Exception as exc:
            return _error_data(method, exc)

    def _serve_one(
        self, request: Request, request_id: RequestId, method: str, params: Any, version: str
    ) -> Awaitable[dict[str, Any]]:
        """The handler chain's result for one request: directly (`direct_calls`) when it can be, else `serve_one`."""
        direct = self.direct_request(method, params, version)
        if direct is not None:
            return self.serve_direct(direct, request, request_id, version)
        return serve_one(
            self._server,
            _context(request, request_id),
            method,
            params,
            connection=Connection.from_envelope(version, None, None),
            lifespan_state=self._manager._lifespan_state,  # set by the manager's run(), read by every path
        )

    def direct_request(self, method: str, params: Any, version: str) -> DirectRequest | None:
        """The request as `direct_calls` serves it, or None when it is not a direct call (or they are off)."""
        return self._direct.accepts(method, params, version) if self._direct is not None else None

    def serve_direct(
        self, direct: DirectRequest, request: Request, request_id: RequestId, version: str
    ) -> Awaitable[dict[str, Any]]:
        """The result of a direct request, with the dispatch context every JSON exchange has."""
        assert self._direct is not None  # `direct_request` made `direct`
        return self._direct.serve(
            direct, _context(request, request_id), request, version, self._manager._lifespan_state
        )

    async def refusal(self, request: Request) -> Response | None:
        """The SDK's refusal of a POST for its `Content-Type`, `Host` or `Origin` (None when it passes)."""
        return await self._security.validate_request(request, is_post=True)

    async def _unsupported(self, request: Request, version: str, scope: Scope, send: Send) -> None:
        """An `MCP-Protocol-Version` the edge does not speak: 400, as the transport spec asks, saying which it does."""
        refusal = await self.refusal(request)
        if refusal is not None:  # a foreign origin or host is refused as such first
            await refusal(scope, _nothing, send)
            return
        answer = _error(
            None,
            UNSUPPORTED_PROTOCOL_VERSION,
            f"unsupported MCP-Protocol-Version {version!r}: this server speaks {', '.join(SUPPORTED_VERSIONS)}; "
            "send one of them",
        )
        answer["error"]["data"] = {"supported": list(SUPPORTED_VERSIONS), "requested": version}
        await _reply(send, 400, answer)

    async def _answer(
        self, request: Request, message: dict[str, Any], scope: Scope, receive: Receive, send: Send
    ) -> None:
        request_id: RequestId = message["id"]
        version = protocol_version(request) or DEFAULT_NEGOTIATED_VERSION
        handler = asyncio.ensure_future(
            self._serve_one(request, request_id, message["method"], message.get("params"), version)
        )
        # The client leaving cancels the handler; no answer is written then.
        gone = asyncio.ensure_future(_disconnected(receive))
        gone.add_done_callback(lambda _: handler.cancel())
        try:
            outcome: dict[str, Any] | Exception = await handler
        except asyncio.CancelledError:
            if gone.done() and not gone.cancelled() and handler.cancelled():
                return  # the client left: the work stopped, and there is nobody to answer
            raise
        except Exception as exc:
            outcome = exc
        finally:
            gone.cancel()
        answer = encoded_answer(request_id, str(message["method"]), outcome)
        await send({"type": "http.response.start", "status": 200, "headers": [*_JSON_HEADERS, _length(answer)]})
        await send({"type": "http.response.body", "body": answer})


def _error_data(method: str, exc: Exception) -> ErrorData:
    """The error an exception of `method`'s handler answers: the SDK's mapping, else -32603 as `internal_errors`."""
    error = handler_exception_to_error_data(exc)
    if error is None:
        log.error("handler for %r raised", method, exc_info=exc)
        error = internal_error(method).error
    return error


def _error(request_id: RequestId | None, code: int, message: str) -> dict[str, Any]:
    return {"jsonrpc": "2.0", "id": request_id, "error": {"code": code, "message": message}}


async def _reply(send: Send, status: int, answer: object) -> None:
    body = json.dumps(answer).encode()
    await send({"type": "http.response.start", "status": status, "headers": [*_JSON_HEADERS, _length(body)]})
    await send({"type": "http.response.body", "body": body})


async def _nothing() -> Message:
    return {"type": "http.request", "body": b"", "more_body": False}


def _length(body: bytes) -> tuple[bytes, bytes]:
    return (b"content-length", str(len(body)).encode("latin-1"))


async def _disconnected(receive: Receive) -> None:
    while (await receive())["type"] != "http.disconnect":
        pass


def install_json_exchanges(manager: StreamableHTTPSessionManager, direct: DirectCalls | None = None) -> JsonExchanges:
    """Put `JsonExchanges` in front of `manager`, behind its request body limit (and any auth around it);
    with `direct`, plain tool calls skip the SDK's runner (`direct_calls`). Returns it, for the fast path
    (`fast_calls`) to share."""
    limit = manager.asgi_app
    if not isinstance(limit, RequestBodyLimitMiddleware):
        raise TypeError("the MCP SDK's session manager no longer starts with its body limit; revisit exchange.py")
    exchanges = JsonExchanges(manager, limit.app, direct)
    limit.app = exchanges
    return exchanges
