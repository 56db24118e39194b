"""Audit records: one per MCP tool call (edge → catalog, command `cmd.audit.record`)."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from lakegate.common.contracts.base import Message, TenantScoped
from pydantic import Field


class AuditRecord(Message):
    id: str = Field(description="Unique id of the record; a redelivered record is stored once.")
    tenant_id: str
    actor: str = Field(description="Who called: the token's subject, or 'local' for stdio/loopback.")
    tool: str
    arguments: dict[str, str] = Field(description="Arguments with secrets removed and long values shortened.")
    outcome: Literal["ok", "error"]
    error_code: str | None = None
    duration_ms: float
    at: datetime


class ListAudit(TenantScoped):
    limit: int = Field(default=50, ge=1, le=500)
    offset: int = Field(default=0, ge=0)


class AuditList(Message):
    records: list[AuditRecord]
    next_offset: int | None = None
