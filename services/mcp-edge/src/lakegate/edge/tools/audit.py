"""The admin tool that reads the audit log: every tool call of your tenant, newest first."""

from __future__ import annotations

from typing import Annotated

from lakegate.common.contracts.audit import AuditList, AuditRecord, ListAudit
from lakegate.edge.backend import Backend
from lakegate.edge.results.base import Offset
from lakegate.edge.tools.sync import READS_CATALOG
from mcp.server.mcpserver import MCPServer
from pydantic import BaseModel, Field


class AuditLogResult(BaseModel):
    """A page of the audit log."""

    records: list[AuditRecord] = Field(description="Tool calls, newest first; arguments without secrets.")
    next_offset: int | None = Field(description="Offset of the next page; null at the end.")


def add_audit_tools(server: MCPServer, backend: Backend) -> None:
    """Register list_audit_records (admin scope, `scopes.py`)."""

    @server.tool(annotations=READS_CATALOG.model_copy(update={"title": "Read the audit log"}))
    @backend.failures.tool_errors
    async def list_audit_records(
        offset: Offset = 0,
        limit: Annotated[int, Field(description="Most records to return.", ge=1, le=500)] = 50,
    ) -> AuditLogResult:
        """List your tenant's tool calls, newest first: who, which tool, arguments (secrets removed), outcome."""
        request = ListAudit(tenant_id=backend.tenant(), offset=offset, limit=limit)
        page = await backend.call(backend.topology.audit_list, request, AuditList)
        return AuditLogResult(records=page.records, next_offset=page.next_offset)
