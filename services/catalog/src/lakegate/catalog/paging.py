"""Offset pagination: read one row more than a page holds, to know whether another page follows."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TypeVar

T = TypeVar("T")


@dataclass(frozen=True)
class Window:
    """Which page a listing asks for."""

    offset: int
    limit: int

    @property
    def fetch(self) -> int:
        """Rows to ask the database for: the page and one more."""
        return self.limit + 1

    def cut(self, rows: Sequence[T]) -> tuple[list[T], int | None]:
        """The page's rows and the offset of the next page, None at the end."""
        if len(rows) > self.limit:
            return list(rows[: self.limit]), self.offset + self.limit
        return list(rows), None
