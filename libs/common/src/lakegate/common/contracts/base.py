from __future__ import annotations

from typing import ClassVar

from pydantic import BaseModel, ConfigDict, Field


class Message(BaseModel):
    """Base of every message: frozen, strict about unknown fields, versioned."""

    model_config = ConfigDict(frozen=True, extra="forbid")
    VERSION: ClassVar[int] = 1

    version: int = Field(default=1, description="Version of this message's schema.")


class TenantScoped(Message):
    tenant_id: str = Field(description="Tenant the request acts for; set from authentication, never by a tool.")
