"""The base of every tool result, and pagination over lists the edge slices itself."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Annotated, TypeVar

from pydantic import BaseModel, ConfigDict, Field

T = TypeVar("T")
#: The largest offset a listing takes; PostgreSQL and the loader count in 64-bit integers, no tenant has more.
MAX_OFFSET = 1_000_000_000

Offset = Annotated[
    int, Field(description="How many items to skip; pass the previous page's next_offset.", ge=0, le=MAX_OFFSET)
]


class ToolResult(BaseModel):
    model_config = ConfigDict(frozen=True)


def page(items: Sequence[T], offset: int, limit: int) -> tuple[list[T], int | None]:
    """One page of `items` and the offset of the next page (None at the end)."""
    chosen = list(items[offset : offset + limit])
    return chosen, offset + limit if offset + limit < len(items) else None
