"""The envelope of every request/reply answer: a result or an error, never both."""

from __future__ import annotations

from typing import Any

from lakegate.common.contracts.runs import ErrorInfo
from pydantic import BaseModel, ConfigDict, Field


class Reply(BaseModel):
    """`result` holds the answer model's JSON; `error` says why there is none."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    result: dict[str, Any] | None = None
    error: ErrorInfo | None = None


#: How a cancellable request names itself, so that its caller can cancel it (see `CancelCall`).
CALL_ID_DESCRIPTION = (
    "Id the caller chose for this request; a CancelCall on the call_cancel subject of this id stops its work."
)


class CancelCall(BaseModel):
    """The caller gave up on a request it sent with `call_id` (its MCP request was cancelled): stop its work."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    version: int = Field(default=1, description="Version of this message's schema.")
    call_id: str = Field(description="The `call_id` of the request to stop.")
