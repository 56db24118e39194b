"""A tiny HTTP server for liveness (`/healthz`) and readiness (`/readyz`) probes, and Prometheus (`/metrics`)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Awaitable, Callable

from lakegate.common.metrics import CONTENT_TYPE

log = logging.getLogger(__name__)

ReadyCheck = Callable[[], Awaitable[bool]]
Scrape = Callable[[], Awaitable[bytes]]


@contextlib.asynccontextmanager
async def health_server(
    host: str, port: int | None, ready: ReadyCheck, *, metrics: Scrape | None = None
) -> AsyncIterator[int | None]:
    """Serve the probes while the body runs; yields the bound port (None when disabled)."""
    if port is None:
        yield None
        return

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            request_line = (await asyncio.wait_for(reader.readline(), 5)).decode("latin-1")
            path = request_line.split(" ")[1] if request_line.count(" ") >= 2 else ""
            if path == "/metrics" and metrics is not None:
                text = await asyncio.wait_for(metrics(), 10)
                writer.write(
                    b"HTTP/1.1 200 OK\r\nContent-Type: "
                    + CONTENT_TYPE.encode()
                    + b"\r\nContent-Length: "
                    + str(len(text)).encode()
                    + b"\r\nConnection: close\r\n\r\n"
                    + text
                )
                return
            if path == "/healthz":
                ok = True
            elif path == "/readyz":
                try:
                    ok = await asyncio.wait_for(ready(), 5)
                except Exception:
                    ok = False
            else:
                writer.write(b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
                return
            body = b"ok\n" if ok else b"not ready\n"
            status = b"200 OK" if ok else b"503 Service Unavailable"
            writer.write(
                b"HTTP/1.1 "
                + status
                + b"\r\nContent-Type: text/plain\r\nContent-Length: "
                + str(len(body)).encode()
                + b"\r\nConnection: close\r\n\r\n"
                + body
            )
        except (TimeoutError, ConnectionError):
            pass
        finally:
            with contextlib.suppress(Exception):
                await writer.drain()
                writer.close()

    server = await asyncio.start_server(handle, host, port)
    bound = server.sockets[0].getsockname()[1]
    log.info("health probes on http://%s:%d/healthz and /readyz, metrics on /metrics", host, bound)
    try:
        yield bound
    finally:
        server.close()
        await server.wait_closed()
