"""The statement size limits of the loader's guard: `lakegate.common.sqlsize`, named as the loader's settings.

Each limit is a `LAKEGATE_LOADER_QUERY_MAX_*` setting (`config.LoaderSettings`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from lakegate.common import sqlsize
from lakegate.common.sqlsize import measure, recursion_refusal, too_deeply_nested, too_large, too_many_chars

__all__ = ["SizeLimits", "measure", "recursion_refusal", "too_deeply_nested", "too_large", "too_many_chars"]


@dataclass(frozen=True)
class SizeLimits(sqlsize.SizeLimits):
    """The loader's limits; each field is the setting `LAKEGATE_LOADER_QUERY_MAX_<FIELD>`."""

    settings_prefix: ClassVar[str] = "LAKEGATE_LOADER_QUERY_MAX_"
