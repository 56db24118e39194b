"""Serving the HTTP app with uvicorn inside a running event loop, on a socket bound up front.

Binding first means the address (and a port picked by the kernel for port 0) is known before
uvicorn starts, and connections made meanwhile wait in the backlog instead of being refused.
The protocol is uvicorn's httptools one, narrowly extended: each answer leaves in one system call
(`_CoalescedWrites`), and a plain direct tool call is answered by the protocol itself, without a
request cycle or ASGI (`_FastHttpTools`, deciding and serving with `fast_calls`).
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from functools import partial
from typing import Any, Protocol, cast, runtime_checkable

import uvicorn
from lakegate.edge.fast_calls import FastCalls, PlainCall
from starlette.requests import Request
from starlette.types import ASGIApp
from uvicorn._types import ASGI3Application
from uvicorn.protocols.http.httptools_impl import STATUS_LINE, HttpToolsProtocol, RequestResponseCycle


class _EmbeddedServer(uvicorn.Server):
    # The process's own signal handlers decide when to stop (and drain NATS after uvicorn is done).
    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


@runtime_checkable
class AnswersFast(Protocol):
    """An HTTP app with a fast path for plain tool calls (`app.http_app`'s), which the listener's protocol takes."""

    fast_calls: FastCalls | None


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


class _FastExchange:
    """A POST that `fast_calls` may answer, standing where uvicorn's request cycle would.

    The protocol's own bookkeeping reads its current cycle's `response_complete` (pipelining:
    the next request waits for it), `keep_alive` (a shutdown clears it, so the answer closes the
    connection) and `disconnected`; uvicorn's pipeline starts it with `run_asgi` when its turn
    comes. Nothing here builds an ASGI message or a cycle, unless the request turns out not to be
    fast (`_FastHttpTools.cycle_for`).
    """

    def __init__(self, protocol: _FastHttpTools, ahead: Any, keep_alive: bool) -> None:
        self.protocol, self.ahead, self.keep_alive = protocol, ahead, keep_alive
        self.scope = protocol.scope
        self.body = bytearray()
        self.call: PlainCall | None = None
        self.response_complete = False
        self.disconnected = False
        self.task: asyncio.Task[Any] | None = None

    async def run_asgi(self, app: ASGI3Application) -> None:
        """Answer the call, or let `app` (or the refusal `fast_calls` names) answer it in uvicorn's cycle."""
        protocol, call = self.protocol, self.call
        assert call is not None  # set before the exchange is started
        assert protocol.fast is not None
        self.task = asyncio.current_task()
        protocol.serving = self
        try:
            answer = await protocol.fast.answer(call)
        except asyncio.CancelledError:
            if self.disconnected:
                return  # the client left: the work stopped, and there is nobody to answer
            raise
        except Exception as exc:  # what uvicorn does with an app that raises before answering
            protocol.logger.error("Exception in ASGI application\n", exc_info=exc)
            await protocol.cycle_for(self).send_500_response()
            return
        finally:
            protocol.serving = None
        if not isinstance(answer, bytes):
            await protocol.cycle_for(self).run_asgi(cast(ASGI3Application, answer or app))
            return
        if protocol.flow.write_paused and not self.disconnected:
            await protocol.flow.drain()
        if self.disconnected:
            return
        # What uvicorn writes for the JSON exchange's answer, in one write.
        head = [STATUS_LINE[200]]
        for name, value in protocol.server_state.default_headers:
            head += [name, b": ", value, b"\r\n"]
        head.append(b"content-type: application/json\r\ncontent-length: %d\r\n" % len(answer))
        if not self.keep_alive:
            head.append(b"connection: close\r\n")
        head += [b"\r\n", answer]
        protocol.transport.write(b"".join(head))
        self.response_complete = True
        if not self.keep_alive:
            protocol.transport.close()
        protocol.on_response_complete()

    def lost(self) -> None:
        """The client went away: a call under way is cancelled, as `JsonExchanges` cancels it."""
        self.disconnected = True
        if self.task is not None:
            self.task.cancel()


class _FastHttpTools(_CoalescingHttpTools):
    """The edge's protocol: answers plain direct tool calls itself (`fast_calls`), everything else as uvicorn does.

    At the end of a request's headers, a POST to exactly the MCP path with a small body (a
    `Content-Length` within `FastCalls.max_body`, no `Expect`, no upgrade) becomes a `_FastExchange`
    whose body is kept here. When its body ends in the same read as its headers, `FastCalls.plain`
    decides: a plain call is answered by the exchange, in turn with the connection's other
    requests; anything else is handed to uvicorn as if its headers had only then ended, with the
    body read so far. A body still incomplete at the end of the read is handed over then, which is
    when uvicorn's task would first have read it (and found it incomplete, so not a JSON exchange).
    """

    def __init__(self, *args: Any, fast: FastCalls | None = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # The access log, a concurrency limit and a root path are uvicorn's to apply.
        plain_server = not self.access_log and self.limit_concurrency is None and not self.root_path
        self.fast = fast if plain_server else None
        self.serving: _FastExchange | None = None
        self._reading: _FastExchange | None = None

    def data_received(self, data: bytes) -> None:
        super().data_received(data)
        if self._reading is not None and not self.transport.is_closing():
            self._to_uvicorn(self._reading)

    def connection_lost(self, exc: Exception | None) -> None:
        if self.serving is not None:
            self.serving.lost()
        if isinstance(self.cycle, _FastExchange):  # what uvicorn would tell its current cycle
            self.cycle.lost()
            self.cycle = None  # type: ignore[assignment]
        super().connection_lost(exc)

    def on_headers_complete(self) -> None:
        if self.fast is None or not self._may_be_fast(self.fast):
            super().on_headers_complete()
            return
        http_version = self.parser.get_http_version()
        if http_version != "1.1":
            self.scope["http_version"] = http_version
        path = self.url.decode("ascii")  # `_may_be_fast`: exactly the MCP path
        self.scope["method"], self.scope["path"], self.scope["raw_path"] = "POST", path, self.url
        self.scope["query_string"] = b""
        keep_alive = http_version != "1.0" and self.parser.should_keep_alive()
        self._reading = _FastExchange(self, self.cycle, keep_alive)
        self.cycle = cast(RequestResponseCycle, self._reading)

    def _may_be_fast(self, fast: FastCalls) -> bool:
        if self.parser.get_method() != b"POST" or self.url != fast.path or self.expect_100_continue:
            return False
        if self.parser.should_upgrade():
            return False
        length = None
        for name, value in self.headers:
            if name == b"content-length":
                length = value
            elif name == b"transfer-encoding":
                return False
        return length is not None and length.isdigit() and int(length) <= fast.max_body

    def on_body(self, body: bytes) -> None:
        if self._reading is None:
            super().on_body(body)
            return
        self._reading.body += body

    def on_message_complete(self) -> None:
        exchange = self._reading
        if exchange is None:
            super().on_message_complete()
            return
        assert self.fast is not None
        call = self.fast.plain(Request(cast(dict[str, Any], self.scope)), bytes(exchange.body))
        if call is None:
            self._to_uvicorn(exchange)
            super().on_message_complete()
            return
        self._reading = None
        ahead, exchange.ahead, exchange.call = exchange.ahead, None, call
        if ahead is None or ahead.response_complete:
            self._start_asgi_task(cast(RequestResponseCycle, exchange), self.app)
        else:  # a pipelined request: answered after the one before it, as uvicorn does
            self.flow.pause_reading()
            self.pipeline.appendleft((cast(RequestResponseCycle, exchange), self.app))

    def _to_uvicorn(self, exchange: _FastExchange) -> None:
        """Hand a request being read to uvicorn: its cycle, as if the headers had ended now, and the body so far."""
        self._reading = None
        self.cycle = exchange.ahead
        super().on_headers_complete()
        self.cycle.keep_alive = self.cycle.keep_alive and exchange.keep_alive  # a shutdown meanwhile
        if exchange.body:
            super().on_body(bytes(exchange.body))

    def cycle_for(self, exchange: _FastExchange) -> RequestResponseCycle:
        """uvicorn's cycle for a request the fast path took but does not answer, its body already received."""
        cycle = RequestResponseCycle(
            scope=exchange.scope,
            transport=self.transport,
            flow=self.flow,
            logger=self.logger,
            access_logger=self.access_logger,
            access_log=self.access_log,
            default_headers=self.server_state.default_headers,
            message_event=asyncio.Event(),
            expect_100_continue=False,
            keep_alive=exchange.keep_alive,
            on_response=self.on_response_complete,
        )
        cycle.body, cycle.more_body, cycle.disconnected = exchange.body, False, exchange.disconnected
        cycle.message_event.set()
        # The current cycle, unless a later request is (uvicorn tells only its current cycle of a disconnect).
        if self.cycle is cast(RequestResponseCycle, exchange):
            self.cycle = cycle
        return cycle


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
    h11 parser and the access log were a third of a call's HTTP cost. An app with `fast_calls`
    has its plain tool calls answered by the protocol itself (`_FastHttpTools`).
    """
    fast = app.fast_calls if isinstance(app, AnswersFast) else None
    # uvicorn makes the protocol with its own keyword arguments; the fast path is bound beforehand.
    protocol = cast(type[asyncio.Protocol], partial(_FastHttpTools, fast=fast))
    sock = bind(host, port, reuse_port=reuse_port)
    bound = sock.getsockname()[1]
    config = uvicorn.Config(
        app,
        host=host,
        port=bound,
        loop="uvloop",
        http=protocol,
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
