"""How a lakegate service process runs: connect, declare streams, serve, drain on a signal.

Each service's `app.py` has an async context manager `serve(settings)` that builds its state,
registers its handlers on a broker and yields while the broker runs. `run_service` runs that until
SIGTERM or SIGINT, the same way under `make up`, Docker and Kubernetes. Tests enter `serve(...)`
directly, in process.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass, field
from typing import Any

import uvloop
from faststream.nats import NatsBroker
from lakegate.common.broker import create_broker, ensure_streams
from lakegate.common.callstops import CallStops
from lakegate.common.delivery import BatchPuller, Subscription, WorkPuller, ensure_consumers
from lakegate.common.garbage import settle_garbage_collection
from lakegate.common.health import health_server
from lakegate.common.logs import setup_logging
from lakegate.common.metrics import ServiceMetrics
from lakegate.common.nats_users import inbox_prefix
from lakegate.common.responder import Responder
from lakegate.common.rpc import RpcClient
from lakegate.common.settings import ServiceSettings
from lakegate.common.subjects import Topology
from lakegate.common.telemetry import setup_telemetry

log = logging.getLogger(__name__)

#: How long the requests under way may take to finish when a service stops (FastStream's graceful timeout).
REQUEST_GRACE_SECONDS = 30.0


@dataclass(frozen=True)
class Runtime:
    """What every service gets from the platform: its broker, subjects, an RPC client and its request subjects."""

    service: str
    broker: NatsBroker
    topology: Topology
    rpc: RpcClient
    metrics: ServiceMetrics
    #: The request/reply subjects the service answers, on core NATS (`lakegate.common.responder`).
    requests: Responder
    #: Where replies to this service come: the inbox only its NATS user may read.
    inbox: str = "_INBOX"
    #: The JetStream subscriptions `delivery.subscribe` registered, with their ack wait.
    subscriptions: list[tuple[Subscription, float]] = field(default_factory=list)
    #: The subscriptions among them taken in batches or several at a time, each by its own pull loop.
    pullers: list[BatchPuller | WorkPuller] = field(default_factory=list)
    #: Cancelled calls (`callcancel.*`), heard from before serving when `answers_cancels`; else unused.
    stops: CallStops | None = None

    async def scrape(self) -> bytes:
        """`/metrics`: the service's metrics, with each consumer's lag read from JetStream now."""
        js = self.broker.connection.jetstream()
        for subscription, _ in self.subscriptions:
            with contextlib.suppress(Exception):  # a scrape while NATS is away still shows the rest
                info = await js.consumer_info(subscription.stream, subscription.durable, timeout=2.0)
                self.metrics.lag(subscription.title, info.num_pending or 0, info.num_ack_pending or 0)
        return self.metrics.render()

    @property
    def call_stops(self) -> CallStops:
        """The record of cancelled calls; only a runtime made with `answers_cancels` has one."""
        if self.stops is None:
            raise RuntimeError(f"the {self.service} runtime was made without answers_cancels")
        return self.stops


def runtime(service: str, settings: ServiceSettings, *, answers_cancels: bool = False) -> Runtime:
    """A broker with telemetry, not yet connected; register handlers on it, then `started(...)`.

    With `answers_cancels`, the service stops calls their callers cancel (`Runtime.call_stops`).
    """
    tracer_provider = setup_telemetry(service, settings.telemetry)
    metrics = ServiceMetrics(service)
    broker = create_broker(settings.nats, service, tracer_provider=tracer_provider, metrics=metrics)
    # A CLIENT span per request only when spans are exported; the trace context travels either way.
    traced = settings.telemetry.chosen != "none"
    rpc = RpcClient(broker, settings.nats.request_timeout, traced=traced)
    topology = settings.nats.topology
    requests = Responder(tracer_provider.get_tracer("lakegate.common.responder"), traced=traced)
    stops = CallStops(topology) if answers_cancels else None
    return Runtime(service, broker, topology, rpc, metrics, requests, inbox_prefix(settings.nats.user), stops=stops)


@contextlib.asynccontextmanager
async def started(rt: Runtime, settings: ServiceSettings) -> AsyncIterator[int | None]:
    """Connect, make sure the streams exist, start the subscribers and the probes; drain on exit.

    Yields the health port (None when probes are off); it serves `/metrics` too.
    """
    await rt.broker.connect()

    async def ready() -> bool:
        return bool(rt.broker.connection.is_connected)

    try:
        await ensure_streams(rt.broker.connection.jetstream(), rt.topology)
        await ensure_consumers(rt.broker.connection.jetstream(), rt.subscriptions)
        if rt.stops is not None:
            await rt.stops.listen(rt.broker.connection)  # before serving, so no cancel is missed
        await rt.broker.start()
        await rt.requests.start(rt.broker.connection)
        for puller in rt.pullers:
            await puller.start(rt.broker.connection.jetstream())
        # A round trip to the server, so every subscription is in place before anyone is told we are ready.
        await rt.broker.connection.flush()
        async with health_server(settings.health_host, settings.health_port, ready, metrics=rt.scrape) as port:
            log.info("%s started", rt.service)
            yield port
    finally:
        # Requests first: those under way finish while the broker still carries their replies and publishes.
        await rt.requests.stop(REQUEST_GRACE_SECONDS)
        for puller in rt.pullers:
            await puller.stop()
        await rt.broker.stop()
        log.info("%s stopped", rt.service)


def run_service(service: str, settings: ServiceSettings, serve: Callable[[], AbstractAsyncContextManager[Any]]) -> None:
    """Run `serve()` until SIGTERM or SIGINT, on uvloop."""
    setup_logging(service, settings.log_level, settings.log_format)

    async def main() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        async with serve():
            settle_garbage_collection()
            await stop.wait()
            log.info("%s stopping: draining NATS", service)

    uvloop.run(main())
