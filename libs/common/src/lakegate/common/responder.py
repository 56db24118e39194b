"""Answering request/reply subjects on core NATS directly, without FastStream's per-message machinery.

A service's request handlers (each wrapped with `rpc.answers`) are listed with `Responder.answer`
and subscribed on the connection itself when the service starts. A request then costs what it
must: read the trace context from the headers, validate the body as the handler's request model
(pydantic-core, straight from bytes), run the handler, write the `Reply` envelope as JSON with
the answer serialized once (`rpc.encoded`). Through
FastStream the same request also went through its logging, acknowledgement and telemetry
middlewares, dependency injection and a second pydantic round trip, which was most of a catalog
listing's CPU (bench/README.md, issue 14). JetStream consumers stay on FastStream: their
delivery policy is `lakegate.common.delivery`'s.

What stays the same for the caller: the subject and queue group (replicas share requests), the
`Reply` envelope, the error mapping of `answers`, and the trace: each request gets a CONSUMER span
`<subject> process` whose parent is the caller's span from the `traceparent` header, and it is the
current span while the handler runs, so what the handler publishes or requests continues the
trace. Without an exporter (`traced=False`) no span is made, for nobody would read it (a third of
the catalog's Python calls on a listing); the caller's context is the current one instead, so
the trace still travels on. The answer goes back without the request's headers. A body that is
not the handler's request model is answered with `invalid_input` naming the model, not left to
time out. At most `workers` requests of a subject run at once; more wait in the responder's queue
of that subject, and a worker that finishes takes the next one itself (no task per request while
all are busy). On stop the subscriptions are drained and the requests under way get `timeout`
seconds to finish; those still running then are cancelled and awaited, so none runs on.

Per request, on the direct path (`_Direct`, the default): nats-py's parser hands the raw message
to the responder (no header dict, `Msg`, subscription queue or callback task), the `traceparent`
is read without the propagator's getter machinery (`parent_context`), a body without `\u0000` is
known to hold no NUL (`refuse_nul` is skipped), and the reply is one `PUB` command added to
nats-py's send buffer. A `sources.list` cost the catalog 178 Python calls before, 82 now, at 64
requests at once (bench/README.md, issue 14's fifth round).
"""

from __future__ import annotations

import asyncio
import logging
import typing
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from lakegate.common.contracts.rpc import Reply
from lakegate.common.contracts.runs import ErrorInfo
from lakegate.common.errors import first_invalid
from lakegate.common.rpc import EncodedHandler, encoded, reply_json
from nats.aio.client import Client as NatsClient
from nats.aio.msg import Msg
from nats.aio.subscription import Subscription
from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.context.context import Context
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator
from pydantic import BaseModel, ValidationError

log = logging.getLogger(__name__)

#: A request handler as `rpc.answers` makes it: the request model in, the reply envelope out.
Handler = Callable[[Any], Awaitable[Reply]]
#: A request's headers: the raw block as the server sent it (direct path) or nats-py's dict of it.
Headers = bytes | dict[str, str] | None

#: Seconds that requests still running after `stop`'s timeout get to end once cancelled.
CANCEL_GRACE = 5.0
#: Requests of one subject that may wait for a worker (nats-py's own limit of a subscription's queue).
MAX_WAITING = 512 * 1024

_PROPAGATOR = TraceContextTextMapPropagator()
_TRACEPARENT = TraceContextTextMapPropagator._TRACEPARENT_HEADER_FORMAT_RE
_CRLF = b"\r\n"


def request_model(handler: Handler) -> type[BaseModel]:
    """The pydantic model a handler takes, read from its (first) parameter's annotation."""
    hints = typing.get_type_hints(handler)
    hints.pop("return", None)
    models = [hint for hint in hints.values() if isinstance(hint, type) and issubclass(hint, BaseModel)]
    if len(models) != 1:
        raise TypeError(f"request handler {handler!r} must take exactly one pydantic model, not {hints}")
    return models[0]


def parent_context(traceparent: str | None, tracestate: str | None) -> Context | None:
    """The caller's context from its W3C headers: what `TraceContextTextMapPropagator.extract` makes of them.

    A lone, well-formed version-00 `traceparent` (what every lakegate caller sends) is read here
    without the propagator's getter and context machinery; anything else goes to the propagator.
    None without a `traceparent`.
    """
    if traceparent is None:
        return None
    if tracestate is None and len(traceparent) == 55 and traceparent.startswith("00-"):
        match = _TRACEPARENT.match(traceparent)
        if match is not None and match.group(5) is None:
            trace_id, span_id = int(match.group(2), 16), int(match.group(3), 16)
            if not trace_id or not span_id:
                return Context()
            span = trace.NonRecordingSpan(
                trace.SpanContext(
                    trace_id, span_id, is_remote=True, trace_flags=trace.TraceFlags(int(match.group(4), 16))
                )
            )
            return trace.set_span_in_context(span, Context())
    carrier = (
        {"traceparent": traceparent} if tracestate is None else {"traceparent": traceparent, "tracestate": tracestate}
    )
    return _PROPAGATOR.extract(carrier)


