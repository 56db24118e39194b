"""Request/reply between services: every answer is a `Reply` envelope.

A handler decorated with `answers` turns its result into `Reply(result=...)` and any
`LakegateError` into `Reply(error=...)`, so the caller gets the real reason instead of a timeout.
`RpcClient.call` turns the envelope back into the answer model or the same error class.

A request that may run long carries a `call_id`. A caller that gives up on it (its MCP request
was cancelled) publishes `CancelCall` on `Topology.call_cancel(call_id)` (`RpcClient.call` with
`cancel_subject`); the answering service runs the work inside `CallStops.stoppable`
(`lakegate.common.callstops`), which stops it when that message comes, or at once when the message
came before the request was taken up, and answers `Cancelled`.

A request goes out on the NATS client itself, not through FastStream's `broker.request`: that path
made two producer spans and a consumer span per request and ran every broker middleware over the
reply, ~a third of the edge's CPU per forwarded call. Nor through nats-py's `request` (see
`_Replies`): a request is one publish of one JSON body with the caller's W3C trace context
(`traceparent`) as its only header, to a reply subject of one long-lived wildcard subscription,
and a future that the answer (or a timer) settles. The answering service's span still joins the
caller's trace; with `traced` (an exporter is configured) each request also gets a CLIENT span of
its own. The reply is parsed once, straight into the answer model.

A handler may answer with `Encoded` JSON it already has (the catalog's listings, written by
PostgreSQL); the responder wraps it into the `Reply` envelope without a model in between.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import inspect
import itertools
import json
import logging
import re
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any, Generic, ParamSpec, Protocol, TypeVar, cast

import anyio
from faststream.nats import NatsBroker
from lakegate.common.contracts.rpc import CancelCall, Reply
from lakegate.common.contracts.runs import ErrorInfo
from lakegate.common.errors import InvalidInput, LakegateError, Unavailable, error_from_code
from nats.aio.client import NO_RESPONDERS_STATUS
from nats.aio.client import Client as NatsClient
from nats.aio.msg import Msg
from nats.errors import NoRespondersError
from nats.errors import TimeoutError as NatsTimeoutError
from nats.js.api import Header
from opentelemetry import trace
from pydantic import BaseModel, ConfigDict

log = logging.getLogger(__name__)

P = ParamSpec("P")
M = TypeVar("M", bound=BaseModel)

#: Seconds between tries when nobody answers a subject: long enough to ride out a restart of a replica.
NO_RESPONDER_PAUSES: tuple[float, ...] = (0.05, 0.1, 0.2, 0.4, 0.8, 1.6)


@dataclass(frozen=True, slots=True)
class Encoded(Generic[M]):
    """An answer already written as the JSON of its model `M` (built by PostgreSQL, say): replied as it is.

    A handler that returns one skips building and serializing the model; whoever makes it owns that
    the bytes are exactly what `M.model_dump_json()` would write (the caller still reads them as `M`).
    """

    json: bytes

    @classmethod
    def of(cls, model: M) -> Encoded[M]:
        """`model` written as `reply_json` writes an answer model (the same bytes), to keep and reply again."""
        return cls(model.__pydantic_serializer__.to_json(model))


#: What a request handler may answer with.
Answer = BaseModel | Encoded[Any]


def answers(fn: Callable[P, Awaitable[Answer]]) -> Callable[P, Awaitable[Reply]]:
    """Wrap a request handler so that it always replies, with a result or an error."""

    @functools.wraps(fn)
    async def handler(*args: P.args, **kwargs: P.kwargs) -> Reply:
        outcome = await _settle(fn, args, kwargs)
        if isinstance(outcome, ErrorInfo):
            return Reply(error=outcome)
        if isinstance(outcome, Encoded):
            return Reply(result=json.loads(outcome.json))
        return Reply(result=outcome.model_dump(mode="json"))

    handler.__annotations__ = {**fn.__annotations__, "return": Reply}
    # FastStream reads the signature (following __wrapped__ unless __signature__ is set) and casts the
    # return value to its annotation; without this it would try to cast the Reply to the answer model.
    handler.__signature__ = inspect.signature(fn).replace(return_annotation=Reply)  # type: ignore[attr-defined]
    handler.__lakegate_answers__ = fn  # type: ignore[attr-defined]
    return handler


async def _settle(
    fn: Callable[..., Awaitable[Answer]], args: Sequence[object], kwargs: dict[str, object], *, nul_free: bool = False
) -> Answer | ErrorInfo:
    """The handler's answer, or the error to send instead; `nul_free`: the request is known to hold no NUL."""
    try:
        if not nul_free:
            for value in (*args, *kwargs.values()):
                if isinstance(value, BaseModel):
                    refuse_nul(value)
        return await fn(*args, **kwargs)
    except LakegateError as exc:
        return ErrorInfo(code=exc.code, message=exc.message, transient=exc.transient)
    except Exception:
        log.exception("request handler %s failed", fn.__name__)
        return ErrorInfo(
            code="internal",
            message=f"internal error while handling {fn.__name__}; the service log has the details",
            transient=True,
        )


