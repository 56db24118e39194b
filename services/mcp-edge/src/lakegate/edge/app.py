"""Wires the edge together: settings → broker, tenancy, MCP server, HTTP app; the only place that does.

The edge has no FastStream subscribers (so no `handlers.py`): it only makes requests, and follows
sync runs with short-lived core-NATS subscriptions while a tool call waits.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import cast

from lakegate.common.service import Runtime, runtime
from lakegate.edge.audit import AuditTrail
from lakegate.edge.authentication import authentication, replace_metadata_route
from lakegate.edge.backend import Backend
from lakegate.edge.config import EdgeSettings
from lakegate.edge.exchange import install_json_exchanges
from lakegate.edge.fast_calls import Bearer, FastCalls
from lakegate.edge.nats_link import NatsLink
from lakegate.edge.oversize import OversizeCalls
from lakegate.edge.password_pages import PasswordPages
from lakegate.edge.ratelimits import AdmissionReports, TokenBuckets
from lakegate.edge.server import LakegateServer, create_server
from lakegate.edge.task_peers import TaskPeers
from lakegate.edge.tenancy import Tenancy
from mcp.server.auth.middleware.auth_context import AuthContextMiddleware
from mcp.server.auth.middleware.bearer_auth import RequireAuthMiddleware
from mcp.server.mcpserver import MCPServer
from mcp.server.transport_security import TransportSecuritySettings
from starlette.applications import Starlette
from starlette.authentication import AuthenticationBackend
from starlette.middleware.authentication import AuthenticationMiddleware
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route
from starlette.types import ASGIApp, Receive, Scope, Send
from uvicorn.protocols.http.flow_control import HIGH_WATER_LIMIT

SERVICE = "edge"


@dataclass(frozen=True)
class EdgeState:
    """What a running edge holds."""

    settings: EdgeSettings
    runtime: Runtime
    server: MCPServer
    link: NatsLink
    password_pages: PasswordPages | None = None
    #: The rate limit's reports to the edge's other processes; None when there is no limit.
    rate_limits: AdmissionReports | None = None

    @property
    def health_port(self) -> int | None:
        """The health probes' port, once NATS is connected (None when probes are off)."""
        return self.link.health_port


@contextlib.asynccontextmanager
async def serve(settings: EdgeSettings) -> AsyncIterator[EdgeState]:
    """Yield the MCP server at once, connecting to NATS in the background (`nats_link`); on exit publish
    the last audit records, then drain NATS."""
    rt = runtime(SERVICE, settings)
    link = NatsLink(rt, settings)
    trail = AuditTrail(rt.broker, rt.topology, capacity=settings.audit_queue_size)
    auth = authentication(settings) if settings.transport == "http" else None
    # Each process answers for its own pages over NATS, so any process or replica serves any page.
    pages = (
        PasswordPages(
            rt,
            link,
            settings.password_page_seconds,
            settings.shared_secret,
            _root_of(settings.public_url, settings.path),
        )
        if settings.transport == "http"
        else None
    )
    # Likewise for its MCP tasks (a stdio edge serves one client, which asks it alone).
    peers = TaskPeers(rt, link) if settings.transport == "http" else None
    backend = Backend(rt, settings, Tenancy(settings.default_tenant), link, password_pages=pages, task_peers=peers)
    # Each process decides a call from its own buckets, kept in step with the others' by their reports.
    limits = (
        AdmissionReports(
            rt,
            link,
            TokenBuckets(settings.rate_limit_per_second, settings.rate_limit_burst),
            settings.rate_limit_report_seconds,
        )
        if settings.rate_limit_per_second > 0
        else None
    )
    server = create_server(backend, trail, auth, None if limits is None else limits.buckets)
    async with link.running(), trail.running(), limits.running() if limits else contextlib.nullcontext():
        yield EdgeState(settings, rt, server, link, pages, limits)


