"""Audit records: one per MCP tool call (edge → catalog, command `cmd.audit.record`, many records a message)."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from lakegate.common.contracts.base import Message, TenantScoped
from pydantic import Field, field_validator


def storable(text: str) -> str:
    """`text` with what PostgreSQL text and jsonb cannot hold (NUL, lone surrogates) written out as escapes."""
    return text.replace("\x00", "\\u0000").encode("utf-8", "backslashreplace").decode("utf-8")


class AuditRecord(Message):
    """One tool call. Its texts are always storable: whoever builds or sends a record (any NATS client
    can publish one), a NUL or lone surrogate in them is written out as an escape, not lost with it."""

    id: str = Field(description="Unique id of the record; a redelivered record is stored once.")
    tenant_id: str
    actor: str = Field(description="Who called: the token's subject, or 'local' for stdio/loopback.")
    tool: str
    arguments: dict[str, str] = Field(description="Arguments with secrets removed and long values shortened.")
    outcome: Literal["ok", "error"]
    error_code: str | None = None
    duration_ms: float
    at: datetime

    @field_validator("actor", "tool")
    @classmethod
    def _storable_text(cls, value: str) -> str:
        return storable(value)

    @field_validator("arguments")
    @classmethod
    def _storable_arguments(cls, value: dict[str, str]) -> dict[str, str]:
        return {storable(name): storable(text) for name, text in value.items()}


class AuditRecords(Message):
    """Audit records the edge publishes together: the catalog stores them in one write."""

    records: list[AuditRecord] = Field(
        min_length=1, description="Tool calls in the order they finished; each is stored once per id."
    )


class ListAudit(TenantScoped):
    limit: int = Field(default=50, ge=1, le=500)
    offset: int = Field(default=0, ge=0)


class AuditList(Message):
    records: list[AuditRecord]
    next_offset: int | None = None