class EncodedHandler(Protocol):
    """What `encoded` makes of a handler: a request in, the `Reply` JSON out."""

    def __call__(self, request: BaseModel, nul_free: bool = False) -> Awaitable[bytes]: ...


def encoded(handler: Callable[[Any], Awaitable[Reply]]) -> EncodedHandler:
    """An `answers` handler (or a bound method of one) that answers with the `Reply` JSON itself.

    The same outcome and error mapping, but the answer is serialized once, straight to JSON
    bytes, instead of to Python values, validated into a `Reply` and serialized again: for a
    listing of 20 sources that round trip was most of the catalog's own work on a call. Its
    second argument, `nul_free`, skips `refuse_nul` for a request whose JSON was seen to hold no
    `\\u0000` (the only way a JSON text can carry a NUL: the parser refuses a raw one).
    """
    inner = getattr(getattr(handler, "__func__", handler), "__lakegate_answers__", None)
    if inner is None:
        raise TypeError(f"{handler!r} is not a request handler made with `answers`")
    owner = getattr(handler, "__self__", None)
    call: Callable[..., Awaitable[Answer]] = inner.__get__(owner) if owner is not None else inner

    async def answer(request: BaseModel, nul_free: bool = False) -> bytes:
        return reply_json(await _settle(call, (request,), {}, nul_free=nul_free))

    return answer


def reply_json(outcome: Answer | ErrorInfo) -> bytes:
    """The `Reply` envelope of an answer or an error, as JSON: what `Reply(...).model_dump_json()` writes."""
    if isinstance(outcome, ErrorInfo):
        return Reply(error=outcome).model_dump_json().encode()
    if isinstance(outcome, Encoded):
        return b'{"result":' + outcome.json + b',"error":null}'
    # `Encoded.of`, written out: this runs on every reply.
    return b'{"result":' + outcome.__pydantic_serializer__.to_json(outcome) + b',"error":null}'


def refuse_nul(value: object, path: str = "") -> None:
    """Refuse a request with a NUL character in any text: PostgreSQL stores none, and no name or SQL holds one.

    Walks models and lists alike, so the message names where the NUL is (`tables[2].name`).
    """
    if isinstance(value, str):
        if "\x00" in value:
            raise InvalidInput(
                f"{path or 'the request'} contains a NUL byte (\\x00), which no name, id or SQL statement may hold: "
                "remove it"
            )
    elif isinstance(value, BaseModel):
        for name, field in value:
            refuse_nul(field, f"{path}.{name}" if path else name)
    elif isinstance(value, list | tuple):
        for index, item in enumerate(value):
            refuse_nul(item, f"{path}[{index}]")


_tracer = trace.get_tracer(__name__)


class _Answer(BaseModel, Generic[M]):
    """A `Reply` read with its result as the answer model, in one pass over the JSON."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    result: M | None = None
    error: ErrorInfo | None = None


_ANSWERS: dict[type[BaseModel], type[_Answer[Any]]] = {}


def _answer_of(answer: type[M]) -> type[_Answer[M]]:
    """`_Answer[answer]`, made once per answer model (parametrizing a generic model is not free)."""
    made = _ANSWERS.get(answer)
    if made is None:
        made = _ANSWERS[answer] = _Answer[answer]  # type: ignore[valid-type]
    return made


def answer_from(body: bytes, answer: type[M]) -> M:
    """The result of a `Reply`'s JSON as `answer`, read in one pass; its error raised as the lakegate error."""
    reply = _answer_of(answer).model_validate_json(body)
    if reply.error is not None:
        raise error_from_code(reply.error.code, reply.error.message, transient=reply.error.transient)
    if reply.result is None:
        return answer.model_validate(None)  # neither result nor error: refused as the answer model
    return reply.result


