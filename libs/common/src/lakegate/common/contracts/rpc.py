"""The envelope of every request/reply answer: a result or an error, never both."""

from __future__ import annotations

from typing import Any

from lakegate.common.contracts.runs import ErrorInfo
from pydantic import BaseModel, ConfigDict


class Reply(BaseModel):
    """`result` holds the answer model's JSON; `error` says why there is none."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    result: dict[str, Any] | None = None
    error: ErrorInfo | None = None
