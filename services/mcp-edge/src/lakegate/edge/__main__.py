"""`python -m lakegate.edge [--transport stdio|http]`: run the MCP edge until a signal or, on stdio, EOF.

On stdio, stdout carries the MCP protocol, so every log line goes to stderr.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import signal
import sys

import uvloop
from lakegate.common.logs import setup_logging
from lakegate.edge.app import SERVICE, http_app, serve
from lakegate.edge.config import EdgeSettings
from lakegate.edge.listener import listening
from pydantic import ValidationError

log = logging.getLogger("lakegate.edge")


async def run(settings: EdgeSettings) -> None:
    """Serve MCP on the configured transport until SIGTERM/SIGINT (or EOF on stdio); drain NATS last."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    session: asyncio.Task[None] | None = None
    async with serve(settings) as state:
        if settings.transport == "stdio":
            session = asyncio.create_task(state.server.run_stdio_async())
            await _until_stopped(session, stop)
            session.cancel()
            await asyncio.wait({session}, timeout=1.0)
        else:
            async with listening(
                http_app(state), settings.host, settings.port, grace_seconds=settings.shutdown_grace_seconds
            ) as listener:
                log.info("MCP over streamable HTTP at %s%s", listener.url, settings.path)
                await _until_stopped(listener.task, stop)
        log.info("edge stopping: draining NATS")
    if session is not None and not session.done():
        # Stopped by a signal while the client kept stdin open: the SDK reads stdin in a worker
        # thread no cancellation reaches, so nothing else would end the process. NATS is drained.
        log.info("stdin is still open; exiting without waiting for it")
        logging.shutdown()
        os._exit(0)


async def _until_stopped(task: asyncio.Task[None], stop: asyncio.Event) -> None:
    """Wait until `task` ends or a stop is asked for; a task that ended with an error raises it."""
    stopped = asyncio.create_task(stop.wait())
    try:
        await asyncio.wait({task, stopped}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        stopped.cancel()
    if task.done():
        task.result()


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m lakegate.edge", description="lakegate's MCP edge")
    parser.add_argument("--transport", choices=("http", "stdio"), help="overrides LAKEGATE_EDGE_TRANSPORT")
    args = parser.parse_args()
    try:
        settings = EdgeSettings(**({"transport": args.transport} if args.transport else {}))
    except ValidationError as exc:
        # Name each bad setting and why, without a traceback that buries it.
        problems = "; ".join(
            f"{'.'.join(map(str, e['loc'])) or 'settings'}: {e['msg'].removeprefix('Value error, ')}"
            for e in exc.errors()
        )
        sys.exit(f"lakegate edge: invalid settings: {problems}")
    setup_logging(SERVICE, settings.log_level, settings.log_format)
    uvloop.run(run(settings))


if __name__ == "__main__":
    main()
