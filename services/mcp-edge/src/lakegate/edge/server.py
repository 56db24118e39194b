"""The MCP server: tools, resources, prompts and completions, all acting for the caller's tenant."""

from __future__ import annotations

from typing import Any

from lakegate.common.errors import LakegateError
from lakegate.edge.audit import AuditedCalls, AuditTrail
from lakegate.edge.authentication import Authentication
from lakegate.edge.backend import Backend
from lakegate.edge.cancellation import CancelRouting
from lakegate.edge.changes import ResourceChanges
from lakegate.edge.completions import add_completions
from lakegate.edge.failures import argument_problems
from lakegate.edge.observed import ObservedCalls
from lakegate.edge.prompts import add_prompts
from lakegate.edge.resources import add_resources, tenant_resources
from lakegate.edge.run_watch import RunWatch
from lakegate.edge.scopes import ScopedRequests
from lakegate.edge.tools.assist import add_assist_tools
from lakegate.edge.tools.audit import add_audit_tools
from lakegate.edge.tools.catalog import add_catalog_tools
from lakegate.edge.tools.schedules import add_schedule_tools
from lakegate.edge.tools.sources import add_source_tools
from lakegate.edge.tools.sync import add_sync_tools
from lakegate.edge.tools.transforms import add_transform_tools
from lakegate.edge.tools.warehouse import add_warehouse_tools
from mcp.server.mcpserver import Context, MCPServer
from mcp.server.mcpserver.exceptions import ToolError
from mcp.shared.exceptions import MCPError
from mcp_types import INVALID_PARAMS, INVALID_REQUEST, CallToolResult, GetPromptResult, InputRequiredResult, Resource
from pydantic import ValidationError

INSTRUCTIONS = """\
lakegate brings PostgreSQL tables and files into a lakehouse and answers SQL over them.
Layers: bronze holds raw synced copies and uploads, silver cleaned tables, gold curated views; every
table is <catalog>.<layer>.<table>. get_metadata shows everything at once, with lineage.
Typical flow: connect_postgres (once per database) → list_source_tables / describe_source_table →
sync_table_to_bronze → describe_table / preview_table → transform_to_silver → create_gold_view →
query_sql. sync_tables_to_bronze copies several tables (or a whole schema) in one call, one run each.
A long sync returns a run handle: follow it with get_sync_run, stop it with cancel_sync.
Syncs are full (replace), incremental (append rows past a cursor) or merge (upsert on the primary
key); schedule_sync repeats one on an interval or a cron expression. analyze_schema,
suggest_query and explain_data ask your own model (MCP sampling) with the real schema and data.
"""


class LakegateServer(MCPServer):
    """An MCP server whose `resources/list` also lists the caller's own sources, tables and runs."""

    def __init__(self, backend: Backend, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._backend = backend
        # Innermost, so it sees the tool's own result (the audit and cancel routing wrap it).
        self._lowlevel_server.middleware.append(ResourceChanges(self._subscriptions))

    async def call_tool(
        self, name: str, arguments: dict[str, Any], context: Context[Any, Any] | None = None
    ) -> CallToolResult | InputRequiredResult:
        """A tool call; arguments that do not fit the schema are named one by one, without pydantic's text."""
        try:
            return await super().call_tool(name, arguments, context)
        except ToolError as exc:
            if isinstance(exc.__cause__, ValidationError):
                raise ToolError(argument_problems(name, exc.__cause__)) from exc.__cause__
            raise

    async def list_resources(self) -> list[Resource]:
        """The static resources, then the concrete ones of the caller's tenant."""
        try:
            own = await tenant_resources(self._backend)
        except LakegateError as exc:  # a caller whose token names no tenant
            raise MCPError(code=INVALID_REQUEST, message=self._backend.failures.public(exc.message)) from exc
        return [*await super().list_resources(), *own]

    async def get_prompt(
        self, name: str, arguments: dict[str, Any] | None = None, context: Context[Any, Any] | None = None
    ) -> GetPromptResult | InputRequiredResult:
        """A prompt; an unknown name or a missing argument is invalid params (-32602), saying what to send."""
        prompts = {prompt.name: prompt for prompt in await self.list_prompts()}
        prompt = prompts.get(name)
        if prompt is None:
            raise MCPError(
                code=INVALID_PARAMS, message=f"unknown prompt {name!r}; the prompts are {', '.join(sorted(prompts))}"
            )
        required = [arg.name for arg in prompt.arguments or [] if arg.required]
        missing = [arg for arg in required if not (arguments or {}).get(arg)]
        if missing:
            raise MCPError(
                code=INVALID_PARAMS,
                message=f"prompt {name!r} needs the argument(s) {', '.join(missing)}; send them in `arguments`",
            )
        return await super().get_prompt(name, arguments, context)


def create_server(backend: Backend, trail: AuditTrail, auth: Authentication | None = None) -> MCPServer:
    """An MCP server that calls the catalog, the extractor and the loader through `backend`."""
    server = LakegateServer(
        backend,
        auth=auth.settings if auth else None,
        token_verifier=auth.verifier if auth else None,
        name="lakegate",
        title="lakegate",
        instructions=INSTRUCTIONS,
        version="0.2.0",
        middleware=[
            AuditedCalls(trail, backend.tenancy),
            ScopedRequests(backend.tenancy),
            CancelRouting(backend.tenancy),
            ObservedCalls(backend.runtime.metrics, backend.tenancy),
        ],
    )
    add_source_tools(server, backend)
    add_sync_tools(server, backend, RunWatch(backend))
    add_schedule_tools(server, backend)
    add_warehouse_tools(server, backend)
    add_transform_tools(server, backend)
    add_catalog_tools(server, backend)
    add_assist_tools(server, backend)
    add_audit_tools(server, backend)
    add_resources(server, backend)
    add_prompts(server, backend)
    add_completions(server, backend)
    return server