class _Replies:
    """One wildcard reply subscription on a connection, and the future of each request under way.

    What nats-py's `request` does, less what a service call never needs per request: it checks the
    subject and the reply inbox, makes a random token (an `os.urandom` system call), wraps the wait in
    `asyncio.wait_for`, and builds the header block from a dict through a regex per key. Here a
    request's inbox is the subscription's prefix and a counter, its timeout a timer on its future.
    The subscription is made on the first request and, like every subscription, renewed by nats-py
    when it reconnects.

    Nor nats-py's `publish` (its subject checks, its header building, then a future, a queue and a
    wake-up of its flusher task per publish, which then writes and awaits `drain`): each request's
    `PUB`/`HPUB` frame is built here and gathered with the others of the same event-loop step, and
    `_flush` hands them to the connection's transport in one `write` once the step ends (a
    loop callback, no task). While the connection is not up (reconnecting), or while nats-py itself
    has commands waiting to be written (a `SUB` just made, say, which must reach the server before a
    request whose answer it receives), the frames join nats-py's own pending buffer instead, in
    order, and its flusher (or its reconnect) writes them. Anything this path does not vouch for (a
    subject with whitespace, a payload over the server's `max_payload`, a header value with a line
    break, a connection not up when asked) goes through `publish`, which refuses or buffers it as it
    always did.

    Answers come through the subscription's single-message hook (`future`), which nats-py's read
    loop settles synchronously (`_Dispatch`): no per-subscription queue and task in between.
    """

    def __init__(self, connection: NatsClient) -> None:
        self.connection = connection
        self._prefix = ""
        self._waiting: dict[str, asyncio.Future[Msg]] = {}
        self._tokens = itertools.count()
        self._opening = asyncio.Lock()
        self._frames: list[bytes] = []
        self._heads: dict[str, bytes] = {}

    async def ask(self, subject: str, payload: bytes, headers: dict[str, str] | None, wait: float) -> bytes:
        """The body of the answer to one request; NoRespondersError or TimeoutError when none comes."""
        if not self._prefix:
            await self._open()
        token = str(next(self._tokens))
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Msg] = loop.create_future()
        self._waiting[token] = future
        timer = loop.call_later(wait, _expire, future)
        try:
            if not self._send(loop, subject, token, payload, headers):
                await self.connection.publish(subject, payload, reply=self._prefix + token, headers=headers)
            message = await future
        finally:
            timer.cancel()
            del self._waiting[token]
        if message.headers and message.headers.get(Header.STATUS) == NO_RESPONDERS_STATUS and not message.data:
            raise NoRespondersError
        return message.data

    def _send(
        self, loop: asyncio.AbstractEventLoop, subject: str, token: str, payload: bytes, headers: dict[str, str] | None
    ) -> bool:
        """Gather the request's frame for this step's write; False when it must go through `publish`."""
        connection = self.connection
        if not connection.is_connected or connection.is_draining_pubs or len(payload) > connection.max_payload:
            return False
        head = self._heads.get(subject)
        if head is None:
            if not subject or _UNSAFE.search(subject):
                return False
            if len(self._heads) >= _MAX_HEADS:
                self._heads.clear()
            head = self._heads[subject] = f"{subject} {self._prefix}".encode()
        if headers:
            lines = "".join(f"{key}: {value}\r\n" for key, value in headers.items())
            if any(_LINE_BREAK.search(key + value) for key, value in headers.items()):
                return False  # a line break would end the header block early
            encoded = f"NATS/1.0\r\n{lines}\r\n".encode()
            size = len(encoded)
            frame = b"HPUB %b%b %d %d\r\n%b%b\r\n" % (head, token.encode(), size, size + len(payload), encoded, payload)
        else:
            frame = b"PUB %b%b %d\r\n%b\r\n" % (head, token.encode(), len(payload), payload)
        if not self._frames:
            loop.call_soon(self._flush)
        self._frames.append(frame)
        return True

    def _flush(self) -> None:
        """Write the frames gathered in one event-loop step (or queue them behind nats-py's own)."""
        frames, self._frames = self._frames, []
        data = b"".join(frames)
        connection = self.connection
        transport = connection._transport
        if transport is not None and connection.is_connected and not connection._pending:
            try:
                transport.write(data)
                return
            except Exception:  # the socket went away under us: let nats-py write them after its reconnect
                log.debug("writing requests failed; queued for nats-py", exc_info=True)
        connection._pending.append(data)
        connection._pending_data_size += len(data)
        flushes = connection._flush_queue
        if connection.is_connected and flushes is not None and flushes.empty():
            flushes.put_nowait(asyncio.get_running_loop().create_future())  # wake its flusher

    async def _open(self) -> None:
        async with self._opening:
            if self._prefix:
                return
            prefix = self.connection.new_inbox() + "."  # under the connection's own inbox prefix (its NATS user's)
            # A `future` subscription is settled by the read loop itself for every message: no queue, no task.
            dispatch = cast(asyncio.Future[Msg], _Dispatch(self._deliver))
            await self.connection.subscribe(prefix + "*", future=dispatch)
            self._prefix = prefix

    def _deliver(self, message: Msg) -> None:
        future = self._waiting.get(message.subject[len(self._prefix) :])
        if future is not None and not future.done():
            future.set_result(message)


