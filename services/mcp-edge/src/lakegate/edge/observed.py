"""Every MCP tool call in the edge's Prometheus metrics, its span and its log lines.

The MCP SDK's own middleware makes each `tools/call <tool>` span (kind SERVER, continuing a trace
the client sent in `_meta`), once `lakegate.common.telemetry` has installed the provider. That span
is the root of the call's trace in lakegate: the requests and commands the tool sends carry it in
their NATS headers, so the catalog's, extractor's and loader's spans join the same trace.
`ObservedCalls`, inside it, adds the tenant and lakegate's error code to that span, times the call
into `lakegate_tool_call_seconds`, counts a failure by the code the audit noted into
`lakegate_tool_errors_total`, and names the caller's tenant in the call's log lines.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from lakegate.common.logs import log_context
from lakegate.common.metrics import ServiceMetrics
from lakegate.edge.audit import REFUSED_BEFORE_RUNNING, call_failed, noted_error_code
from lakegate.edge.tenancy import Tenancy
from mcp.server.context import CallNext, HandlerResult, ServerRequestContext
from opentelemetry import trace


@dataclass(frozen=True)
class ObservedCalls:
    """Server middleware: metrics per `tools/call` (inside `AuditedCalls`, to read its error code)."""

    metrics: ServiceMetrics
    tenancy: Tenancy

    async def __call__(self, ctx: ServerRequestContext[Any, Any], call_next: CallNext) -> HandlerResult:
        if ctx.method != "tools/call":
            return await call_next(ctx)
        tool = str((ctx.params or {}).get("name", ""))
        tenant = self.tenancy.known()
        began = time.perf_counter()
        span = trace.get_current_span()
        if tenant is not None:
            span.set_attribute("lakegate.tenant_id", tenant)
        with log_context(tenant_id=tenant):
            try:
                result = await call_next(ctx)
            except Exception:
                self.metrics.tool_call(tool, time.perf_counter() - began, noted_error_code() or REFUSED_BEFORE_RUNNING)
                raise
            code = (noted_error_code() or REFUSED_BEFORE_RUNNING) if call_failed(result) else None
            if code is not None:
                span.set_attribute("lakegate.error_code", code)
            self.metrics.tool_call(tool, time.perf_counter() - began, code)
            return result
