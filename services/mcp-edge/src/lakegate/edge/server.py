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
from lakegate.edge.direct_calls import DirectCalls
from lakegate.edge.failures import arguments_named, unknown_tool
from lakegate.edge.internal_errors import InternalErrors
from lakegate.edge.missing_resources import MissingResources
from lakegate.edge.observed import ObservedCalls
from lakegate.edge.prompts import add_prompts
from lakegate.edge.ratelimits import RateLimitedCalls, TokenBuckets
from lakegate.edge.resources import add_resources, tenant_resources
from lakegate.edge.run_watch import RunWatch
from lakegate.edge.scopes import ScopedRequests
from lakegate.edge.task_calls import CAPABILITY as TASKS_CAPABILITY
from lakegate.edge.task_calls import EXTENSION as TASKS_EXTENSION
from lakegate.edge.task_calls import TASK_TOOLS, TaskCalls
from lakegate.edge.tool_listing import compact
from lakegate.edge.tools.assist import add_assist_tools
from lakegate.edge.tools.audit import add_audit_tools
from lakegate.edge.tools.catalog import add_catalog_tools
from lakegate.edge.tools.schedules import add_schedule_tools
from lakegate.edge.tools.sources import add_source_tools
from lakegate.edge.tools.sync import add_sync_tools
from lakegate.edge.tools.transforms import add_transform_tools
from lakegate.edge.tools.warehouse import add_warehouse_tools
from mcp.server.mcpserver import Context, MCPServer, RequestStateSecurity
from mcp.server.subscriptions import SubscriptionBus
from mcp.shared.exceptions import MCPError
from mcp_types import (
    INVALID_PARAMS,
    INVALID_REQUEST,
    CallToolResult,
    GetPromptResult,
    InputRequiredResult,
    Resource,
    ServerCapabilities,
    Tool,
    ToolExecution,
)
from mcp_types.version import MODERN_PROTOCOL_VERSIONS
from pydantic import ValidationError

INSTRUCTIONS = """\
lakegate brings PostgreSQL tables and files into a lakehouse and answers SQL over them.
Layers: bronze holds raw synced copies and uploads, silver cleaned tables, gold curated views; every
table is <catalog>.<layer>.<table>. get_metadata shows everything at once, with lineage.
Typical flow: connect_postgres (once per database) → list_source_tables / describe_source_table →
sync_table_to_bronze → describe_table / preview_table → transform_to_silver → create_gold_view →
query_sql. sync_table_to_bronze also takes a list of tables or a schema_name: one run per table.
A long sync returns a run handle: follow it with get_sync_run, stop it with cancel_sync.
Syncs are full (replace), incremental (append rows past a cursor) or merge (upsert on the primary
key); schedule_sync repeats one on an interval or a cron expression. analyze_schema,
suggest_query and explain_data ask your own model (MCP sampling) with the real schema and data.
"""


