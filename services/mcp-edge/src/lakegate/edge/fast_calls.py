"""The fast path: a plain direct tool call answered from the HTTP protocol, without ASGI.

A `tools/call` that `direct_calls` serves still passed uvicorn's request cycle and five ASGI
layers (`app._PostsToTheEndpoint`, the SDK's bearer authentication and its context, `OversizeCalls`,
the SDK's body limit, `JsonExchanges`), each with its message dicts, its `receive`/`send` awaits and
its own header parsing: a fifth of the edge's CPU on a forwarded call. The edge's httptools
protocol (`listener`) hands `FastCalls` a fully received POST to exactly the MCP path whose body is
small (within `OversizeCalls`' and the body limit's bounds, so neither would act), and

- `plain` takes it when `JsonExchanges` would serve it directly: a handshake-era or absent
  `MCP-Protocol-Version`, JSON in and a JSON answer accepted, one JSON-RPC request without a
  progress token, and a call `DirectCalls` accepts (the same functions of `exchange` decide);
- `answer` authenticates it with the SDK's own backend when the edge requires tokens, checks Host,
  Origin and Content-Type with the SDK's own rules (`JsonExchanges.refusal`), sets the access token
  where the SDK's `AuthContextMiddleware` sets it (`tenancy` reads it there), and serves it with
  `JsonExchanges.serve_direct`, as a JSON exchange would. A request without a valid token, or
  without the required scope, is answered by the SDK's `RequireAuthMiddleware` and a refused
  Host or Origin by the SDK's refusal, each through uvicorn's cycle, so refusals keep their bytes.

Everything else goes through uvicorn and the ASGI layers unchanged. `LAKEGATE_EDGE_FAST_HTTP=false`
(or direct tool calls off, or the access log on) turns the fast path off. `tests/test_fast_calls.py`
sends a corpus to an edge with it and one without and compares the HTTP answers byte for byte.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from lakegate.edge.direct_calls import DirectRequest
from lakegate.edge.exchange import (
    JsonExchanges,
    encoded_answer,
    handshake_era,
    json_acceptable,
    protocol_version,
    single_request,
)
from mcp.server.auth.middleware.auth_context import auth_context_var
from mcp.server.auth.middleware.bearer_auth import AuthenticatedUser, RequireAuthMiddleware
from mcp_types import DEFAULT_NEGOTIATED_VERSION, RequestId
from starlette.authentication import AuthCredentials, AuthenticationBackend, UnauthenticatedUser
from starlette.requests import Request
from starlette.types import ASGIApp


@dataclass(frozen=True)
class Bearer:
    """The SDK's bearer authentication of the MCP endpoint: the backend reading the token, the gate requiring it."""

    backend: AuthenticationBackend
    gate: RequireAuthMiddleware


@dataclass(frozen=True)
class PlainCall:
    """A request `FastCalls` answers: the request, its JSON-RPC id and method, its direct call and protocol version."""

    request: Request
    request_id: RequestId
    method: str
    direct: DirectRequest
    version: str


class FastCalls:
    """Answers plain direct calls for the HTTP protocol, with the checks and the serving of `JsonExchanges`."""

    def __init__(self, exchanges: JsonExchanges, path: str, max_body: int, bearer: Bearer | None) -> None:
        #: The MCP path as the request line carries it (no query, nothing to unquote).
        self.path = path.encode("ascii")
        #: The longest body the fast path takes: what `OversizeCalls` and the SDK's body limit let through.
        self.max_body = max_body
        self._exchanges, self._bearer = exchanges, bearer
        #: How many requests the fast path answered (the tests read it to know the path was taken).
        self.served = 0

    def plain(self, request: Request, body: bytes) -> PlainCall | None:
        """The call a POST of `body` to the MCP path is, when a JSON exchange would serve it directly; else None."""
        version = protocol_version(request)
        if not handshake_era(version) or not json_acceptable(request):
            return None
        message = single_request(body)
        if message is None:
            return None
        negotiated = version or DEFAULT_NEGOTIATED_VERSION
        method: str = message["method"]
        direct = self._exchanges.direct_request(method, message.get("params"), negotiated)
        return None if direct is None else PlainCall(request, message["id"], method, direct, negotiated)

    async def answer(self, call: PlainCall) -> bytes | ASGIApp | None:
        """The JSON answer to `call`; or the SDK's app that refuses it; or None when the whole HTTP app must answer."""
        request = call.request
        user: Any = None
        if self._bearer is not None:
            try:
                authenticated = await self._bearer.backend.authenticate(request)
            except Exception:
                return None  # the SDK's authentication middleware fails the same way, answering as it does
            # As the SDK's middleware leaves them, for its gate to read.
            credentials, user = authenticated or (AuthCredentials(), UnauthenticatedUser())
            request.scope["auth"], request.scope["user"] = credentials, user
            required = self._bearer.gate.required_scopes
            if not isinstance(user, AuthenticatedUser) or any(s not in credentials.scopes for s in required):
                return self._bearer.gate
        refusal = await self._exchanges.refusal(request)
        if refusal is not None:
            return refusal
        token = auth_context_var.set(user) if isinstance(user, AuthenticatedUser) else None
        try:
            outcome: dict[str, Any] | Exception = await self._exchanges.serve_direct(
                call.direct, request, call.request_id, call.version
            )
        except Exception as exc:
            outcome = exc
        finally:
            if token is not None:
                auth_context_var.reset(token)
        self.served += 1
        return encoded_answer(call.request_id, call.method, outcome)
