"""Direct tool calls answer exactly what the SDK's path answers: one corpus, two edges, compared as JSON.

Two edges serve the same fakes, one with `direct_tool_calls` on and one with it off, both behind
bearer tokens. Every request of the corpus (each direct tool's valid call, missing, extra and
mistyped arguments, JSON in a string, an unknown tool, service errors, a caller without a token, a
token without the scope, one without a tenant, `_meta` without a progress token, malformed params)
goes to both, and the status, content type and JSON body must be equal. A second pair, with a
bucket of two calls, does the same for a rate-limited caller.
"""

from __future__ import annotations

import contextlib
import json
import re
from collections.abc import AsyncIterator, Callable, Iterator
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx2
import pytest
from cryptography.hazmat.primitives.asymmetric import rsa
from lakegate.common.api_tokens import READ, mint
from lakegate.common.settings import NatsSettings, TelemetrySettings
from lakegate.common.telemetry import setup_telemetry
from lakegate.edge import direct_calls
from lakegate.edge.app import EdgeState
from lakegate.edge.config import EdgeSettings
from lakegate.edge.ratelimits import RateLimitedCalls
from lakegate.edge.server import LakegateServer
from mcp.server._otel import OpenTelemetryMiddleware
from mcp.server.context import HandlerResult, ServerRequestContext
from mcp.shared.exceptions import MCPError
from mcp_types import CallToolResult
from opentelemetry import trace
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from .jwts import AUDIENCE, ISSUER, pem, signed_jwt
from .processes import EdgeProcess, serving

if TYPE_CHECKING:
    from conftest import Fakes

MCP_HEADERS = {"Accept": "application/json, text/event-stream", "Content-Type": "application/json"}
SEED = "src_seed"
#: An ISO 8601 instant, as a JSON string or inside a tool's text.
INSTANT = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?(Z|[+-]\d\d:\d\d)")
TABLE = "bronze.shop_orders"

#: (what it is, token to send: admin | reader | tenantless | none, tool, arguments or raw params)
CORPUS: list[tuple[str, str, str, Any]] = [
    ("list_sources", "admin", "list_sources", {}),
    ("list_sources paged", "admin", "list_sources", {"offset": 0, "limit": 1}),
    ("list_datasets", "admin", "list_datasets", {}),
    ("list_schedules", "admin", "list_schedules", {}),
    ("list_sync_runs", "admin", "list_sync_runs", {}),
    ("list_sync_runs of a source", "admin", "list_sync_runs", {"connection_id": SEED}),
    ("list_audit_records", "admin", "list_audit_records", {}),
    ("test_connection", "admin", "test_connection", {"connection_id": SEED}),
    ("list_source_tables", "admin", "list_source_tables", {"connection_id": SEED}),
    ("describe_source_table", "admin", "describe_source_table", {"connection_id": SEED, "table_name": "orders"}),
    ("query_source", "admin", "query_source", {"connection_id": SEED, "sql": "SELECT id FROM orders"}),
    ("query_sql", "admin", "query_sql", {"sql": "SELECT 1"}),
    ("query_sql with max_rows", "admin", "query_sql", {"sql": "SELECT 1", "max_rows": 1}),
    ("list_tables", "admin", "list_tables", {}),
    ("list_tables of silver", "admin", "list_tables", {"layer": "silver"}),
    ("describe_table", "admin", "describe_table", {"table_name": TABLE}),
    ("describe_table without stats", "admin", "describe_table", {"table_name": TABLE, "with_stats": False}),
    ("preview_table", "admin", "preview_table", {"table_name": TABLE, "limit": 1}),
    ("get_metadata", "admin", "get_metadata", {}),
    ("get_sync_run of no run", "admin", "get_sync_run", {"run_id": "run_none"}),
    ("cancel_sync of no run", "admin", "cancel_sync", {"run_id": "run_none"}),
    # arguments that do not fit
    ("missing argument", "admin", "describe_table", {}),
    ("extra argument", "admin", "list_sources", {"colour": "red"}),
    ("mistyped argument", "admin", "list_sources", {"limit": "many"}),
    ("out of range", "admin", "list_sources", {"limit": 0}),
    ("two problems", "admin", "query_sql", {"sql": 7, "max_rows": -1}),
    ("JSON in a string", "admin", "list_sources", {"limit": "3"}),
    ("JSON object in a string", "admin", "list_tables", {"layer": '{"a": 1}'}),
    ("null arguments", "admin", "list_sources", None),
    # service errors, as tool errors
    ("not a SELECT", "admin", "query_sql", {"sql": "DELETE FROM orders"}),
    ("unknown table", "admin", "describe_table", {"table_name": "bronze.nothing"}),
    ("unknown source", "admin", "test_connection", {"connection_id": "src_none"}),
    ("unknown source table", "admin", "describe_source_table", {"connection_id": SEED, "table_name": "nothing"}),
    # protocol errors and callers
    ("unknown tool", "admin", "no_such_tool", {}),
    ("no token", "none", "list_sources", {}),
    ("reader calls a read tool", "reader", "query_sql", {"sql": "SELECT 1"}),
    ("reader calls an admin tool", "reader", "list_audit_records", {}),
    ("reader calls a write tool", "reader", "cancel_sync", {"run_id": "run_none"}),
    ("token without a tenant", "tenantless", "list_sources", {}),
]
#: Whole `params` objects (not only arguments), to the same tool.
RAW_PARAMS: list[tuple[str, Any]] = [
    ("_meta without a progress token", {"name": "list_sources", "arguments": {}, "_meta": {"trace": "x"}}),
    ("_meta that is not an object", {"name": "list_sources", "arguments": {}, "_meta": 5}),
    ("arguments that are a list", {"name": "list_sources", "arguments": [1]}),
    ("a name that is a number", {"name": 5, "arguments": {}}),
    ("no name", {"arguments": {}}),
    ("an unknown params key", {"name": "list_sources", "arguments": {}, "colour": "red"}),
    ("a task in the handshake era", {"name": "list_sources", "arguments": {}, "task": {"ttl": 1000}}),
]


