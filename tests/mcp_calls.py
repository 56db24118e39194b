"""Calling tools the way an agent does, and reading their structured results."""

from __future__ import annotations

from typing import Any

from lakegate.devstack.toolresults import error_text, structured, text_of
from mcp import Client
from mcp.client.session import ProgressFnT


class ToolFailed(AssertionError):
    """The tool answered with an error result; `message` is what the model would read."""

    def __init__(self, name: str, message: str) -> None:
        super().__init__(f"{name} failed: {message}")
        self.message = message


async def call(client: Client, name: str, arguments: dict[str, Any], progress: ProgressFnT | None = None) -> Any:
    """The tool's structured content; raises ToolFailed with the text the model would read."""
    result = await client.call_tool(name, arguments, progress_callback=progress)
    if result.is_error:
        raise ToolFailed(name, text_of(result))
    return structured(result)


async def failure(client: Client, name: str, arguments: dict[str, Any]) -> str:
    """The error text of a call that must fail."""
    return error_text(await client.call_tool(name, arguments))
