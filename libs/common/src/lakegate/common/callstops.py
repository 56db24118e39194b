"""Stopping a request its caller gave up on, even when the cancel comes before the request is taken up.

A request that may run long carries a `call_id`; a caller that gives up on it (its MCP request was
cancelled, its client went away) publishes `CancelCall` on `Topology.call_cancel(call_id)`. A
service that answers such requests keeps one `CallStops`, subscribed to every call's cancel subject
from before it serves, so no cancel is missed:

- a cancel for a call that runs stops it: the call's `Stop` runs its hooks (interrupt the engine,
  kill the query's process) and the handler's task is cancelled, so it answers `Cancelled`;
- a cancel for a call not started yet (queued behind others, still being checked, the request still
  in flight) is remembered for `REMEMBER_SECONDS`, at most `REMEMBER_MOST` ids, oldest forgotten
  first; a call that starts with a remembered id stops at once, having done nothing.

Work that runs in a thread sees its call's `Stop` (a context variable reaches `asyncio.to_thread`):
it calls `check_stopped()` between steps, registers hooks with `when_stopped`, and passes
`commit_point()` just before it commits. From then on a cancel is refused and the work finishes:
a call that was answered cancelled wrote nothing, and one that wrote was not stopped.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import logging
import threading
import time
from collections import OrderedDict
from collections.abc import AsyncIterator, Callable
from typing import TypeVar

from lakegate.common.contracts.rpc import CancelCall
from lakegate.common.errors import Cancelled
from lakegate.common.subjects import Topology
from nats.aio.client import Client as NatsClient
from nats.aio.msg import Msg
from nats.aio.subscription import Subscription
from pydantic import ValidationError

log = logging.getLogger(__name__)

T = TypeVar("T")

#: Seconds a cancel for a call that has not started is remembered: longer than a request waits in a
#: queue or in flight before it is taken up, short enough that the set stays small.
REMEMBER_SECONDS = 120.0
#: Most cancelled call ids remembered at once; past it the oldest are forgotten first.
REMEMBER_MOST = 10_000


class Stop:
    """One call's stop: asked for by its caller's cancel, refused once the work passed its commit point."""

    def __init__(self, what: str) -> None:
        self.what = what
        self._lock = threading.Lock()
        self._requested = False
        self._by_caller = False
        self._final = False
        self._hooks: list[Callable[[], None]] = []

    @property
    def requested(self) -> bool:
        """Whether the caller asked to stop, and the work had not passed its commit point."""
        return self._requested

    @property
    def by_caller(self) -> bool:
        """Whether the stop was asked for by the caller's cancel (not by a shutdown of the service)."""
        return self._by_caller

    def error(self) -> Cancelled:
        """What the call answers when it was stopped."""
        return Cancelled(f"{self.what} was stopped: its caller cancelled the request")

    def request(self, *, by_caller: bool = True) -> bool:
        """Ask the work to stop and run its hooks; False when it passed its commit point and will finish."""
        with self._lock:
            if self._final:
                return False
            self._by_caller = self._by_caller or by_caller
            if self._requested:
                return True
            self._requested = True
            hooks, self._hooks = self._hooks, []
        for hook in hooks:
            _run_hook(hook)
        return True

    def when_stopped(self, hook: Callable[[], None]) -> None:
        """Call `hook` when the work is asked to stop (now, if it already was)."""
        with self._lock:
            if not self._requested:
                self._hooks.append(hook)
                return
        _run_hook(hook)

    def check(self) -> None:
        """Raise `Cancelled` if the caller asked to stop."""
        if self._requested:
            raise self.error()

    def final(self) -> None:
        """Pass the commit point: raise `Cancelled` if a stop came first; refuse every later one."""
        with self._lock:
            if self._requested:
                raise self.error()
            self._final = True


def _run_hook(hook: Callable[[], None]) -> None:
    try:
        hook()
    except Exception:  # a hook that fails must not keep the others from running
        log.exception("stopping a cancelled call: a stop hook failed")


_CURRENT: contextvars.ContextVar[Stop | None] = contextvars.ContextVar("lakegate_call_stop", default=None)


def current_stop() -> Stop | None:
    """The stop of the call this code runs for; None outside `CallStops.stoppable`."""
    return _CURRENT.get()


def check_stopped() -> None:
    """Raise `Cancelled` if the current call's caller asked to stop (no-op outside a call)."""
    if (stop := _CURRENT.get()) is not None:
        stop.check()


def when_stopped(hook: Callable[[], None]) -> None:
    """Call `hook` when the current call is asked to stop (nothing outside a call)."""
    if (stop := _CURRENT.get()) is not None:
        stop.when_stopped(hook)


def commit_point() -> None:
    """The current call passes its commit point: `Cancelled` if it was stopped, else no stop is taken later."""
    if (stop := _CURRENT.get()) is not None:
        stop.final()


