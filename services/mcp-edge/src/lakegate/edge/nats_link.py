"""The edge's link to NATS, made in the background so that MCP is served from the first moment.

An MCP client starts the stdio edge with whatever environment it has (often none of lakegate's
settings), and waits for its answer to `initialize`. So the edge answers at once and connects to
NATS beside it: `NatsLink.running()` connects (the broker retries for ever), and while it is not
connected, probes every server of `LAKEGATE_NATS_URL` with a TCP connection so that the log on
stderr says why NATS cannot be reached. A tool call made before the link is up waits for it a
little (`ready`), then fails with a message that names the URL, the setting and what to do.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
from collections.abc import AsyncIterator
from urllib.parse import urlsplit

from lakegate.common.errors import Unavailable
from lakegate.common.service import Runtime, started
from lakegate.common.settings import ServiceSettings

log = logging.getLogger(__name__)

#: How long a tool call waits for a link that is still being made before it fails.
READY_WAIT_SECONDS = 5.0
#: Seconds between probes of an unreachable NATS, and between repeated warnings about it.
PROBE_PAUSE_SECONDS = 2.0
WARN_EVERY_SECONDS = 30.0


def public_url(url: str) -> str:
    """A NATS URL without the user name and password it may carry."""
    parts = urlsplit(url if "://" in url else f"nats://{url}")
    host = parts.hostname or "?"
    shown = f"[{host}]" if ":" in host else host
    return f"{parts.scheme}://{shown}:{parts.port or 4222}"


class NatsLink:
    """Connects the runtime's broker in the background and tells tool calls whether it is up."""

    def __init__(self, rt: Runtime, settings: ServiceSettings) -> None:
        self._rt, self._settings = rt, settings
        #: This process's name among the edge's processes and replicas (random, 64 bits, made at start): what
        #: one holds in memory for a client (a password page) is asked of it on subjects naming it.
        self.instance = secrets.token_hex(8)
        self._up = asyncio.Event()
        self._reason = "still connecting"
        self.health_port: int | None = None

    @property
    def urls(self) -> str:
        return ", ".join(public_url(url) for url in self._settings.nats.servers)

    @property
    def connected(self) -> bool:
        try:
            return self._up.is_set() and bool(self._rt.broker.connection.is_connected)
        except Exception:
            return False

    def unreachable(self) -> Unavailable:
        """The error of a tool call made while NATS cannot be reached."""
        return Unavailable(
            f"lakegate cannot reach NATS at {self.urls} (LAKEGATE_NATS_URL): {self._reason}. Start the stack "
            "(`make up`, or `python -m lakegate.devstack up`), or set LAKEGATE_NATS_URL in the environment the "
            "MCP client starts the edge with to the address of a running NATS server, then retry"
        )

    async def ready(self, timeout: float = READY_WAIT_SECONDS) -> None:
        """Return once the link is up; raise `unreachable()` if it is not within `timeout`."""
        if self.connected:
            return
        try:
            await asyncio.wait_for(self._up.wait(), timeout)
        except TimeoutError:
            raise self.unreachable() from None

    @contextlib.asynccontextmanager
    async def running(self) -> AsyncIterator[NatsLink]:
        """Connect in the background while the body runs; drain NATS on exit if it was connected."""
        stop = asyncio.Event()
        link = asyncio.create_task(self._hold(stop), name="nats-link")
        probe = asyncio.create_task(self._probe(), name="nats-probe")
        try:
            yield self
        finally:
            probe.cancel()
            stop.set()
            if not self._up.is_set():
                link.cancel()  # still trying to connect: nothing to drain
            await asyncio.gather(link, probe, return_exceptions=True)

    async def _hold(self, stop: asyncio.Event) -> None:
        try:
            async with started(self._rt, self._settings) as health_port:
                self.health_port = health_port
                self._up.set()
                log.info("connected to NATS at %s", self.urls)
                await stop.wait()
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # e.g. JetStream is not enabled on that server
            self._reason = f"{type(exc).__name__}: {exc}"
            log.error("cannot use NATS at %s (LAKEGATE_NATS_URL): %s", self.urls, self._reason)

    async def _probe(self) -> None:
        # The broker retries quietly; say on stderr why it cannot connect, now and then.
        loop = asyncio.get_running_loop()
        warned_at: float | None = None
        while not self._up.is_set():
            reason = await self._try_servers()
            if reason is not None and not self._up.is_set():
                self._reason = reason
                if warned_at is None or loop.time() - warned_at >= WARN_EVERY_SECONDS:
                    log.warning(
                        "cannot reach NATS at %s (LAKEGATE_NATS_URL): %s; tools fail until it is reachable, retrying",
                        self.urls,
                        reason,
                    )
                    warned_at = loop.time()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._up.wait(), PROBE_PAUSE_SECONDS)

    async def _try_servers(self) -> str | None:
        """None when a server accepts a TCP connection, else why none did."""
        reasons = []
        for url in self._settings.nats.servers:
            parts = urlsplit(url if "://" in url else f"nats://{url}")
            try:
                async with asyncio.timeout(2.0):
                    _, writer = await asyncio.open_connection(parts.hostname or "127.0.0.1", parts.port or 4222)
            except (OSError, TimeoutError) as exc:
                reasons.append(f"{public_url(url)}: {_why(exc)}")
                continue
            writer.close()
            with contextlib.suppress(OSError):
                await writer.wait_closed()
            return None
        return "; ".join(reasons)


def _why(exc: BaseException) -> str:
    if isinstance(exc, TimeoutError):
        return "no answer within 2s"
    if isinstance(exc, ConnectionRefusedError):
        return "connection refused (nothing listens on that port)"
    return getattr(exc, "strerror", None) or str(exc) or type(exc).__name__