class Tokens:
    def __init__(self, path: Path, tenant: str) -> None:
        self.path = path
        self.admin = mint(path, tenant, ["admin"], "admin")
        self.reader = mint(path, tenant, ["read"], "reader")


@contextlib.asynccontextmanager
async def _edge(settings: EdgeSettings) -> AsyncIterator[tuple[EdgeState, str]]:
    async with serving(settings, EdgeProcess) as edge:
        yield edge.state, edge.url


@pytest.fixture
def tokens(tmp_path: Path, tenant_id: str) -> Tokens:
    return Tokens(tmp_path / "api-tokens.json", tenant_id)


async def _answer(url: str, token: str | None, params: Any, request_id: int) -> tuple[int, str, Any]:
    body = {"jsonrpc": "2.0", "id": request_id, "method": "tools/call", "params": params}
    headers = {**MCP_HEADERS, **({"Authorization": f"Bearer {token}"} if token else {})}
    async with httpx2.AsyncClient() as http:
        response = await http.post(url, content=json.dumps(body), headers=headers)
    kind = response.headers.get("content-type", "")
    # The fakes stamp some objects with the time they are read at; any other difference counts.
    text = INSTANT.sub("<instant>", response.text)
    parsed = json.loads(text) if kind.startswith("application/json") else text
    return response.status_code, kind, parsed


def _params(tool: str, arguments: Any) -> dict[str, Any]:
    return {"name": tool, "arguments": arguments}


async def test_every_answer_of_the_corpus_is_the_same_on_the_direct_and_the_sdk_path(
    nats_settings: NatsSettings, tenant_id: str, tokens: Tokens, fakes: Fakes, seal_public_key: str
) -> None:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    base = EdgeSettings(
        nats=nats_settings,
        default_tenant=tenant_id,
        tokens_file=tokens.path,
        oauth_issuer=ISSUER,
        oauth_audience=AUDIENCE,
        oauth_public_key=pem(key),
        oauth_algorithms=["RS256"],
        public_url=AUDIENCE,
        seal_public_key=seal_public_key,
        rate_limit_per_second=0,
    )
    callers = {
        "admin": tokens.admin,
        "reader": tokens.reader,
        "tenantless": signed_jwt(key, scope=READ, lakegate_tenant=None),
        "none": None,
    }
    async with (
        _edge(base.model_copy(update={"direct_tool_calls": True})) as (direct, direct_url),
        _edge(base.model_copy(update={"direct_tool_calls": False})) as (_, sdk_url),
    ):
        server = direct.server
        assert isinstance(server, LakegateServer)
        served_directly = server.direct_calls()
        requests = [(what, callers[who], _params(tool, arguments)) for what, who, tool, arguments in CORPUS]
        requests += [(what, tokens.admin, params) for what, params in RAW_PARAMS]
        differences = []
        for number, (what, token, params) in enumerate(requests):
            on_direct = await _answer(direct_url, token, params, number)
            on_sdk = await _answer(sdk_url, token, params, number)
            if json.dumps(on_direct) != json.dumps(on_sdk):  # key order too
                differences.append(f"{what}:\n  direct {on_direct}\n  sdk    {on_sdk}")

    assert not differences, "\n".join(differences)
    # The corpus's valid calls really took the direct path on the first edge.
    direct_tools = {tool for _, who, tool, arguments in CORPUS if who == "admin" and tool != "no_such_tool"}
    assert direct_tools <= served_directly.tools, direct_tools - served_directly.tools
    assert all(
        served_directly.accepts("tools/call", _params(tool, {}), "2025-06-18") is not None for tool in direct_tools
    )


