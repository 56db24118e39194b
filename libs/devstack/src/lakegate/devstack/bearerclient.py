"""An MCP client over streamable HTTP that sends `Authorization: Bearer <token>`, for tests and benchmarks."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator

import httpx2
from mcp import Client
from mcp.client.streamable_http import streamable_http_client

#: httpx2's own default; a sync that waits on the edge needs more (the callers pass it).
DEFAULT_TIMEOUT_SECONDS = 5.0


@contextlib.asynccontextmanager
async def bearer_client(url: str, token: str, *, timeout: float = DEFAULT_TIMEOUT_SECONDS) -> AsyncIterator[Client]:
    """The official MCP client, connected to `url` with every request carrying `token` as its bearer token."""
    async with (
        httpx2.AsyncClient(headers={"Authorization": f"Bearer {token}"}, timeout=timeout) as http,
        Client(streamable_http_client(url, http_client=http)) as client,
    ):
        yield client