def http_app(state: EdgeState) -> ASGIApp:
    """The streamable-HTTP app: stateless, SSE when the client wants progress, else JSON; checking Origin and Host.

    Build one per listener: its session manager runs once.
    """
    settings = state.settings
    security = TransportSecuritySettings(
        enable_dns_rebinding_protection=True,
        allowed_hosts=settings.trusted_hosts,
        allowed_origins=settings.allowed_origins,
    )
    app = state.server.streamable_http_app(
        streamable_http_path=settings.path,
        stateless_http=True,
        json_response=False,
        max_request_body_size=settings.max_request_bytes,
        transport_security=security,
        host=settings.host,
    )
    server = state.server
    direct = server.direct_calls() if settings.direct_tool_calls and isinstance(server, LakegateServer) else None
    exchanges = install_json_exchanges(server.session_manager, direct)  # a call without a progress token: JSON
    manager = state.server.session_manager
    # Outside the SDK's body limit: an over-long tool call is answered as a tool error, not a bare 413.
    # (The SDK types the attribute as its own middleware, but only ever calls it as an ASGI app.)
    oversize = OversizeCalls(manager.asgi_app, settings.max_request_bytes, settings.max_upload_bytes)
    manager.asgi_app = oversize  # type: ignore[assignment]

    async def healthz(request: Request) -> Response:
        return PlainTextResponse("ok\n")

    async def readyz(request: Request) -> Response:
        # Ready once NATS is connected: every tool needs it.
        ready = state.link.connected
        return PlainTextResponse("ok\n" if ready else "not ready: NATS is not connected\n", 200 if ready else 503)

    if settings.authenticates:
        replace_metadata_route(app.router.routes, settings)
    app.add_middleware(_PostOnly, path=settings.path)
    app.router.routes.extend([Route("/healthz", healthz, methods=["GET"]), Route("/readyz", readyz, methods=["GET"])])
    if state.password_pages is not None:
        app.router.routes.extend(state.password_pages.routes())
    endpoint = _PostsToTheEndpoint(app, settings.path)
    if settings.fast_http and direct is not None:
        # Small enough for neither `OversizeCalls` nor the SDK's body limit to act, nor uvicorn to pause reading.
        max_body = min(settings.max_request_bytes, HIGH_WATER_LIMIT)
        endpoint.fast_calls = FastCalls(exchanges, settings.path, max_body, _bearer(app, settings.path))
    return endpoint


def _bearer(app: Starlette, path: str) -> Bearer | None:
    """The SDK's bearer authentication in front of the MCP route, when the edge requires tokens.

    The fast path (`fast_calls`) runs only it and its context for a plain call, so any other
    middleware the SDK puts there is an error here rather than a layer the fast path skips.
    """
    layers: set[object] = {cast(object, middleware.cls) for middleware in app.user_middleware} - {_PostOnly}
    if not layers <= {AuthenticationMiddleware, AuthContextMiddleware}:
        raise TypeError(f"the MCP SDK's app has middleware the fast path would skip ({layers}); revisit fast_calls.py")
    [route] = [r for r in app.router.routes if isinstance(r, Route) and r.path == path]
    if not isinstance(route.app, RequireAuthMiddleware):
        return None
    [backend] = [m.kwargs["backend"] for m in app.user_middleware if m.cls is cast(object, AuthenticationMiddleware)]
    if not isinstance(backend, AuthenticationBackend):
        raise TypeError(f"the MCP SDK authenticates with {backend!r}; revisit fast_calls.py")
    return Bearer(backend, route.app)


class _PostsToTheEndpoint:
    """A POST to the MCP path goes to its endpoint through the auth middleware only; the rest to Starlette.

    Starlette's error and exception middleware, `_PostOnly` and the router did nothing for such a
    POST but cost ~10% of a forwarded call's CPU. What the endpoint needs runs as before: the bearer
    authentication and its context (the app's own middleware, in order), then the SDK's endpoint,
    whose Host/Origin checks and body limit are inside it. An exception that escapes is uvicorn's
    500, as Starlette's would have been. Any other path, a trailing slash or a `root_path` goes to
    the app unchanged.
    """

    def __init__(self, app: Starlette, path: str) -> None:
        self.app, self._path = app, path
        #: Its plain tool calls, answered by the HTTP protocol itself (`listener.AnswersFast`).
        self.fast_calls: FastCalls | None = None
        [route] = [r for r in app.router.routes if isinstance(r, Route) and r.path == path]
        endpoint: ASGIApp = route.app
        for middleware in reversed(app.user_middleware):
            cls, args, kwargs = middleware
            if cls is not _PostOnly:  # it answers GET only
                endpoint = cls(endpoint, *args, **kwargs)
        self._endpoint = endpoint

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if (
            scope["type"] == "http"
            and scope["method"] == "POST"
            and scope["path"] == self._path
            and not scope.get("root_path")
        ):
            scope["app"] = self.app
            await self._endpoint(scope, receive, send)
            return
        await self.app(scope, receive, send)


class _PostOnly:
    """A stateless endpoint has no stream for GET to open: answer it 405 (Allow: POST), not a silent stream."""

    def __init__(self, app: ASGIApp, path: str) -> None:
        self._app, self._path = app, path

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["method"] == "GET" and scope["path"].rstrip("/") == self._path.rstrip("/"):
            response = PlainTextResponse(
                "this MCP endpoint is stateless: send JSON-RPC with POST; there is no event stream to GET\n",
                405,
                headers={"Allow": "POST"},
            )
            await response(scope, receive, send)
            return
        await self._app(scope, receive, send)


def _root_of(public_url: str | None, path: str) -> str | None:
    """The edge's root URL from the MCP endpoint's public URL (`https://h/mcp` → `https://h`)."""
    return None if public_url is None else public_url.rstrip("/").removesuffix(path.rstrip("/"))