async def test_a_rate_limited_caller_gets_the_same_refusal_on_both_paths(
    nats_settings: NatsSettings, tenant_id: str, fakes: Fakes, seal_public_key: str
) -> None:
    base = EdgeSettings(
        nats=nats_settings,
        default_tenant=tenant_id,
        seal_public_key=seal_public_key,
        rate_limit_per_second=0.5,
        rate_limit_burst=2,
    )
    call = _params("list_sources", {})
    asked: dict[bool, list[Any]] = {}
    # One edge after the other: two edges of one tenant running at once share its limit (`ratelimits`).
    for direct in (True, False):
        async with _edge(base.model_copy(update={"direct_tool_calls": direct})) as (state, url):
            for layer in state.server._lowlevel_server.middleware:  # a clock that stands still: retry_after is fixed
                if isinstance(layer, RateLimitedCalls):
                    layer.buckets.clock = lambda: 1000.0
            asked[direct] = [await _answer(url, None, call, n) for n in range(3)]
    answers = list(zip(asked[True], asked[False], strict=True))

    assert all(on_direct == on_sdk for on_direct, on_sdk in answers), answers
    refused = answers[-1][0][2]["result"]
    assert refused["isError"] is True
    assert refused["structuredContent"] == {"error": "rate_limited", "retry_after": 2.0}


#: A client's sampled trace, as it sends it in `_meta`.
CLIENT_TRACEPARENT = f"00-{'ab' * 16}-{'cd' * 8}-01"


@pytest.fixture
def exported() -> Iterator[InMemorySpanExporter]:
    """The spans finished while the test runs.

    The tracer provider is the process's for the rest of the session, and so is the processor added
    to it: at the end the exporter is shut down, so it keeps no span of the tests after this one.
    """
    setup_telemetry("edge", TelemetrySettings())  # what an edge's runtime installs, unless one did already
    provider = trace.get_tracer_provider()
    assert isinstance(provider, TracerProvider)
    exporter = InMemorySpanExporter()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    yield exporter
    exporter.shutdown()
    exporter.clear()


async def test_the_direct_path_opens_the_same_tools_call_span_as_the_sdks_middleware(
    exported: InMemorySpanExporter,
) -> None:
    params = {"name": "list_sources", "arguments": {}, "_meta": {"traceparent": CLIENT_TRACEPARENT}}
    ctx: ServerRequestContext[Any, Any] = ServerRequestContext(
        session=None,  # type: ignore[arg-type]  # neither layer reads it
        lifespan_context=None,
        protocol_version="2025-06-18",
        method="tools/call",
        params=params,
        request_id=7,
        meta=direct_calls._meta(params),
    )
    outcomes: list[Callable[[], HandlerResult]] = [
        lambda: {"content": [], "isError": False},
        lambda: {"content": [], "isError": True},
        lambda: CallToolResult(content=[], is_error=True),
        lambda: _raise(MCPError(code=-32602, message="unknown tool 'x'")),
        lambda: _raise(RuntimeError("a bug")),
    ]

    def seen(span: ReadableSpan) -> tuple[Any, ...]:
        status = span.status
        parent = span.parent.span_id if span.parent else None
        events = [event.name for event in span.events]
        return span.name, span.kind, dict(span.attributes or {}), status.status_code, status.description, parent, events

    for outcome in outcomes:
        current: list[int] = []
        call_next = partial(_answering, outcome, current)
        sdk_layer = partial(OpenTelemetryMiddleware(), call_next=call_next)
        for layer in (sdk_layer, partial(direct_calls._traced, call_next)):
            with contextlib.suppress(MCPError, RuntimeError):
                await layer(ctx)
        sdk, direct = exported.get_finished_spans()[-2:]
        assert seen(direct) == seen(sdk)
        assert direct.context.trace_id == sdk.context.trace_id == int("ab" * 16, 16)
        assert current == [sdk.context.span_id, direct.context.span_id], "each is the current span of the call"


async def _answering(
    outcome: Callable[[], HandlerResult], current: list[int], ctx: ServerRequestContext[Any, Any]
) -> HandlerResult:
    """The inner handler: notes the span current while it runs, then answers or raises."""
    current.append(trace.get_current_span().get_span_context().span_id)
    return outcome()


def _raise(exc: Exception) -> HandlerResult:
    raise exc
