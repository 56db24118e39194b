"""Which scope each tool needs, in one table, and the server middleware that holds callers to it.

    lakegate:read   query, list, describe, preview, metadata, runs and schedules, the AI-assisted tools;
                    resources, completions and prompts
    lakegate:write  sync, cancel, schedule, upload, transform, gold views (and everything read allows)
    lakegate:admin  sources and their credentials, the audit log (and everything write allows)

`tools/list` shows a caller only the tools its scopes allow. Calling another one anyway is a tool
error result (`isError`) that names the scope the tool needs and the scopes the caller has: the
model can read it and tell the user, and the audit log records the call as `permission_denied`.
(The authorization spec's alternative, HTTP 403 `insufficient_scope` for step-up authorization,
would need the JSON-RPC body read before the MCP transport; a lakegate token is minted with its
scopes, so there is nothing to step up to.) A tool missing from the table needs admin, so a tool
added without an entry is closed rather than open; a test checks every tool has one.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from lakegate.common.api_tokens import ADMIN, READ, WRITE
from lakegate.common.errors import PermissionDenied
from lakegate.edge.audit import note_error_code
from lakegate.edge.tenancy import Tenancy
from mcp.server.context import CallNext, HandlerResult, ServerRequestContext
from mcp.shared.exceptions import MCPError
from mcp_types import INVALID_REQUEST, CallToolResult, ListToolsResult, TextContent

TOOL_SCOPES: Mapping[str, str] = {
    # sources
    "connect_postgres": ADMIN,
    "test_connection": READ,
    "list_sources": READ,
    "list_source_tables": READ,
    "describe_source_table": READ,
    "query_source": READ,
    # syncs
    "sync_table_to_bronze": WRITE,
    "get_sync_run": READ,
    "list_sync_runs": READ,
    "cancel_sync": WRITE,
    "schedule_sync": WRITE,
    "list_schedules": READ,
    "delete_schedule": WRITE,
    # lakehouse
    "query_sql": READ,
    "list_tables": READ,
    "describe_table": READ,
    "preview_table": READ,
    "get_metadata": READ,
    "list_datasets": READ,
    # curation
    "transform_to_silver": WRITE,
    "create_gold_view": WRITE,
    "upload_file": WRITE,
    # AI-assisted
    "analyze_schema": READ,
    "suggest_query": READ,
    "explain_data": READ,
    # audit
    "list_audit_records": ADMIN,
}
#: Methods other than tools that read the tenant's objects.
READING_METHODS = frozenset(
    {"resources/read", "resources/list", "resources/templates/list", "completion/complete", "prompts/get"}
)


def tool_scope(tool: str) -> str:
    """The scope a tool needs; admin for a tool the table does not know."""
    return TOOL_SCOPES.get(tool, ADMIN)


def refusal(tool: str, scopes: frozenset[str]) -> str:
    """Why a caller with `scopes` may not call `tool`, and what would let it."""
    held = ", ".join(sorted(scopes)) or "no lakegate scope"
    return (
        f"permission denied: {tool} needs the {tool_scope(tool)} scope and this caller's token has {held}. "
        f"Ask for a token with {tool_scope(tool)} (python -m lakegate.devstack token create --scopes ...)."
    )


@dataclass(frozen=True)
class ScopedRequests:
    """Server middleware: lists only the tools a caller may use, and refuses the rest."""

    tenancy: Tenancy

    async def __call__(self, ctx: ServerRequestContext[Any, Any], call_next: CallNext) -> HandlerResult:
        scopes = self.tenancy.scopes()
        if ctx.method == "tools/call":
            tool = str((ctx.params or {}).get("name", ""))
            if tool_scope(tool) not in scopes:
                note_error_code(PermissionDenied.code)
                return CallToolResult(content=[TextContent(type="text", text=refusal(tool, scopes))], is_error=True)
            return await call_next(ctx)
        if ctx.method in READING_METHODS and READ not in scopes:
            raise MCPError(code=INVALID_REQUEST, message=f"permission denied: {ctx.method} needs the {READ} scope")
        result = await call_next(ctx)
        if ctx.method == "tools/list":
            return _allowed_tools(result, scopes)
        return result


def _allowed_tools(result: HandlerResult, scopes: frozenset[str]) -> HandlerResult:
    if isinstance(result, ListToolsResult):
        return result.model_copy(update={"tools": [tool for tool in result.tools if tool_scope(tool.name) in scopes]})
    if isinstance(result, dict) and isinstance(result.get("tools"), list):
        tools = [tool for tool in result["tools"] if tool_scope(str(tool.get("name", ""))) in scopes]
        return {**result, "tools": tools}
    return result
