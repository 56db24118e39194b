"""The NATS broker every service uses, and the JetStream streams it relies on."""

from __future__ import annotations

import logging

from faststream.nats import NatsBroker
from faststream.nats.opentelemetry import NatsTelemetryMiddleware
from faststream.security import SASLPlaintext
from lakegate.common.metrics import ServiceMetrics
from lakegate.common.nats_users import inbox_prefix
from lakegate.common.settings import NatsSettings
from lakegate.common.subjects import StreamSpec, Topology
from nats.js import JetStreamContext
from nats.js.api import DiscardPolicy, RetentionPolicy, StorageType, StreamConfig
from nats.js.errors import BadRequestError, NotFoundError
from opentelemetry.sdk.trace import TracerProvider

log = logging.getLogger(__name__)

#: Largest staged part; the local NATS server is started with a max_payload at least this big.
MAX_PART_BYTES = 8 * 1024 * 1024


def create_broker(
    settings: NatsSettings,
    service: str,
    *,
    tracer_provider: TracerProvider | None = None,
    metrics: ServiceMetrics | None = None,
) -> NatsBroker:
    """A broker that reconnects forever, drains on stop, carries trace context in headers and counts reconnects."""
    return NatsBroker(
        settings.servers,
        name=f"lakegate-{service}",
        security=SASLPlaintext(username=settings.user, password=settings.password.get_secret_value())
        if settings.user and settings.password
        else None,
        # Replies to this service's requests come on an inbox only its own user may read.
        inbox_prefix=inbox_prefix(settings.user),
        max_reconnect_attempts=-1,
        reconnect_time_wait=1,
        graceful_timeout=30.0,
        middlewares=[NatsTelemetryMiddleware(tracer_provider=tracer_provider)],
        logger=logging.getLogger(f"lakegate.{service}.broker"),
        reconnected_cb=metrics.reconnected if metrics else None,
        disconnected_cb=metrics.disconnected if metrics else None,
    )


def _stream_config(spec: StreamSpec) -> StreamConfig:
    return StreamConfig(
        name=spec.name,
        subjects=list(spec.subjects),
        description=spec.description,
        retention=RetentionPolicy.WORK_QUEUE if spec.retention == "workqueue" else RetentionPolicy.LIMITS,
        storage=StorageType.FILE,
        max_age=spec.max_age_seconds,
        max_msg_size=MAX_PART_BYTES + 64 * 1024,
        discard=DiscardPolicy.OLD,
        duplicate_window=120.0,
    )


async def ensure_streams(js: JetStreamContext, topology: Topology) -> None:
    """Create or update every stream of the topology; safe to call from every service at start."""
    for spec in topology.streams:
        config = _stream_config(spec)
        try:
            await js.stream_info(spec.name)
        except NotFoundError:
            try:
                await js.add_stream(config)
                log.info("created stream %s", spec.name)
            except BadRequestError:  # another service created it first
                await js.update_stream(config)
        else:
            await js.update_stream(config)
