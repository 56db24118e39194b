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
time out. At most `workers` requests of a subject run at once; more wait in the subscription's
queue. On stop the subscriptions are drained and the requests under way finish.
"""

from __future__ import annotations

import asyncio
import logging
import typing
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from lakegate.common.contracts.rpc import Reply
from lakegate.common.contracts.runs import ErrorInfo
from lakegate.common.errors import first_invalid
from lakegate.common.rpc import encoded, reply_json
from nats.aio.client import Client as NatsClient
from nats.aio.msg import Msg
from nats.aio.subscription import Subscription
from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator
from pydantic import BaseModel, ValidationError

log = logging.getLogger(__name__)

#: A request handler as `rpc.answers` makes it: the request model in, the reply envelope out.
Handler = Callable[[Any], Awaitable[Reply]]

_PROPAGATOR = TraceContextTextMapPropagator()


def request_model(handler: Handler) -> type[BaseModel]:
    """The pydantic model a handler takes, read from its (first) parameter's annotation."""
    hints = typing.get_type_hints(handler)
    hints.pop("return", None)
    models = [hint for hint in hints.values() if isinstance(hint, type) and issubclass(hint, BaseModel)]
    if len(models) != 1:
        raise TypeError(f"request handler {handler!r} must take exactly one pydantic model, not {hints}")
    return models[0]


@dataclass
class _Answering:
    subject: str
    handler: Callable[[BaseModel], Awaitable[bytes]]
    request: type[BaseModel]
    queue: str
    slots: asyncio.Semaphore
    name: str


@dataclass
class Responder:
    """The request subjects of one service, answered on its NATS connection."""

    tracer: trace.Tracer
    #: Spans are exported: each request gets a CONSUMER span. Else only the caller's context is made current.
    traced: bool = True
    _answering: list[_Answering] = field(default_factory=list)
    _subscriptions: list[Subscription] = field(default_factory=list)
    _running: set[asyncio.Task[None]] = field(default_factory=set)

    def answer(self, subject: str, handler: Handler, *, queue: str, workers: int) -> None:
        """Answer `subject` with `handler` (an `answers` function), `workers` requests at a time, in `queue`."""
        if workers < 1:
            raise ValueError(f"workers for {subject} must be at least 1, not {workers}")
        name = getattr(handler, "__name__", subject)
        self._answering.append(
            _Answering(subject, encoded(handler), request_model(handler), queue, asyncio.Semaphore(workers), name)
        )

    async def start(self, connection: NatsClient) -> None:
        """Subscribe every subject on `connection` (the caller flushes before it reports ready)."""
        for answering in self._answering:
            self._subscriptions.append(
                await connection.subscribe(
                    answering.subject, queue=answering.queue, cb=self._receiver(answering, connection)
                )
            )

    async def stop(self, timeout: float) -> None:
        """Take no more requests and let those under way finish (for at most `timeout` seconds)."""
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

    def _receiver(self, answering: _Answering, connection: NatsClient) -> Callable[[Msg], Awaitable[None]]:
        # nats-py awaits this callback before it hands over the subscription's next message, so it
        # only waits for a free slot and leaves the work to a task of its own.
        async def receive(msg: Msg) -> None:
            await answering.slots.acquire()
            task = asyncio.get_running_loop().create_task(self._reply(answering, connection, msg))
            self._running.add(task)
            task.add_done_callback(self._running.discard)

        return receive

    async def _reply(self, answering: _Answering, connection: NatsClient, msg: Msg) -> None:
        try:
            parent = _PROPAGATOR.extract(msg.headers) if msg.headers else None
            if not self.traced:
                # Nothing records spans: the caller's context alone is current, so what the handler
                # sends still carries its trace, and no span is made and ended for nobody.
                token = otel_context.attach(parent) if parent is not None else None
                try:
                    body = await self._answer(answering, msg.data)
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
                        "messaging.destination.name": msg.subject,
                        "messaging.operation": "process",
                    },
                ):
                    body = await self._answer(answering, msg.data)
            if msg.reply:
                # Not `msg.respond`: it sends the request's headers back with the answer, which both
                # sides then write and parse for nothing (the caller reads only the body).
                await connection.publish(msg.reply, body)
        except Exception:
            log.exception("could not answer a request on %s", msg.subject)
        finally:
            answering.slots.release()

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
        return await answering.handler(request)
