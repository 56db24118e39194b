"""`python -m lakegate.edge [--transport stdio|http]`: run the MCP edge until a signal or, on stdio, EOF.

On stdio, stdout carries the MCP protocol, so every log line goes to stderr.

With `LAKEGATE_EDGE_PROCESSES=N` (HTTP only) the process forks N-1 more before it starts anything;
each binds its own socket to the port with SO_REUSEPORT, so the kernel spreads connections across
them, and each has its own NATS connection and audit trail. The first process alone serves the
health port. It forwards a stop signal to the others and waits for them; if one of them ends, it
stops the rest, so a supervisor sees the edge fail instead of serving with fewer processes.

Once the server and its HTTP app are built, the garbage collector is settled as in every service
(`lakegate.common.garbage`): what start-up made is frozen out of its sight.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import ctypes
import logging
import os
import signal
import socket
import sys
import threading

import uvloop
from lakegate.common.garbage import settle_garbage_collection
from lakegate.common.logs import setup_logging
from lakegate.edge.app import SERVICE, http_app, serve
from lakegate.edge.config import EdgeSettings
from lakegate.edge.listener import bind, listening
from pydantic import ValidationError

log = logging.getLogger("lakegate.edge")

PR_SET_PDEATHSIG = 1


async def run(settings: EdgeSettings, *, workers: tuple[int, ...] = ()) -> None:
    """Serve MCP on the configured transport until SIGTERM/SIGINT (or EOF on stdio); drain NATS last.

    `workers` are the pids of the other serving processes: one that ends stops this one too.
    """
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    if workers:  # uvloop keeps SIGCHLD for itself, so a thread waits for the forked processes
        threading.Thread(target=_stop_when_a_worker_ends, args=(loop, stop), daemon=True).start()
    session: asyncio.Task[None] | None = None
    async with serve(settings) as state:
        if settings.transport == "stdio":
            settle_garbage_collection()
            session = asyncio.create_task(state.server.run_stdio_async())
            await _until_stopped(session, stop)
            session.cancel()
            await asyncio.wait({session}, timeout=1.0)
        else:
            async with listening(
                http_app(state),
                settings.host,
                settings.port,
                grace_seconds=settings.shutdown_grace_seconds,
                reuse_port=settings.processes > 1,
                access_log=settings.access_log,
            ) as listener:
                settle_garbage_collection()  # with the HTTP app's objects, built just now
                log.info("MCP over streamable HTTP at %s%s", listener.url, settings.path)
                await _until_stopped(listener.task, stop)
        log.info("edge stopping: draining NATS")
    if session is not None and not session.done():
        # Stopped by a signal while the client kept stdin open: the SDK reads stdin in a worker
        # thread no cancellation reaches, so nothing else would end the process. NATS is drained.
        log.info("stdin is still open; exiting without waiting for it")
        logging.shutdown()
        os._exit(0)


def _stop_when_a_worker_ends(loop: asyncio.AbstractEventLoop, stop: asyncio.Event) -> None:
    with contextlib.suppress(ChildProcessError):
        pid, status = os.wait()
        log.warning("edge process %d ended (status %d): stopping the edge", pid, status)
        loop.call_soon_threadsafe(stop.set)


def _fork_workers(settings: EdgeSettings) -> tuple[EdgeSettings, tuple[int, ...], socket.socket]:
    """Fork `settings.processes - 1` serving processes (which never return from here).

    Returns the settings with the port resolved, the pids, and a socket holding the port.
    """
    # Hold the port (a port 0 is picked here, once, for all of them) until the first process binds it too.
    held = bind(settings.host, settings.port, reuse_port=True, listen=False)
    settings = settings.model_copy(update={"port": held.getsockname()[1]})
    pids: list[int] = []
    for _ in range(settings.processes - 1):
        pid = os.fork()
        if pid == 0:
            held.close()
            _die_with_parent()
            uvloop.run(run(settings.model_copy(update={"health_port": None})))
            logging.shutdown()
            os._exit(0)
        pids.append(pid)
    return settings, tuple(pids), held


def _die_with_parent() -> None:
    # Linux: a forked process gets SIGTERM when the first one dies, even by SIGKILL.
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)


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
    if settings.transport != "http" or settings.processes == 1:
        uvloop.run(run(settings))
        return
    settings, workers, held = _fork_workers(settings)
    try:
        uvloop.run(run(settings, workers=workers))
    finally:
        for pid in workers:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGTERM)
        for pid in workers:
            with contextlib.suppress(ChildProcessError):
                os.waitpid(pid, 0)
        held.close()


if __name__ == "__main__":
    main()
