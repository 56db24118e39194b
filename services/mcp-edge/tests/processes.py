"""An edge process serving streamable HTTP on a free port, as the tests of several processes start them."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import TypeVar

from lakegate.edge.app import EdgeState, http_app, serve
from lakegate.edge.config import EdgeSettings
from lakegate.edge.listener import listening


@dataclass
class EdgeProcess:
    """One edge process serving HTTP: its state, and the URL of its MCP endpoint."""

    state: EdgeState
    url: str


_P = TypeVar("_P", bound=EdgeProcess)


@contextlib.asynccontextmanager
async def serving(settings: EdgeSettings, kind: type[_P]) -> AsyncIterator[_P]:
    """An edge started with `settings`, listening on a free port and linked to NATS, as a `kind` (a test
    module's `EdgeProcess` with its own ways to call it)."""
    async with serve(settings) as state, listening(http_app(state), "127.0.0.1", 0, grace_seconds=5) as listener:
        await state.link.ready()
        yield kind(state, f"{listener.url}{settings.path}")
