"""An edge's own cost per tool call, without HTTP sockets: `python -m bench.inprocess [--call list_sources]`.

Starts a whole `Stack` in a temporary home, then serves a second edge inside this process, with
the stack edge's settings (its NATS user, keys and tenant), and calls its ASGI app directly: one
`tools/call` POST at a time, `--calls` times. Each call's CPU time (`time.process_time`, so a
preempted moment costs nothing) is the edge's whole work for it: the Starlette app, the JSON
exchange, the SDK's runner and middleware, the tool, the NATS request and reply, the audit record.
Then `--profiled` more calls run under cProfile, which counts the Python function calls per tool
call: a figure that does not move with the machine's load, unlike every timing. The CPU time of a
fixed Python loop (`bench.edge.reference_us`) is printed beside the timings. Measurement only.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import cProfile
import json
import os
import pstats
import tempfile
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import uvloop
from lakegate.devstack.stack import Stack, StackConfig, StackPorts
from lakegate.edge.app import http_app, serve
from lakegate.edge.config import EdgeSettings
from starlette.types import ASGIApp, Message

from bench.edge import CALLS, reference_us


def _stack_edge_environment(pid: int) -> dict[str, str]:
    """The `LAKEGATE_*` settings the stack gave its edge, but its ports."""
    pairs = (item.split("=", 1) for item in Path(f"/proc/{pid}/environ").read_bytes().decode().split("\0") if item)
    return {
        key: value
        for key, value in pairs
        if key.startswith("LAKEGATE_") and key not in {"LAKEGATE_EDGE_PORT", "LAKEGATE_EDGE_HEALTH_PORT"}
    }


@contextlib.asynccontextmanager
async def _running(app: ASGIApp) -> AsyncIterator[None]:
    """The app's lifespan (the SDK's session manager runs in it)."""
    events: asyncio.Queue[Message] = asyncio.Queue()
    started = asyncio.Event()

    async def send(message: Message) -> None:
        if message["type"] == "lifespan.startup.complete":
            started.set()

    await events.put({"type": "lifespan.startup"})
    life = asyncio.ensure_future(app({"type": "lifespan", "asgi": {"version": "3.0"}, "state": {}}, events.get, send))
    await started.wait()
    try:
        yield
    finally:
        await events.put({"type": "lifespan.shutdown"})
        await asyncio.wait_for(life, 10)


async def _post(app: ASGIApp, body: bytes, port: int) -> bytes:
    """One POST of `body` to the app, as if to 127.0.0.1:`port`; the answer's body."""
    headers = [
        (b"host", f"127.0.0.1:{port}".encode()),
        (b"content-type", b"application/json"),
        (b"accept", b"application/json, text/event-stream"),
        (b"content-length", str(len(body)).encode()),
    ]
    scope: dict[str, Any] = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": "/mcp",
        "raw_path": b"/mcp",
        "query_string": b"",
        "root_path": "",
        "headers": headers,
        "client": ("127.0.0.1", 50000),
        "server": ("127.0.0.1", port),
    }
    answered = asyncio.Event()
    sent = False
    out: list[Message] = []

    async def receive() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        await answered.wait()
        return {"type": "http.disconnect"}

    async def send(message: Message) -> None:
        out.append(message)
        if message["type"] == "http.response.body" and not message.get("more_body"):
            answered.set()

    await app(scope, receive, send)
    answered.set()
    if out[0]["status"] != 200:
        raise SystemExit(f"the edge answered {out[0]['status']}: {out[-1].get('body', b'')[:300]!r}")
    return bytes(out[-1].get("body", b""))


async def measure(
    settings: EdgeSettings, call: dict[str, Any], calls: int, profiled: int, stats_path: Path | None = None
) -> dict[str, Any]:
    """CPU per call (p10, p50, p90 in ms) and Python function calls per call."""
    body = json.dumps({"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": call}).encode()
    async with serve(settings) as state:
        await state.link.ready()
        app = http_app(state)
        async with _running(app):
            for _ in range(50):  # warm up: imports, caches, the first audit batch
                await _post(app, body, settings.port)
            times = []
            for _ in range(calls):
                began = time.process_time()
                await _post(app, body, settings.port)
                times.append(time.process_time() - began)
            profile = cProfile.Profile(time.process_time)  # on-CPU time: a wait for NATS costs nothing
            profile.enable()
            for _ in range(profiled):
                await _post(app, body, settings.port)
            profile.disable()
    times.sort()

    def at(share: float) -> float:
        return round(1000 * times[int(share * (len(times) - 1))], 3)

    stats = pstats.Stats(profile)
    if stats_path is not None:
        stats.dump_stats(stats_path)
    return {
        "cpu_ms_per_call": {"p10": at(0.1), "p50": at(0.5), "p90": at(0.9)},
        "python_calls_per_call": round(stats.total_calls / profiled),  # type: ignore[attr-defined]
    }


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.inprocess", description=__doc__.split("\n")[0])
    parser.add_argument("--call", default="list_sources", choices=sorted(CALLS))
    parser.add_argument("--calls", type=int, default=500, help="timed calls, one at a time")
    parser.add_argument("--profiled", type=int, default=200, help="calls counted under cProfile")
    parser.add_argument("--stats", type=Path, help="also write the cProfile statistics here (pstats format)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="lakegate-inprocess-") as home:
        env = {"LAKEGATE_LOG_LEVEL": "WARNING"}
        with Stack(StackConfig(home=Path(home), ports=StackPorts.free(), env=env)) as stack:
            os.environ.update(_stack_edge_environment(stack.supervisor.pid("edge")))
            settings = EdgeSettings(health_port=None)
            before = reference_us()
            figure = uvloop.run(measure(settings, CALLS[args.call], args.calls, args.profiled, args.stats))
    cpu = figure["cpu_ms_per_call"]
    print(
        f"{args.call}: CPU ms per call p10 {cpu['p10']} p50 {cpu['p50']} p90 {cpu['p90']}, "
        f"{figure['python_calls_per_call']} Python function calls per call (reference loop {before:.0f} us)"
    )


if __name__ == "__main__":
    main()