class _Dispatch:
    """What nats-py's read loop takes for a request's future: every message it is given goes to `deliver`.

    nats-py hands a message of a subscription made with `future=` to `future.set_result` once
    `future.cancelled()` says no, synchronously in its read loop, and never unsubscribes it (no
    `max_msgs`); so one object serves every answer of the wildcard subscription.
    """

    __slots__ = ("set_result",)

    def __init__(self, deliver: Callable[[Msg], None]) -> None:
        self.set_result = deliver

    @staticmethod
    def cancelled() -> bool:
        return False


#: What a subject or header may not hold on this path (nats-py's own check, plus any line break).
_UNSAFE = re.compile(r"[ \t\r\n]")
_LINE_BREAK = re.compile(r"[\r\n]")
#: Subjects whose frame head is kept (a service calls a few dozen).
_MAX_HEADS = 1024


def _expire(future: asyncio.Future[Msg]) -> None:
    if not future.done():
        future.set_exception(TimeoutError())


def _trace_headers() -> dict[str, str] | None:
    """The current span's W3C trace context as headers, None without one.

    What `TraceContextTextMapPropagator.inject` writes (`traceparent`, and `tracestate` when it has
    entries), without its getter and setter machinery. No `content-type`: the responder reads
    JSON whatever the headers say, and FastStream's subscribers decode a body without one as JSON
    too; each header costs the answering side a parse (nats-py checks every character of its name).
    """
    context = trace.get_current_span().get_span_context()
    if not context.is_valid:
        return None
    headers = {"traceparent": f"00-{context.trace_id:032x}-{context.span_id:016x}-{context.trace_flags:02x}"}
    if context.trace_state:
        headers["tracestate"] = context.trace_state.to_header()
    return headers


class RpcClient:
    """Calls other services over NATS request/reply."""

    def __init__(self, broker: NatsBroker, timeout: float, *, traced: bool = False) -> None:
        self._broker = broker
        self._timeout = timeout
        self._traced = traced
        self._replies: _Replies | None = None

    async def call(
        self,
        subject: str,
        request: BaseModel,
        answer: type[M],
        *,
        timeout: float | None = None,
        cancel_subject: str | None = None,
    ) -> M:
        """Ask `subject`; when the caller is cancelled meanwhile, tell the service on `cancel_subject` to stop."""
        if cancel_subject is None:
            return await self._call(subject, request, answer, timeout)
        call_id = getattr(request, "call_id", None)
        try:
            return await self._call(subject, request, answer, timeout)
        except anyio.get_cancelled_exc_class():
            with anyio.CancelScope(shield=True), contextlib.suppress(Exception):
                await self._broker.publish(CancelCall(call_id=str(call_id)), cancel_subject)
            raise

    async def _call(self, subject: str, request: BaseModel, answer: type[M], timeout: float | None) -> M:
        wait = timeout or self._timeout
        payload = request.__pydantic_serializer__.to_json(request)
        for pause in (*NO_RESPONDER_PAUSES, None):
            try:
                body = await self._request(subject, payload, wait)
                break
            except NoRespondersError as exc:
                if pause is None:
                    raise Unavailable(
                        f"no {_service(subject)} service is running to answer {subject}; start it, retry"
                    ) from exc
                await asyncio.sleep(pause)  # a replica may be (re)starting: give it a moment
            except (TimeoutError, NatsTimeoutError) as exc:
                raise Unavailable(
                    f"the {_service(subject)} service did not answer within {wait:g}s; retry shortly"
                ) from exc
        return answer_from(body, answer)

    async def _request(self, subject: str, payload: bytes, wait: float) -> bytes:
        if not self._traced:
            return await self._send(subject, payload, wait)
        with _tracer.start_as_current_span(f"{subject} request", kind=trace.SpanKind.CLIENT) as span:
            span.set_attribute("messaging.system", "nats")
            span.set_attribute("messaging.destination.name", subject)
            return await self._send(subject, payload, wait)

    async def _send(self, subject: str, payload: bytes, wait: float) -> bytes:
        connection = self._broker.connection
        replies = self._replies
        if replies is None or replies.connection is not connection:  # first call, or the broker connected anew
            replies = self._replies = _Replies(connection)
        # The caller's span goes along: the answering service continues its trace.
        return await replies.ask(subject, payload, _trace_headers(), wait)


def _service(subject: str) -> str:
    """`catalog` of `<prefix>.rpc.catalog.sources.list`, for messages."""
    return subject.split(".rpc.", 1)[-1].split(".", 1)[0]
