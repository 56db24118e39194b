"""The one place that maps lakegate's errors to JetStream acknowledgements.

    success           → ack
    TransientError    → nack with backoff, until the consumer's max_deliver is spent
    TerminalError     → term (no redelivery) and `on_terminal` marks the run failed
    anything else     → treated as transient (a crash may be a passing fault), logged with traceback

While a handler works, `heartbeat` tells JetStream the message is in progress so a long step is
not redelivered to another replica.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Awaitable, Callable

from faststream.nats import NatsMessage
from lakegate.common.errors import LakegateError, TerminalError, TransientError
from nats.js.api import ConsumerConfig

log = logging.getLogger(__name__)

#: Seconds to wait before each redelivery of a transiently failed message.
BACKOFF: tuple[float, ...] = (1.0, 2.0, 5.0, 15.0, 30.0, 60.0)
MAX_DELIVER = 8
ACK_WAIT = 30.0


def delivery_count(msg: NatsMessage) -> int:
    """How many times JetStream has delivered this message (1 on the first try)."""
    return int(msg.raw_message.metadata.num_delivered)


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
    return ConsumerConfig(ack_wait=ack_wait, max_deliver=MAX_DELIVER)


async def settle(
    msg: NatsMessage,
    work: Callable[[], Awaitable[None]],
    *,
    on_terminal: Callable[[LakegateError], Awaitable[None]],
    max_deliver: int = MAX_DELIVER,
    ack_wait: float = ACK_WAIT,
) -> None:
    """Run `work` for a JetStream message and acknowledge it according to how it ended."""
    attempt = delivery_count(msg)
    try:
        async with heartbeat(msg, every=ack_wait / 3):
            await work()
    except TerminalError as exc:
        log.warning("terminal failure on %s: %s", msg.raw_message.subject, exc)
        await on_terminal(exc)
        await msg.reject()
        return
    except Exception as exc:
        error = exc if isinstance(exc, TransientError) else None
        if error is None:
            log.exception("unexpected failure on %s (attempt %d)", msg.raw_message.subject, attempt)
        else:
            log.warning("transient failure on %s (attempt %d): %s", msg.raw_message.subject, attempt, exc)
        if attempt >= max_deliver:
            reason = str(exc) if error else f"internal error ({type(exc).__name__}); the service log has details"
            await on_terminal(TerminalError(f"gave up after {attempt} attempts: {reason}"))
            await msg.reject()
        else:
            await msg.nack(delay=BACKOFF[min(attempt - 1, len(BACKOFF) - 1)])
        return
    await msg.ack()
