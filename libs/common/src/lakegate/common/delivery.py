"""The one delivery policy of every JetStream consumer: settings, heartbeat, parsing, acknowledgement, giving up.

Each service's `app.py` lists its JetStream subscriptions in one table of `Subscription`s and hands
it to `subscribe`; the work of each is a `Work` (parse a message, do it, fail it, say what it is).
A delivery then goes:

    parse        unreadable    → term; `fail` is not called (there is no run to name), logged
                 not ours      → ack (e.g. a `range` step the catalog does not track)
    attempt > MAX_DELIVER      → the earlier deliveries ended without settling: the process died
                                 while working (killed, out of memory, a crash in a native library).
                                 `fail` with a message saying so and what to do, then term
    work         success       → ack
                 TransientError→ nack with backoff, until MAX_DELIVER is spent
                 TerminalError → `fail`, term
                 anything else → treated as transient (a crash may be a passing fault), with traceback

Deliveries are counted at the START of each one, so a run whose every try kills its worker is
still failed. For that the consumer's own `max_deliver` is `MAX_DELIVER + RECORD_TRIES`: the
extra deliveries only record the failure (and are retried if recording it fails transiently).

While the work runs, `heartbeat` tells JetStream the message is in progress (every third of the
ack wait) so a long step is not redelivered to another replica.

A subscription with `workers` > 1 does that many deliveries at once in each replica (`WorkPuller`):
it fetches a message only when one of its slots is free, so it never holds a message it is not
working on (such a message would get no heartbeat, be redelivered after the ack wait and then be
worked on twice), and the messages it does not take stay for the other replicas.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Annotated, Any, Generic, TypeVar

from faststream import AckPolicy
from faststream._internal.context import Context
from faststream.nats import JStream, NatsMessage, PullSub
from faststream.nats.message import NatsMessage as NatsMessageClass
from lakegate.common.errors import InvalidInput, LakegateError, TerminalError, TransientError, first_invalid
from lakegate.common.logs import log_context
from nats.js import JetStreamContext
from nats.js.api import AckPolicy as AckPolicyConfig
from nats.js.api import ConsumerConfig
from opentelemetry import trace
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator
from pydantic import BaseModel, ValidationError

if TYPE_CHECKING:
    from lakegate.common.service import Runtime
    from nats.aio.msg import Msg

log = logging.getLogger(__name__)

#: Seconds to wait before each redelivery of a transiently failed message.
BACKOFF: tuple[float, ...] = (1.0, 2.0, 5.0, 15.0, 30.0, 60.0)
#: Deliveries a message gets to do its work.
MAX_DELIVER = 8
#: Deliveries past MAX_DELIVER that only record the failure (a process that died every time).
RECORD_TRIES = 3
ACK_WAIT = 30.0


def _backoff(attempt: int) -> float:
    """Seconds before delivery `attempt` (1 on the first try) is tried again: the last pause once past the list."""
    return BACKOFF[min(attempt - 1, len(BACKOFF) - 1)]


M = TypeVar("M")
B = TypeVar("B", bound=BaseModel)


class _Current(Context):
    """FastStream's `Context`, resolved in the event loop.

    fast_depends runs a custom field's synchronous `use` in a worker thread (anyio `to_thread`):
    a thread hop per delivery only to look up the message, a tenth of a catalog's CPU under load.
    A coroutine `use` it awaits in place.
    """

    async def use(self, /, **kwargs: Any) -> dict[str, Any]:  # type: ignore[override]
        return super().use(**kwargs)


MessageParam = Annotated[NatsMessageClass, _Current("message")]


def delivery_count(msg: NatsMessage) -> int:
    """How many times JetStream has delivered this message (1 on the first try)."""
    return int(msg.raw_message.metadata.num_delivered)


@dataclass(frozen=True)
class Delivery:
    """One delivery of a message to a worker."""

    msg: NatsMessage
    attempt: int

    @property
    def subject(self) -> str:
        return str(self.msg.raw_message.subject)


@dataclass(frozen=True)
class Work(Generic[M]):
    """What a consumer does with its messages.

    `parse` reads a message (raising `InvalidInput` when it cannot, returning None when the message
    is not this consumer's business); `run` does the work; `fail` records that it can never be done
    (marks the run failed); `doing` names the work for the message of a run that was given up.
    """

    parse: Callable[[NatsMessage], M | None]
    run: Callable[[M, Delivery], Awaitable[None]]
    fail: Callable[[M, LakegateError], Awaitable[None]]
    doing: Callable[[M], str]


@dataclass(frozen=True)
class Batched(Generic[M]):
    """What a consumer does with messages taken in batches: commands whose work is far cheaper done together.

    `parse` reads one message's subject and body (raising `InvalidInput` when it cannot); `run` does
    a whole batch's work at once; `fail` records that a batch's can never be done; `doing` names it.
    A fetch waits up to `linger` seconds for `size` messages, so under a steady trickle the work
    runs about once per `linger`, not once per message; each message is acknowledged only after
    its batch's work is done.
    """

    parse: Callable[[str, bytes], M]
    run: Callable[[Sequence[M]], Awaitable[None]]
    fail: Callable[[Sequence[M], LakegateError], Awaitable[None]]
    doing: Callable[[Sequence[M]], str]
    size: int = 500
    linger: float = 0.5


@dataclass(frozen=True)
class Subscription:
    """One durable JetStream consumer of a service, as its `app.py` table lists it."""

    subject: str
    stream: str
    durable: str
    title: str
    description: str
    work: Work[Any] | Batched[Any]
    #: Deliveries one replica works on at the same time (`WorkPuller` when more than one).
    workers: int = 1


def parsed(model: type[B]) -> Callable[[NatsMessage], B]:
    """A `Work.parse` that reads the body as `model`, naming the subject and model when it cannot."""
    body = parsed_body(model)

    def parse(msg: NatsMessage) -> B:
        return body(msg.raw_message.subject, msg.body)

    return parse


def parsed_body(model: type[B]) -> Callable[[str, bytes], B]:
    """A `Batched.parse` that reads the body as `model`, naming the subject and model when it cannot."""

    def parse(subject: str, body: bytes) -> B:
        try:
            return model.model_validate_json(body)
        except ValidationError as exc:
            raise InvalidInput(
                f"message on {subject} is not a valid {model.__name__}: {first_invalid(exc)}; the sender must be fixed"
            ) from None

    return parse


def heartbeat(msg: NatsMessage, every: float = ACK_WAIT / 3) -> contextlib.AbstractAsyncContextManager[None]:
    """Keep the message in progress while the body runs."""
    return _beating(msg.in_progress, every)


@contextlib.asynccontextmanager
async def _beating(in_progress: Callable[[], Awaitable[object]], every: float) -> AsyncIterator[None]:
    async def beat() -> None:
        while True:
            await asyncio.sleep(every)
            with contextlib.suppress(Exception):
                await in_progress()

    task = asyncio.create_task(beat())
    try:
        yield
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


def durable_config(ack_wait: float = ACK_WAIT) -> ConsumerConfig:
    """The settings of every durable work consumer: explicit acks within `ack_wait`, bounded redelivery."""
    return ConsumerConfig(ack_wait=ack_wait, max_deliver=MAX_DELIVER + RECORD_TRIES)


def gave_up(service: str, doing: str, deliveries: int) -> TerminalError:
    """The reason a run is failed when every delivery ended with its worker process gone."""
    return TerminalError(
        f"the {service} stopped {deliveries} times while {doing}, each time without finishing or reporting "
        "an error: the process was killed or crashed (out of memory, a fault in a native library); "
        f"check the {service}'s log and memory limit, then start the sync again"
    )


#: Called once per settled delivery: (subscription title, outcome, attempt, seconds). Metrics hang here.
Observer = Callable[[str, str, int, float], None]


def _no_observer(title: str, outcome: str, attempt: int, seconds: float) -> None:
    return None


async def consume(
    service: str,
    subscription: Subscription,
    msg: NatsMessage,
    *,
    ack_wait: float = ACK_WAIT,
    observe: Observer = _no_observer,
) -> None:
    """Settle one delivery of `subscription`'s message according to the policy above."""
    work, attempt, started = subscription.work, delivery_count(msg), time.monotonic()
    assert isinstance(work, Work), f"{subscription.title} takes batches: see consume_batch"

    def seen(outcome: str) -> None:
        observe(subscription.title, outcome, attempt, time.monotonic() - started)

    try:
        message = work.parse(msg)
    except LakegateError as exc:
        log.error("dropping unreadable message on %s: %s", msg.raw_message.subject, exc)
        await msg.reject()
        seen("unreadable")
        return
    if message is None:
        await msg.ack()
        seen("skipped")
        return
    with log_context(run_id=getattr(message, "run_id", None), tenant_id=getattr(message, "tenant_id", None)):
        if attempt > MAX_DELIVER:
            died = gave_up(service, work.doing(message), attempt - 1)
            log.error("giving up on %s: %s", msg.raw_message.subject, died)
            await _fail_then_term(msg, work, message, died, attempt)
            seen("gave_up")
            return
        try:
            async with heartbeat(msg, every=ack_wait / 3):
                await work.run(message, Delivery(msg, attempt))
        except TerminalError as exc:
            log.warning("terminal failure on %s: %s", msg.raw_message.subject, exc)
            await _fail_then_term(msg, work, message, exc, attempt)
            seen("terminal")
            return
        except Exception as exc:
            error = exc if isinstance(exc, TransientError) else None
            if error is None:
                log.exception("unexpected failure on %s (attempt %d)", msg.raw_message.subject, attempt)
            else:
                log.warning("transient failure on %s (attempt %d): %s", msg.raw_message.subject, attempt, exc)
            if attempt >= MAX_DELIVER:
                reason = str(exc) if error else f"internal error ({type(exc).__name__}); the service log has details"
                await _fail_then_term(
                    msg, work, message, TerminalError(f"gave up after {attempt} attempts: {reason}"), attempt
                )
                seen("gave_up")
            else:
                await msg.nack(delay=_backoff(attempt))
                seen("retried")
            return
        await msg.ack()
        seen("done")


async def _fail_then_term(msg: NatsMessage, work: Work[M], message: M, error: LakegateError, attempt: int) -> None:
    """Record the failure and term the message; when recording fails, try again on a later delivery."""
    try:
        await work.fail(message, error)
    except Exception:
        if attempt < MAX_DELIVER + RECORD_TRIES:
            log.exception("could not record the failure on %s; retrying", msg.raw_message.subject)
            await msg.nack(delay=BACKOFF[0])
            return
        log.exception("could not record the failure on %s; the message is dropped", msg.raw_message.subject)
    await msg.reject()


async def consume_batch(
    service: str,
    subscription: Subscription,
    messages: Sequence[Msg],
    *,
    ack_wait: float = ACK_WAIT,
    observe: Observer = _no_observer,
) -> None:
    """Settle a batch of `subscription`'s messages by the same policy, its work done once for all of them.

    Each message is read, counted and settled on its own (an unreadable one is termed, one past
    MAX_DELIVER is given up); the rest share one `run`, and with it its outcome: acked together,
    nacked together with backoff, or failed and termed together.
    """
    work, started = subscription.work, time.monotonic()
    assert isinstance(work, Batched), f"{subscription.title} takes one message at a time: see consume"

    def seen(outcome: str, attempt: int) -> None:
        observe(subscription.title, outcome, attempt, time.monotonic() - started)

    taken: list[tuple[Msg, Any, int]] = []
    for raw in messages:
        attempt = int(raw.metadata.num_delivered)
        try:
            taken.append((raw, work.parse(raw.subject, raw.data), attempt))
        except LakegateError as exc:
            log.error("dropping unreadable message on %s: %s", raw.subject, exc)
            await raw.term()
            seen("unreadable", attempt)
    died = [item for item in taken if item[2] > MAX_DELIVER]
    if died:
        error = gave_up(service, work.doing([m for _, m, _ in died]), max(a for _, _, a in died) - 1)
        log.error("giving up on %d messages of %s: %s", len(died), subscription.title, error)
        await _fail_batch_then_term(work, died, error, "gave_up", seen)
    live = [item for item in taken if item[2] <= MAX_DELIVER]
    if not live:
        return
    raws = [raw for raw, _, _ in live]

    async def in_progress() -> None:
        for raw in raws:
            await raw.in_progress()

    try:
        async with _beating(in_progress, ack_wait / 3):
            await work.run([m for _, m, _ in live])
    except TerminalError as exc:
        log.warning("terminal failure of %d messages of %s: %s", len(live), subscription.title, exc)
        await _fail_batch_then_term(work, live, exc, "terminal", seen)
        return
    except Exception as exc:
        if isinstance(exc, TransientError):
            log.warning("transient failure of %d messages of %s: %s", len(live), subscription.title, exc)
        else:
            log.exception("unexpected failure of %d messages of %s", len(live), subscription.title)
        spent = [item for item in live if item[2] >= MAX_DELIVER]
        if spent:
            reason = str(exc) if isinstance(exc, TransientError) else f"internal error ({type(exc).__name__})"
            given_up = TerminalError(f"gave up after {MAX_DELIVER} attempts: {reason}")
            await _fail_batch_then_term(work, spent, given_up, "gave_up", seen)
        for raw, _, attempt in live:
            if attempt < MAX_DELIVER:
                await raw.nak(delay=_backoff(attempt))
                seen("retried", attempt)
        return
    for raw, _, attempt in live:
        await raw.ack()
        seen("done", attempt)


async def _fail_batch_then_term(
    work: Batched[M],
    items: Sequence[tuple[Msg, M, int]],
    error: LakegateError,
    outcome: str,
    seen: Callable[[str, int], None],
) -> None:
    """`_fail_then_term` for a batch: record the failure once, then term each message (or retry recording it)."""
    try:
        await work.fail([m for _, m, _ in items], error)
    except Exception:
        log.exception("could not record the failure of %d messages; retrying those with deliveries left", len(items))
        for raw, _, attempt in items:
            if attempt < MAX_DELIVER + RECORD_TRIES:
                await raw.nak(delay=BACKOFF[0])
            else:
                await raw.term()
        return
    for raw, _, attempt in items:
        await raw.term()
        seen(outcome, attempt)


def subscribe(rt: Runtime, subscriptions: Sequence[Subscription], *, ack_wait: float = ACK_WAIT) -> None:
    """Register every subscription of the table on the runtime's broker as a durable pull consumer.

    The runtime keeps the table, so `ensure_consumers` can bring consumers made by an older
    version to these settings when the service starts.
    """
    for subscription in subscriptions:
        rt.subscriptions.append((subscription, ack_wait))
        if isinstance(subscription.work, Batched):
            rt.pullers.append(BatchPuller(rt.service, subscription, rt.inbox, ack_wait, rt.metrics.delivered))
            continue
        if subscription.workers > 1:
            rt.pullers.append(WorkPuller(rt.service, subscription, rt.inbox, ack_wait, rt.metrics.delivered))
            continue
        rt.broker.subscriber(
            subscription.subject,
            stream=JStream(subscription.stream, declare=False),
            durable=subscription.durable,
            config=durable_config(ack_wait),
            pull_sub=PullSub(batch_size=1, timeout=5.0),
            # FastStream would pull on `_INBOX.` whatever the connection's prefix; the user may read only its own.
            inbox_prefix=f"{rt.inbox}.".encode(),
            ack_policy=AckPolicy.MANUAL,
            title=subscription.title,
            description=subscription.description,
        )(_handler(rt.service, subscription, ack_wait, rt.metrics.delivered))


async def ensure_consumers(js: JetStreamContext, subscriptions: Sequence[tuple[Subscription, float]]) -> None:
    """Create or update each durable consumer with the policy's settings (an existing one keeps its place)."""
    for subscription, ack_wait in subscriptions:
        config = durable_config(ack_wait)
        config.durable_name = subscription.durable
        config.filter_subject = subscription.subject
        config.ack_policy = AckPolicyConfig.EXPLICIT
        await js.add_consumer(subscription.stream, config)


def _handler(
    service: str, subscription: Subscription, ack_wait: float, observe: Observer
) -> Callable[[NatsMessage], Awaitable[None]]:
    async def handle(msg: MessageParam) -> None:
        await consume(service, subscription, msg, ack_wait=ack_wait, observe=observe)

    return handle


class _Puller:
    """What both pull loops share: binding to the subscription's durable consumer, and one fetch."""

    def __init__(
        self, service: str, subscription: Subscription, inbox: str, ack_wait: float, observe: Observer
    ) -> None:
        self._service, self._subscription = service, subscription
        self._inbox, self._ack_wait, self._observe = inbox, ack_wait, observe
        self._task: asyncio.Task[None] | None = None
        self._pull: JetStreamContext.PullSubscription | None = None

    async def start(self, js: JetStreamContext) -> None:
        """Bind to the durable consumer (`ensure_consumers` made it) and start pulling."""
        self._pull = await js.pull_subscribe_bind(
            self._subscription.durable, self._subscription.stream, inbox_prefix=f"{self._inbox}.".encode()
        )
        self._task = asyncio.create_task(self._loop(self._pull), name=f"pull {self._subscription.title}")

    async def _loop(self, pull: JetStreamContext.PullSubscription) -> None:
        raise NotImplementedError

    async def _fetch(self, pull: JetStreamContext.PullSubscription, batch: int) -> list[Msg]:
        """Up to `batch` messages; none when nothing arrived or NATS is away (the messages stay in the stream)."""
        try:
            return await pull.fetch(batch, timeout=5.0)
        except TimeoutError:  # nothing arrived: nats-py raises asyncio's (or its own subclass of it)
            return []
        except Exception as exc:  # NATS away or reconnecting: the messages stay in the stream
            log.warning("could not fetch %s (%s); retrying", self._subscription.title, exc)
            await asyncio.sleep(1.0)
            return []


class BatchPuller(_Puller):
    """Takes a `Batched` subscription's messages in batches and settles them with `consume_batch`.

    Its own pull loop, not FastStream's batch subscriber: that one drops the messages it has
    gathered when nats-py's fetch times out between two partial fetches (it catches
    `nats.errors.TimeoutError`; nats-py raises `asyncio.TimeoutError` there), so they would come
    back only after the ack wait. Here a fetch returns what is pending as soon as one message is
    there; after each batch the loop pauses `linger` seconds, so the next fetch takes all that
    arrived meanwhile: at most one run of the work per `linger`, and a lone message is handled at
    once. A batch under way finishes when the service stops.
    """

    def __init__(
        self, service: str, subscription: Subscription, inbox: str, ack_wait: float, observe: Observer
    ) -> None:
        assert isinstance(subscription.work, Batched)
        super().__init__(service, subscription, inbox, ack_wait, observe)
        self._work = subscription.work
        self._settling = False

    async def stop(self) -> None:
        """Stop pulling; a batch being settled is settled first."""
        task, self._task = self._task, None
        if task is not None:
            if not self._settling:
                task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        if self._pull is not None:
            with contextlib.suppress(Exception):
                await self._pull.unsubscribe()

    async def _loop(self, pull: JetStreamContext.PullSubscription) -> None:
        while self._task is not None:
            messages = await self._fetch(pull, self._work.size)
            if not messages:
                continue
            self._settling = True
            try:
                await consume_batch(
                    self._service, self._subscription, messages, ack_wait=self._ack_wait, observe=self._observe
                )
            except Exception:  # an ack that did not go out: the message is redelivered after the ack wait
                log.exception("could not settle %d messages of %s", len(messages), self._subscription.title)
            finally:
                self._settling = False
            if self._task is None:
                return
            await asyncio.sleep(self._work.linger)


#: Seconds the deliveries under way may take to finish when a `WorkPuller` stops; the rest are
#: cancelled unsettled, so JetStream redelivers them after the ack wait (as after a crash).
STOP_GRACE = 30.0
_PROPAGATOR = TraceContextTextMapPropagator()


class WorkPuller(_Puller):
    """Works on up to `workers` deliveries of a `Work` subscription at once, each settled by `consume`.

    Its own pull loop, not FastStream's concurrent pull subscriber: that one fetches the next
    message while every worker is busy and holds it, without heartbeat, until one is free. Here a
    slot is taken first, then one message fetched for it, so each message this replica holds is
    being worked on (and kept in progress). Each delivery is a consumer span, a child of the
    publisher's trace context from the message headers.
    """

    def __init__(
        self, service: str, subscription: Subscription, inbox: str, ack_wait: float, observe: Observer
    ) -> None:
        assert isinstance(subscription.work, Work)
        super().__init__(service, subscription, inbox, ack_wait, observe)
        self._slots = asyncio.Semaphore(subscription.workers)
        self._running: set[asyncio.Task[None]] = set()
        self._tracer = trace.get_tracer(__name__)

    @property
    def running(self) -> int:
        """Deliveries being worked on now."""
        return len(self._running)

    async def stop(self, grace: float = STOP_GRACE) -> None:
        """Stop fetching; deliveries under way get `grace` seconds to finish, then are cancelled unsettled."""
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        if self._running:
            _, late = await asyncio.wait(set(self._running), timeout=grace)
            for running in late:
                running.cancel()
            if late:
                await asyncio.wait(late)
        if self._pull is not None:
            with contextlib.suppress(Exception):
                await self._pull.unsubscribe()

    async def _loop(self, pull: JetStreamContext.PullSubscription) -> None:
        while True:
            await self._slots.acquire()
            try:
                messages = await self._fetch(pull, 1)
            except BaseException:
                self._slots.release()
                raise
            if not messages:
                self._slots.release()
                continue
            task = asyncio.create_task(self._settle(messages[0]))
            self._running.add(task)
            task.add_done_callback(self._running.discard)

    async def _settle(self, raw: Msg) -> None:
        try:
            parent = _PROPAGATOR.extract(raw.headers) if raw.headers else None
            with self._tracer.start_as_current_span(
                f"{self._subscription.subject} process",
                context=parent,
                kind=trace.SpanKind.CONSUMER,
                attributes={"messaging.system": "nats", "messaging.destination.name": raw.subject},
            ):
                await consume(
                    self._service, self._subscription, _message(raw), ack_wait=self._ack_wait, observe=self._observe
                )
        except Exception:  # an ack that did not go out: the message is redelivered after the ack wait
            log.exception("could not settle a message of %s", self._subscription.title)
        finally:
            self._slots.release()


def _message(raw: Msg) -> NatsMessage:
    """The raw delivery as FastStream's message, which `consume` and the works read."""
    headers = raw.headers or {}
    return NatsMessageClass(raw_message=raw, body=raw.data, reply_to="", headers=headers, path={})
