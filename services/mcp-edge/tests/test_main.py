"""`python -m lakegate.edge`: the process an MCP client or an operator starts, over stdio or HTTP."""

from __future__ import annotations

import asyncio
import os
import re
import signal
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import TYPE_CHECKING

from lakegate.common.settings import NatsSettings
from lakegate.devstack.ports import free_port
from lakegate.edge.scopes import TOOL_SCOPES
from mcp import Client, StdioServerParameters
from mcp.client.stdio import stdio_client

if TYPE_CHECKING:
    from conftest import Fakes


def edge_env(nats_settings: NatsSettings, tenant_id: str, **extra: str) -> dict[str, str]:
    return {
        "LAKEGATE_NATS_URL": nats_settings.url,
        "LAKEGATE_NATS_PREFIX": nats_settings.prefix,
        "LAKEGATE_EDGE_DEFAULT_TENANT": tenant_id,
        **extra,
    }


@asynccontextmanager
async def edge_process(env: dict[str, str], *args: str) -> AsyncIterator[asyncio.subprocess.Process]:
    """Start the edge as its own process; kill it if a test leaves it running."""
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "lakegate.edge",
        *args,
        env={**os.environ, **env},
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        yield process
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()


async def stderr_until(process: asyncio.subprocess.Process, pattern: str) -> re.Match[str]:
    """Read the process's log lines until one matches."""
    assert process.stderr is not None
    async with asyncio.timeout(30):
        while line := (await process.stderr.readline()).decode():
            if match := re.search(pattern, line):
                return match
    raise AssertionError(f"the edge exited without logging {pattern!r}")


def stdio_edge(env: dict[str, str]) -> StdioServerParameters:
    """The edge run as a child process serving MCP over stdio, with `env` as its whole environment."""
    return StdioServerParameters(command=sys.executable, args=["-m", "lakegate.edge", "--transport", "stdio"], env=env)


async def test_over_stdio_the_tools_answer_and_the_logs_go_to_stderr(
    nats_settings: NatsSettings, tenant_id: str, fakes: Fakes, tmp_path: Path
) -> None:
    server = stdio_edge(edge_env(nats_settings, tenant_id))
    stderr = tmp_path / "edge.stderr"
    with stderr.open("w") as errlog:
        async with Client(stdio_client(server, errlog=errlog)) as client:
            tools = await client.list_tools()
            result = await client.call_tool("query_sql", {"sql": "SELECT id FROM shop_orders"})

    assert {tool.name for tool in tools.tools} == set(TOOL_SCOPES)  # stdio acts for a local admin
    assert result.structured_content is not None
    assert result.structured_content["row_count"] == 2
    assert [query.tenant_id for query in fakes.loader.queries] == [tenant_id]
    logs = stderr.read_text()
    assert "edge started" in logs
    assert "edge stopped" in logs


async def test_over_stdio_in_the_handshake_era_resources_list_changed_is_claimed_and_sent_after_connect_postgres(
    nats_settings: NatsSettings, tenant_id: str, fakes: Fakes, seal_public_key: str
) -> None:
    # The edge seals the password for the extractor: without the public key it registers nothing.
    server = stdio_edge(edge_env(nats_settings, tenant_id, LAKEGATE_EDGE_SEAL_PUBLIC_KEY=seal_public_key))
    changed = asyncio.Event()

    async def on_message(message: object) -> None:
        if "ResourceListChanged" in type(message).__name__:
            changed.set()

    arguments = {"name": "shop", "host": "db.internal", "database": "shop", "user": "reader", "password": "pw"}
    async with Client(stdio_client(server), mode="legacy", message_handler=on_message) as client:
        capabilities = client.session.server_capabilities
        await client.call_tool("connect_postgres", arguments)
        await asyncio.wait_for(changed.wait(), 10)

    assert capabilities is not None
    assert capabilities.resources is not None
    assert capabilities.resources.list_changed is True


async def test_over_stdio_a_stop_signal_ends_the_process_after_draining_even_with_stdin_open(
    nats_settings: NatsSettings, tenant_id: str
) -> None:
    async with edge_process(edge_env(nats_settings, tenant_id), "--transport", "stdio") as process:
        await stderr_until(process, "edge started")
        process.send_signal(signal.SIGTERM)

        await stderr_until(process, "edge stopped")
        async with asyncio.timeout(10):
            assert await process.wait() == 0


async def test_over_http_the_edge_serves_until_a_stop_signal_then_drains(
    nats_settings: NatsSettings, tenant_id: str
) -> None:
    env = edge_env(nats_settings, tenant_id, LAKEGATE_EDGE_PORT="0")
    async with edge_process(env) as process:
        url = (await stderr_until(process, r"streamable HTTP at (http://\S+)")).group(1)
        async with Client(url) as client:
            tools = await client.list_tools()
        process.send_signal(signal.SIGTERM)

        await stderr_until(process, "edge stopped")
        async with asyncio.timeout(10):
            assert await process.wait() == 0
    assert {"query_sql", "get_metadata", "analyze_schema"} <= {tool.name for tool in tools.tools}
    assert url.startswith("http://127.0.0.1:")


def minimal_env(**extra: str) -> dict[str, str]:
    """The environment Claude Desktop or the Inspector give a server: hardly anything of lakegate's."""
    return {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": os.environ.get("HOME", "/"), **extra}


async def test_over_stdio_with_nats_down_the_edge_answers_initialize_and_tools_name_the_nats_url_and_setting(
    tmp_path: Path,
) -> None:
    nobody = f"nats://127.0.0.1:{free_port()}"
    server = stdio_edge(minimal_env(LAKEGATE_NATS_URL=nobody))
    stderr = tmp_path / "edge.stderr"
    with stderr.open("w") as errlog:
        async with asyncio.timeout(60), Client(stdio_client(server, errlog=errlog)) as client:
            tools = await client.list_tools()
            result = await client.call_tool("list_sources", {})

    assert {tool.name for tool in tools.tools} == set(TOOL_SCOPES)  # stdio acts for a local admin
    assert result.is_error
    text = result.content[0].text  # type: ignore[union-attr]
    assert f"cannot reach NATS at {nobody} (LAKEGATE_NATS_URL)" in text
    assert "connection refused" in text
    logs = stderr.read_text()
    assert f"cannot reach NATS at {nobody} (LAKEGATE_NATS_URL): {nobody}: connection refused" in logs


async def test_over_stdio_with_nats_down_the_edge_exits_when_stdin_closes_and_on_a_stop_signal() -> None:
    env = minimal_env(LAKEGATE_NATS_URL=f"nats://127.0.0.1:{free_port()}")
    async with (
        edge_process(env, "--transport", "stdio") as closed,
        edge_process(env, "--transport", "stdio") as signalled,
    ):
        await stderr_until(closed, "cannot reach NATS")
        await stderr_until(signalled, "cannot reach NATS")
        assert closed.stdin is not None
        closed.stdin.close()
        signalled.send_signal(signal.SIGTERM)

        async with asyncio.timeout(15):
            assert await closed.wait() == 0
            assert await signalled.wait() == 0
