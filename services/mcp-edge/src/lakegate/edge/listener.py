"""Serving the HTTP app with uvicorn inside a running event loop, on a socket bound up front.

Binding first means the address (and a port picked by the kernel for port 0) is known before
uvicorn starts, and connections made meanwhile wait in the backlog instead of being refused.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass

import uvicorn
from starlette.types import ASGIApp


class _EmbeddedServer(uvicorn.Server):
    # The process's own signal handlers decide when to stop (and drain NATS after uvicorn is done).
    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


@dataclass(frozen=True)
class Listener:
    """A running uvicorn server: where it listens, and the task that ends when it stops."""

    url: str
    task: asyncio.Task[None]


def bind(host: str, port: int, *, reuse_port: bool = False, listen: bool = True) -> socket.socket:
    """A TCP socket bound to `host:port`; with `reuse_port`, other processes may bind the same port too."""
    family, kind, proto, _, address = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0]
    sock = socket.socket(family, kind, proto)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    if reuse_port:
        # Each serving process binds its own socket; the kernel spreads new connections across them.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    sock.bind(address)
    if listen:
        sock.listen(1024)
    sock.setblocking(False)
    return sock


@contextlib.asynccontextmanager
async def listening(
    app: ASGIApp,
    host: str,
    port: int,
    *,
    grace_seconds: float = 30.0,
    reuse_port: bool = False,
    access_log: bool = False,
) -> AsyncIterator[Listener]:
    """Serve `app` on `host:port` while the body runs, then let open requests finish for up to `grace_seconds`.

    uvicorn runs on uvloop with httptools (its C HTTP/1.1 parser) and, unless `access_log`, without
    a log line per request: the h11 parser and the access log were a third of a call's HTTP cost.
    """
    sock = bind(host, port, reuse_port=reuse_port)
    bound = sock.getsockname()[1]
    config = uvicorn.Config(
        app,
        host=host,
        port=bound,
        loop="uvloop",
        http="httptools",
        lifespan="on",
        access_log=access_log,
        log_config=None,
        timeout_graceful_shutdown=round(grace_seconds),
    )
    server = _EmbeddedServer(config)
    task = asyncio.create_task(server.serve(sockets=[sock]), name="uvicorn")
    shown = f"[{host}]" if ":" in host else host
    try:
        yield Listener(f"http://{shown}:{bound}", task)
    finally:
        server.should_exit = True
        with contextlib.suppress(asyncio.CancelledError):
            await task
        sock.close()