def _trace_headers(headers: Headers) -> tuple[str | None, str | None]:
    """`traceparent` and `tracestate` of a request's headers, read as nats-py reads a header block."""
    if not headers:
        return None, None
    if isinstance(headers, dict):
        return headers.get("traceparent"), headers.get("tracestate")
    traceparent = tracestate = None
    for line in headers.split(_CRLF)[1:]:  # the first line is `NATS/1.0` (a request carries no status)
        name, _, value = line.partition(b":")
        name = name.strip()
        if name == b"traceparent":
            traceparent = value.strip().decode("utf-8", "replace")
        elif name == b"tracestate":
            tracestate = value.strip().decode("utf-8", "replace")
    return traceparent, tracestate


@dataclass
class _Answering:
    subject: str
    handler: EncodedHandler
    request: type[BaseModel]
    queue: str
    #: Workers that may start: requests of this subject run `workers` at a time at most.
    free: int
    name: str
    #: Requests that came while every worker was busy, oldest first: (reply subject, body, headers).
    waiting: deque[tuple[bytes | str, bytes, Headers]] = field(default_factory=deque)


@dataclass
class Responder:
    """The request subjects of one service, answered on its NATS connection."""

    tracer: trace.Tracer
    #: Spans are exported: each request gets a CONSUMER span. Else only the caller's context is made current.
    traced: bool = True
    #: Take requests from nats-py's parser and write replies into its send buffer (see `_Direct`); else its
    #: public subscription callback and `publish`.
    direct: bool = True
    _answering: list[_Answering] = field(default_factory=list)
    _subscriptions: list[Subscription] = field(default_factory=list)
    _running: set[asyncio.Task[None]] = field(default_factory=set)
    _direct: _Direct | None = None

    def answer(self, subject: str, handler: Handler, *, queue: str, workers: int) -> None:
        """Answer `subject` with `handler` (an `answers` function), `workers` requests at a time, in `queue`."""
        if workers < 1:
            raise ValueError(f"workers for {subject} must be at least 1, not {workers}")
        name = getattr(handler, "__name__", subject)
        self._answering.append(_Answering(subject, encoded(handler), request_model(handler), queue, workers, name))

    async def start(self, connection: NatsClient) -> None:
        """Subscribe every subject on `connection` (the caller flushes before it reports ready)."""
        direct = _Direct.install(connection, self) if self.direct else None
        self._direct = direct
        for answering in self._answering:
            subscription = await connection.subscribe(
                answering.subject, queue=answering.queue, cb=self._receiver(answering, connection)
            )
            self._subscriptions.append(subscription)
            if direct is not None:
                direct.routes[subscription._id] = answering

    async def stop(self, timeout: float) -> None:
        """Take no more requests and let those under way finish (for at most `timeout` seconds).

        Requests still running then are cancelled, and awaited (for at most `CANCEL_GRACE` seconds),
        so that nothing of them runs on once `stop` returns.
        """
        subscriptions, self._subscriptions = self._subscriptions, []
        for subscription in subscriptions:
            try:
                await subscription.drain()  # type: ignore[no-untyped-call]
            except Exception:  # the connection is gone already: nothing more will arrive
                log.debug("could not drain %s", subscription.subject, exc_info=True)
        if self._running:
            _, late = await asyncio.wait(set(self._running), timeout=timeout)
            for task in late:
                task.cancel()
            if late:
                _, stuck = await asyncio.wait(late, timeout=CANCEL_GRACE)
                if stuck:
                    log.warning("%d requests did not end within %gs of being cancelled", len(stuck), CANCEL_GRACE)
        if self._direct is not None:
            self._direct.uninstall()
            self._direct = None

    def _receiver(self, answering: _Answering, connection: NatsClient) -> Callable[[Msg], Awaitable[None]]:
        # The public path: nats-py's subscription task awaits this for each message.
        async def receive(msg: Msg) -> None:
            self._take(answering, connection, msg.reply, msg.data, msg.headers)

        return receive

    def _take(
        self, answering: _Answering, connection: NatsClient, reply: bytes | str, data: bytes, headers: Headers
    ) -> None:
        """Start a worker on a request, or queue it when `workers` of its subject are busy."""
        if answering.free:
            answering.free -= 1
            task = asyncio.get_running_loop().create_task(self._work(answering, connection, reply, data, headers))
            self._running.add(task)
            task.add_done_callback(self._running.discard)
        elif len(answering.waiting) < MAX_WAITING:
            answering.waiting.append((reply, data, headers))
        else:
            log.error("dropped a request on %s: %d are waiting for a worker already", answering.subject, MAX_WAITING)

    async def _work(
        self, answering: _Answering, connection: NatsClient, reply: bytes | str, data: bytes, headers: Headers
    ) -> None:
        # A worker answers its request, then the ones that queued meanwhile, one task for many under load.
        try:
            while True:
                try:
                    await self._reply(answering, connection, reply, data, headers)
                except Exception:
                    log.exception("could not answer a request on %s", answering.subject)
                if not answering.waiting:
                    return
                reply, data, headers = answering.waiting.popleft()
        finally:
            answering.free += 1

    async def _reply(
        self, answering: _Answering, connection: NatsClient, reply: bytes | str, data: bytes, headers: Headers
    ) -> None:
        parent = parent_context(*_trace_headers(headers)) if headers else None
        if not self.traced:
            # Nothing records spans: the caller's context alone is current, so what the handler
            # sends still carries its trace, and no span is made and ended for nobody.
            token = otel_context.attach(parent) if parent is not None else None
            try:
                body = await self._answer(answering, data)
            finally:
                if token is not None:
                    otel_context.detach(token)
        else:
            with self.tracer.start_as_current_span(
                f"{answering.subject} process",
                context=parent,
                kind=trace.SpanKind.CONSUMER,
                attributes={
                    "messaging.system": "nats",
                    "messaging.destination.name": answering.subject,
                    "messaging.operation": "process",
                },
            ):
                body = await self._answer(answering, data)
        if not reply:
            return
        # Not `msg.respond`: it sends the request's headers back with the answer, which both sides
        # then write and parse for nothing (the caller reads only the body).
        if isinstance(reply, bytes):
            if await _Direct.send(connection, reply, body):
                return
            reply = reply.decode()
        await connection.publish(reply, body)

    async def _answer(self, answering: _Answering, data: bytes) -> bytes:
        try:
            request = answering.request.model_validate_json(data)
        except ValidationError as exc:
            return reply_json(
                ErrorInfo(
                    code="invalid_input",
                    message=f"the request on {answering.subject} is not a valid {answering.request.__name__}: "
                    f"{first_invalid(exc)}; the sender must be fixed",
                )
            )
        # A JSON text carries a NUL only as the escape `\u0000` (the parser refuses a raw one).
        return await answering.handler(request, b"\\u0000" not in data)


