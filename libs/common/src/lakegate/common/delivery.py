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
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Generic, TypeVar

from faststream import AckPolicy
from faststream.nats import JStream, NatsMessage, PullSub
from faststream.nats.annotations import NatsMessage as MessageParam
from lakegate.common.errors import InvalidInput, LakegateError, TerminalError, TransientError
from lakegate.common.logs import log_context
from nats.js import JetStreamContext
from nats.js.api import AckPolicy as AckPolicyConfig
from nats.js.api import ConsumerConfig
from pydantic import BaseModel, ValidationError

if TYPE_CHECKING:
    from lakegate.common.service import Runtime

log = logging.getLogger(__name__)

#: Seconds to wait before each redelivery of a transiently failed message.
BACKOFF: tuple[float, ...] = (1.0, 2.0, 5.0, 15.0, 30.0, 60.0)
#: Deliveries a message gets to do its work.
MAX_DELIVER = 8
#: Deliveries past MAX_DELIVER that only record the failure (a process that died every time).
RECORD_TRIES = 3
ACK_WAIT = 30.0

M = TypeVar("M")
B = TypeVar("B", bound=BaseModel)


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
class Subscription:
    """One durable JetStream consumer of a service, as its `app.py` table lists it."""

    subject: str
    stream: str
    durable: str
    title: str
    description: str
    work: Work[Any]


def parsed(model: type[B]) -> Callable[[NatsMessage], B]:
    """A `Work.parse` that reads the body as `model`, naming the subject and model when it cannot."""

    def parse(msg: NatsMessage) -> B:
        try:
            return model.model_validate_json(msg.body)
        except ValidationError as exc:
            raise InvalidInput(
                f"message on {msg.raw_message.subject} is not a valid {model.__name__}: {exc}; the sender must be fixed"
            ) from None

    return parse


@contextlib.asynccontextmanager
async def heartbeat(msg: NatsMessage, every: float = ACK_WAIT / 3) -> AsyncIterator[None]:
    """Keep the message in progress while the body runs."""

    async def beat() -> None:
        while True:
            await asyncio.sleep(every)
            with contextlib.suppress(Exception):
                await msg.in_progress()

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
                await msg.nack(delay=BACKOFF[min(attempt - 1, len(BACKOFF) - 1)])
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


def subscribe(rt: Runtime, subscriptions: Sequence[Subscription], *, ack_wait: float = ACK_WAIT) -> None:
    """Register every subscription of the table on the runtime's broker as a durable pull consumer.

    The runtime keeps the table, so `ensure_consumers` can bring consumers made by an older
    version to these settings when the service starts.
    """
    for subscription in subscriptions:
        rt.subscriptions.append((subscription, ack_wait))
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
