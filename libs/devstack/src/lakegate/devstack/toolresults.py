"""Reading MCP tool results in tests: the text a model would read, or the structured content."""

from __future__ import annotations

from typing import Any

from mcp.types import CallToolResult, TextContent


def text_of(result: CallToolResult) -> str:
    """The result's text blocks, joined: what a model reads."""
    return " ".join(block.text for block in result.content if isinstance(block, TextContent))


def error_text(result: CallToolResult) -> str:
    """The text of a result that must be a tool error."""
    assert result.is_error, result.structured_content
    return text_of(result)


def structured(result: CallToolResult) -> dict[str, Any]:
    """The structured content of a result that must not be a tool error."""
    assert not result.is_error, text_of(result)
    assert result.structured_content is not None
    return dict(result.structured_content)