async def in_thread(fn: Callable[..., T], *args: object) -> T:
    """`fn(*args)` in a worker thread that the awaiting task does not outlive.

    When the task is cancelled, the current call is asked to stop (its hooks interrupt the work) and
    the task waits for the thread before it lets the cancel through, so a cancelled call answers only
    once its work has stopped, and the slot it held is free only then.
    """
    loop = asyncio.get_running_loop()
    context = contextvars.copy_context()
    future = loop.run_in_executor(None, lambda: context.run(fn, *args))
    try:
        return await asyncio.shield(future)
    except asyncio.CancelledError:
        if (stop := _CURRENT.get()) is not None:
            stop.request(by_caller=False)
        with contextlib.suppress(BaseException):
            await asyncio.wait({future})
            future.exception()  # retrieved, so it is not reported as never retrieved
        raise


class CallStops:
    """A service's record of cancelled calls: stops the running ones, remembers the ones still to come."""

    def __init__(
        self,
        topology: Topology,
        *,
        remember_seconds: float = REMEMBER_SECONDS,
        remember_most: int = REMEMBER_MOST,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._topology = topology
        self._remember_seconds = remember_seconds
        self._remember_most = remember_most
        self._clock = clock
        self._cancelled: OrderedDict[str, float] = OrderedDict()  # call id → when it is forgotten
        self._running: dict[str, list[tuple[Stop, asyncio.Task[object]]]] = {}
        self._subscription: Subscription | None = None
        self._began: asyncio.Condition | None = None  # made on first use, in the loop that uses it

    async def listen(self, connection: NatsClient) -> None:
        """Subscribe to every call's cancel subject (before the service serves, so none is missed)."""
        if self._subscription is None:
            self._subscription = await connection.subscribe(self._topology.call_cancel("*"), cb=self._heard)

    async def _heard(self, msg: Msg) -> None:
        try:
            call_id = CancelCall.model_validate_json(msg.data).call_id
        except ValidationError:
            call_id = msg.subject.rsplit(".", 1)[-1]
        self.cancel(call_id)

    def cancel(self, call_id: str) -> None:
        """The caller gave up on `call_id`: stop it if it runs, and remember it in case it has not started."""
        self._remember(call_id)
        for stop, task in self._running.get(call_id, ()):
            if stop.request():
                task.cancel()
            else:
                log.info("%s was past its commit point when its caller cancelled it: it finishes", stop.what)

    def was_cancelled(self, call_id: str) -> bool:
        """Whether a cancel for `call_id` came within the last `remember_seconds`."""
        self._forget_expired()
        return call_id in self._cancelled

    def is_running(self, call_id: str) -> bool:
        """Whether a call with this id runs now."""
        return bool(self._running.get(call_id))

    async def running(self, call_id: str) -> None:
        """Wait until a call with this id runs (for tests that cancel work midway, and for probes)."""
        began = self._condition()
        async with began:
            await began.wait_for(lambda: self.is_running(call_id))

    def _condition(self) -> asyncio.Condition:
        if self._began is None:
            self._began = asyncio.Condition()
        return self._began

    @property
    def remembered(self) -> int:
        """How many cancelled call ids are remembered now."""
        self._forget_expired()
        return len(self._cancelled)

    def _remember(self, call_id: str) -> None:
        self._forget_expired()
        self._cancelled[call_id] = self._clock() + self._remember_seconds
        self._cancelled.move_to_end(call_id)
        while len(self._cancelled) > self._remember_most:
            self._cancelled.popitem(last=False)

    def _forget_expired(self) -> None:
        now = self._clock()
        while self._cancelled:
            oldest, expires = next(iter(self._cancelled.items()))
            if expires > now:
                return
            del self._cancelled[oldest]

    @contextlib.asynccontextmanager
    async def stoppable(self, call_id: str | None, what: str) -> AsyncIterator[Stop]:
        """Run the enclosed work until its caller cancels `call_id`; then raise `Cancelled`, after the
        work's own cleanup ran. A call whose cancel came first stops before any work. Without a
        `call_id` nothing can cancel it, but the work still sees a `Stop` (a shutdown asks it to stop)."""
        stop = Stop(what)
        task = asyncio.current_task()
        if call_id is not None and self.was_cancelled(call_id):
            log.info("%s stopped before it began (call %s): its caller had cancelled the request", what, call_id)
            raise Cancelled(f"{what} was stopped: its caller had cancelled it before it began")
        entry: tuple[Stop, asyncio.Task[object]] | None = None
        if call_id is not None and task is not None:
            entry = (stop, task)
            self._running.setdefault(call_id, []).append(entry)
            began = self._condition()
            async with began:
                began.notify_all()
        token = _CURRENT.set(stop)
        try:
            yield stop
        except asyncio.CancelledError:
            if not stop.by_caller or task is None or entry is None:
                raise
            task.uncancel()
            log.info("%s stopped (call %s): its caller cancelled the request", what, call_id)
            raise stop.error() from None
        finally:
            _CURRENT.reset(token)
            if entry is not None and call_id is not None:
                running = self._running.get(call_id, [])
                if entry in running:
                    running.remove(entry)
                if not running:
                    self._running.pop(call_id, None)
