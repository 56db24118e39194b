"""A stand-in for a lakegate service: a real process that reads the stack's environment like a service
does and answers the same probes, so the supervisor is tested without the real services.

It is ready only when what its environment points at is really there: NATS for every service, the
catalog database and its key for `catalog`, the lakehouse directory for `loader`, and it listens on
the MCP port as `edge`.

    python standin_service.py <service> [--ignore-sigterm] [--helper TOKEN]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import signal
import sys
from pathlib import Path

import asyncpg
import nats
from lakegate.common.health import health_server

HELPER = "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); time.sleep(600)"


def files_are_in_place(service: str) -> bool:
    """The stack made the files this service's environment points at."""
    if service == "catalog":
        return Path(os.environ["LAKEGATE_CATALOG_SECRET_KEY_FILE"]).is_file()
    if service == "loader":
        return (Path(os.environ["LAKEGATE_LOADER_HOME"]) / "lakehouse").is_dir()
    return True


async def environment_is_usable(service: str) -> bool:
    """The checks that prove the stack wired this service's environment correctly."""
    if service == "catalog":
        conn = await asyncpg.connect(os.environ["LAKEGATE_CATALOG_DATABASE_URL"])
        await conn.close()
    return files_are_in_place(service)


def _read(path: str) -> str:
    return Path(path).read_text(encoding="utf-8").strip()


async def main(service: str, ignore_sigterm: bool, helper: str | None) -> None:
    prefix = f"LAKEGATE_{service.upper()}_"
    # Logs in as the stack tells it to, the way every real service does (NatsSettings).
    password = _read(os.environ["LAKEGATE_NATS_PASSWORD_FILE"])
    nc = await nats.connect(
        os.environ["LAKEGATE_NATS_URL"],
        user=os.environ["LAKEGATE_NATS_USER"],
        password=password,
        inbox_prefix=f"_INBOX_{service}",
    )
    stop = asyncio.Event()
    if ignore_sigterm:
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
    else:
        asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
    if helper is not None:
        # A grandchild in the same process group that ignores SIGTERM, as a careless worker pool might.
        await asyncio.create_subprocess_exec(sys.executable, "-c", HELPER, helper)
    usable = await environment_is_usable(service)

    async def ready() -> bool:
        return usable and nc.is_connected

    async with contextlib.AsyncExitStack() as stack:
        if service == "edge":
            mcp = await asyncio.start_server(
                lambda _r, w: w.close(), os.environ["LAKEGATE_EDGE_HOST"], int(os.environ["LAKEGATE_EDGE_PORT"])
            )
            stack.push_async_callback(mcp.wait_closed)
            stack.callback(mcp.close)
        await stack.enter_async_context(
            health_server(os.environ[f"{prefix}HEALTH_HOST"], int(os.environ[f"{prefix}HEALTH_PORT"]), ready)
        )
        await stop.wait()
    await nc.drain()


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("service")
    parser.add_argument("--ignore-sigterm", action="store_true")
    parser.add_argument("--helper", metavar="TOKEN")
    args = parser.parse_args()
    asyncio.run(main(args.service, args.ignore_sigterm, args.helper))