ProcessMsg = Callable[[int, bytes, bytes, bytes, bytes], Awaitable[None]]


@dataclass
class _Direct:
    """The responder's requests taken from nats-py's parser and its replies written into nats-py's send buffer.

    nats-py hands each message of a subscription through `Client._process_msg` (header block
    parsed into a dict, a `Msg`, the subscription's queue and task, the callback) and sends each
    reply through `publish` (subject checks, command formatting): together about half of the
    Python calls of a `sources.list` answered by the catalog. For the responder's own
    subscriptions (by sid) `_process_msg` here hands the raw reply subject, body and header bytes
    straight to the responder; every other message goes through nats-py as before. A reply is one
    `PUB` command added to the connection's pending buffer, which nats-py's flusher writes, as
    `publish` does; while the connection is not connected the reply goes through `publish`, whose
    reconnect buffering rules apply. These are nats-py's private members (`_process_msg`,
    `_send_command`, `_flush_queue`, `_flush_pending`), checked when installing: without them the
    responder keeps to the public path, which `Responder(direct=False)` also selects.
    """

    connection: NatsClient
    responder: Responder
    original: ProcessMsg
    routes: dict[int, _Answering] = field(default_factory=dict)

    @classmethod
    def install(cls, connection: NatsClient, responder: Responder) -> _Direct | None:
        """Route the responder's subscriptions on `connection` straight to it; None if nats-py lacks what it needs."""
        needed = ("_process_msg", "_send_command", "_flush_queue", "_flush_pending")
        if not all(hasattr(connection, name) for name in needed):
            log.warning("this nats-py has no %s: requests are taken through subscription callbacks", needed)
            return None
        direct = cls(connection, responder, connection._process_msg)
        connection._process_msg = direct.process_msg  # type: ignore[method-assign]
        return direct

    def uninstall(self) -> None:
        """Give `_process_msg` back to nats-py (when nothing else replaced it since)."""
        self.routes.clear()
        if self.connection.__dict__.get("_process_msg") == self.process_msg:
            del self.connection._process_msg

    async def process_msg(self, sid: int, subject: bytes, reply: bytes, data: bytes, headers: bytes) -> None:
        """nats-py's parser hands every message here; the responder's go to it, the rest on to nats-py."""
        answering = self.routes.get(sid)
        if answering is None:
            await self.original(sid, subject, reply, data, headers)
            return
        self.responder._take(answering, self.connection, reply, data, headers)

    @staticmethod
    async def send(connection: NatsClient, reply: bytes, body: bytes) -> bool:
        """Add `body` to `reply` to the connection's send buffer as a `PUB`; False when it must go through `publish`.

        Only a request taken by `process_msg` has a `bytes` reply subject, so `install` has checked these members.
        """
        if not connection.is_connected:
            return False
        await connection._send_command(b"PUB %b %d\r\n%b\r\n" % (reply, len(body), body))
        flushing = connection._flush_queue
        if flushing is not None and flushing.empty():
            await connection._flush_pending()  # wake the flusher, as `publish` does
        return True