class LakegateServer(MCPServer):
    """An MCP server whose `resources/list` also lists the caller's own sources, tables and runs."""

    def __init__(self, backend: Backend, tasks: TaskCalls, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._backend = backend
        # Innermost, so it sees the tool's own result (the audit and cancel routing wrap it).
        self._lowlevel_server.middleware.append(ResourceChanges(self._subscriptions))
        # Outermost, so no unmapped exception from any layer reaches the SDK's code-0 catch-all.
        self._lowlevel_server.middleware.insert(0, InternalErrors(backend.failures.public))
        tasks.install(self._lowlevel_server, knows=self._knows, fits=self._fits)
        lowlevel_capabilities = self._lowlevel_server.get_capabilities

        over_stdio = backend.settings.transport == "stdio"

        def capabilities(*args: Any, protocol_version: str | None = None, **kwargs: Any) -> ServerCapabilities:
            claimed = lowlevel_capabilities(*args, protocol_version=protocol_version, **kwargs)
            return true_capabilities(claimed, protocol_version, session_notifications=over_stdio)

        self._lowlevel_server.get_capabilities = capabilities  # type: ignore[method-assign]

    def _knows(self, tool: str) -> bool:
        return self._tool_manager.get_tool(tool) is not None

    def _fits(self, tool: str, arguments: dict[str, Any]) -> bool:
        registered = self._tool_manager.get_tool(tool)
        if registered is None:
            return False
        try:
            registered.fn_metadata.validate_arguments(arguments)
        except ValidationError:
            return False
        return True

    def direct_calls(self) -> DirectCalls:
        """Plain tool calls served through this server's middleware without the SDK's runner (`direct_calls`)."""
        tools = {tool.name: tool for tool in self._tool_manager.list_tools()}
        return DirectCalls(tools, list(self._lowlevel_server.middleware))

    @property
    def subscriptions(self) -> SubscriptionBus:
        """The bus of `subscriptions/listen` streams (2026-07-28)."""
        return self._subscriptions

    async def list_tools(self) -> list[Tool]:
        """The tools with compact schemas (`tool_listing`); those of `TASK_TOOLS` may run as a task."""
        task = ToolExecution(task_support="optional")
        return [
            tool.model_copy(update={"execution": task}) if tool.name in TASK_TOOLS else tool
            for tool in compact(await super().list_tools())
        ]

    async def call_tool(
        self, name: str, arguments: dict[str, Any], context: Context[Any, Any] | None = None
    ) -> CallToolResult | InputRequiredResult:
        """A tool call; arguments that do not fit the schema are named one by one, without pydantic's text.

        An unknown tool is a protocol error, invalid params (-32602), as the spec's tools page says, not a
        tool result with `isError` (what the SDK answers).
        """
        if not self._knows(name):
            raise unknown_tool(name)
        with arguments_named(name):
            return await super().call_tool(name, arguments, context)

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


def true_capabilities(
    claimed: ServerCapabilities, protocol_version: str | None, *, session_notifications: bool
) -> ServerCapabilities:
    """What the edge really does: tools and prompts never change at run time, so no listChanged for them.

    In the handshake era: resources/list_changed only where the session is a connection that can carry
    it (stdio; stateless HTTP has no stream for it), and task-augmented tool calls (tasks are part of
    2025-11-25). In 2026-07-28 the SDK's claims follow `subscriptions/listen`, which gets list changes and
    run:// and datasource:// updates (`changes`, `run_watch`), and tasks are the `io.modelcontextprotocol/tasks`
    extension (`task_calls`).
    """
    update: dict[str, Any] = {}
    if claimed.tools is not None:
        update["tools"] = claimed.tools.model_copy(update={"list_changed": False})
    if claimed.prompts is not None:
        update["prompts"] = claimed.prompts.model_copy(update={"list_changed": False})
    if protocol_version in MODERN_PROTOCOL_VERSIONS:
        update["extensions"] = {**(claimed.extensions or {}), TASKS_EXTENSION: {}}
    else:
        update["tasks"] = TASKS_CAPABILITY
        if claimed.resources is not None:
            update["resources"] = claimed.resources.model_copy(update={"list_changed": session_notifications})
    return claimed.model_copy(update=update)


def create_server(
    backend: Backend, trail: AuditTrail, auth: Authentication | None = None, buckets: TokenBuckets | None = None
) -> MCPServer:
    """An MCP server that calls the catalog, the extractor and the loader through `backend`; tool calls take
    from the tenant's rate limit bucket in `buckets`, unless None (no limit)."""
    tasks = TaskCalls(backend.tenancy, backend.task_peers)
    server = LakegateServer(
        backend,
        tasks,
        auth=auth.settings if auth else None,
        token_verifier=auth.verifier if auth else None,
        name="lakegate",
        title="lakegate",
        # One key for all processes and replicas: a repeated call may come to another than the first.
        request_state_security=RequestStateSecurity(keys=[backend.settings.shared_secret.get_secret_value()]),
        instructions=INSTRUCTIONS,
        version="0.2.0",
        middleware=[
            AuditedCalls(trail, backend.tenancy),
            ScopedRequests(backend.tenancy),
            *([RateLimitedCalls(backend.tenancy, buckets)] if buckets is not None else []),
            CancelRouting(backend.tenancy),
            tasks,
            MissingResources(),
            ObservedCalls(backend.runtime.metrics, backend.tenancy),
        ],
    )
    add_source_tools(server, backend)
    add_sync_tools(server, backend, RunWatch(backend, server.subscriptions))
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
