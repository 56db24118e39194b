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
from typing import Any, cast

import uvicorn
from starlette.types import ASGIApp
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol


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


class _CoalescedWrites:
    """A transport whose writes within one event-loop step leave in one `send` (the rest is delegated).

    uvicorn writes a response's status line and headers, then its body: two system calls per
    answer, which were a fifth of the edge's CPU on a forwarded call (a loopback send also does
    much of the receiver's work). Writes are gathered and sent once the current step ends (the
    next loop iteration); `close` and `write_eof` send what is gathered first.
    """

    def __init__(self, transport: asyncio.Transport, loop: asyncio.AbstractEventLoop) -> None:
        self._transport, self._loop = transport, loop
        self._pending: list[bytes] = []

    def write(self, data: bytes | bytearray | memoryview) -> None:
        if not self._pending:
            self._loop.call_soon(self._flush)
        self._pending.append(bytes(data))

    def writelines(self, chunks: Any) -> None:
        for chunk in chunks:
            self.write(chunk)

    def _flush(self) -> None:
        if self._pending:
            data = b"".join(self._pending)
            self._pending.clear()
            if not self._transport.is_closing():
                self._transport.write(data)

    def get_write_buffer_size(self) -> int:
        return self._transport.get_write_buffer_size() + sum(map(len, self._pending))

    def write_eof(self) -> None:
        self._flush()
        self._transport.write_eof()

    def close(self) -> None:
        self._flush()
        self._transport.close()

    def abort(self) -> None:
        self._pending.clear()
        self._transport.abort()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._transport, name)


class _CoalescingHttpTools(HttpToolsProtocol):
    """uvicorn's httptools protocol on a transport that sends each answer in one system call."""

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(cast(asyncio.Transport, _CoalescedWrites(transport, self.loop)))


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

    uvicorn runs on uvloop with httptools (its C HTTP/1.1 parser), each answer leaving in one
    system call (`_CoalescedWrites`), and, unless `access_log`, without a log line per request: the
    h11 parser and the access log were a third of a call's HTTP cost.
    """
    sock = bind(host, port, reuse_port=reuse_port)
    bound = sock.getsockname()[1]
    config = uvicorn.Config(
        app,
        host=host,
        port=bound,
        loop="uvloop",
        http=_CoalescingHttpTools,
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
