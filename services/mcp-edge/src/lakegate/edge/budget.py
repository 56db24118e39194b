"""Byte budgets for tool answers, so every answer fits in one message any MCP client accepts.

The official MCP Python client refuses a server-sent event over 1 MiB, and an answer that is refused
ends the client's session before it can see `truncated`. So an answer that could be long (rows,
listings) is measured as it goes on the wire (compact JSON of the whole `CallToolResult`) and cut to
the edge's `answer_max_bytes` before it is sent, with a note that says how to get the rest.

An answer carries its data once: in the structured content. Its text content is a compact summary
(see `answer`), not a second, indented JSON copy of the same data.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, TypeVar

import pydantic_core
from mcp.types import CallToolResult, TextContent
from pydantic import BaseModel

T = TypeVar("T")
M = TypeVar("M", bound=BaseModel)


def json_size(value: Any) -> int:
    """Bytes of `value` as compact JSON, the way pydantic writes it on the wire."""
    return len(pydantic_core.to_json(value, fallback=str))


def compact_json(value: Any) -> str:
    """`value` as compact JSON text."""
    return pydantic_core.to_json(value, fallback=str).decode()


def answer(result: BaseModel, text: str) -> CallToolResult:
    """A tool answer with `result` as its structured content and `text` as its one text block."""
    return CallToolResult(
        content=[TextContent(type="text", text=text)], structured_content=result.model_dump(mode="json")
    )


def answer_size(result: CallToolResult) -> int:
    """Bytes of the answer as compact JSON, without the JSON-RPC envelope."""
    return len(result.model_dump_json(by_alias=True, exclude_none=True))


def fitting_prefix(items: Sequence[T], budget: int) -> int:
    """How many leading `items` fit in `budget` bytes of compact JSON, written as one JSON array."""
    used = 2
    for count, item in enumerate(items):
        used += json_size(item) + (1 if count else 0)
        if used > budget:
            return count
    return len(items)


def within_budget(
    items: Sequence[T], budget: int, build: Callable[[Sequence[T], bool], CallToolResult]
) -> CallToolResult:
    """The answer `build(kept, cut)` over the longest prefix of `items` that keeps it within `budget` bytes.

    `build` gets the items kept and whether any were cut, so it can say so in the answer.
    """
    whole = build(items, False)
    if answer_size(whole) <= budget:
        return whole
    frame = answer_size(build(items[:0], True))
    keep = fitting_prefix(items, max(0, budget - frame))
    # The text block may quote some items too; shrink until the real size fits.
    while True:
        cut = build(items[:keep], True)
        over = answer_size(cut) - budget
        if over <= 0 or keep == 0:
            return cut
        keep = max(0, min(keep - 1, keep - keep * over // max(1, answer_size(cut))))
