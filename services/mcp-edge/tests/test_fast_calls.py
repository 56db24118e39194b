"""The fast path answers what uvicorn and the ASGI layers answer, byte for byte, and is really taken.

Two edges serve the same fakes, one with `fast_http` on and one with it off, with and without
bearer tokens. Every case of the corpus (plain calls, invalid arguments, an unknown tool, a tool
that is not direct, wrong content types, foreign hosts and origins, Accept and version headers,
batches, progress tokens, bodies past the fast path's bound and past the request limit, HTTP/1.0,
`Connection: close`, requests after one another and pipelined on one connection, callers without a
token, with a bad one and without the scope) is written as raw HTTP to both, and the answers
must be equal: status line, every header but `date` in order, and the body.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
from cryptography.hazmat.primitives.asymmetric import rsa
from lakegate.common.api_tokens import mint
from lakegate.common.contracts.rpc import CancelCall
from lakegate.common.settings import NatsSettings
from lakegate.edge.app import EdgeState, http_app, serve
from lakegate.edge.config import EdgeSettings
from lakegate.edge.fast_calls import FastCalls
from lakegate.edge.listener import AnswersFast, listening
from nats.aio.msg import Msg

from .jwts import AUDIENCE, ISSUER, pem, signed_jwt

if TYPE_CHECKING:
    from conftest import Fakes

#: An ISO 8601 instant: the fakes stamp some objects with the time they are read at.
INSTANT = re.compile(rb"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?(Z|[+-]\d\d:\d\d)")
TABLE = "bronze.shop_orders"
JSON_HEADERS = {"Accept": "application/json, text/event-stream", "Content-Type": "application/json"}


@dataclass(frozen=True)
class Answer:
    """One HTTP answer as it came: the status line, the headers in order (less `date`), the body."""

    status: bytes
    headers: tuple[tuple[bytes, bytes], ...]
    body: bytes

    def normalised(self) -> Answer:
        """Instants replaced (their length varies), and with them the length that counts them."""
        body = INSTANT.sub(b"<instant>", self.body)
        headers = self.headers if body == self.body else tuple(h for h in self.headers if h[0] != b"content-length")
        return Answer(self.status, headers, body)


def _request(
    body: bytes | dict[str, Any] | list[Any] | None,
    *,
    headers: dict[str, str] | None = None,
    token: str | None = None,
    method: str = "POST",
    target: str = "/mcp",
    http: str = "HTTP/1.1",
) -> bytes:
    content = json.dumps(body).encode() if isinstance(body, (dict, list)) else body
    fields = {"Host": "127.0.0.1:8000", **(JSON_HEADERS if headers is None else headers)}
    if token is not None:
        fields["Authorization"] = f"Bearer {token}"
    if content is not None:
        fields["Content-Length"] = str(len(content))
    head = "".join(f"{name}: {value}\r\n" for name, value in fields.items())
    return f"{method} {target} {http}\r\n{head}\r\n".encode("latin-1") + (content or b"")


def _call(tool: str, arguments: Any, request_id: int = 1, **params: Any) -> dict[str, Any]:
    return {
        "jsonrpc": "2.0",
        "id": request_id,
        "method": "tools/call",
        "params": {"name": tool, "arguments": arguments, **params},
    }


async def _read_answer(reader: asyncio.StreamReader) -> Answer | None:
    try:
        head = await reader.readuntil(b"\r\n\r\n")
    except asyncio.IncompleteReadError as exc:
        if exc.partial:
            raise
        return None  # the connection closed between answers
    status, *lines = head[:-4].split(b"\r\n")
    headers = tuple((name, value) for name, _, value in (line.partition(b": ") for line in lines))
    fields = dict(headers)
    if b"content-length" in fields:
        body = await reader.readexactly(int(fields[b"content-length"]))
    elif fields.get(b"transfer-encoding") == b"chunked":
        body = b""
        while size := int((await reader.readuntil(b"\r\n"))[:-2], 16):
            body += (await reader.readexactly(size + 2))[:-2]
        await reader.readexactly(2)
    else:
        body = await reader.read()
    return Answer(status, tuple(h for h in headers if h[0] != b"date"), body)


async def _exchange(port: int, requests: list[bytes], *, pipelined: bool = False) -> list[Answer]:
    """Write `requests` on one connection (all at once when `pipelined`), and read every answer until it closes."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    answers: list[Answer] = []
    try:
        if pipelined:
            writer.write(b"".join(requests))
        for request in requests:
            if not pipelined:
                writer.write(request)
            answer = await asyncio.wait_for(_read_answer(reader), 10)
            if answer is None:
                break
            answers.append(answer)
    finally:
        writer.close()
        with contextlib.suppress(ConnectionError):
            await writer.wait_closed()
    return answers


async def _refused(port: int) -> None:
    """Return once the port refuses connections: uvicorn closes its listener and, at once, shuts connections down."""
    while True:
        try:
            _, writer = await asyncio.open_connection("127.0.0.1", port)
        except ConnectionRefusedError:
            return
        writer.close()
        await asyncio.sleep(0.02)


@dataclass(frozen=True)
class Tokens:
    admin: str
    reader: str
    tenantless: str
    jwt: str


def _corpus(tokens: Tokens | None, limit: int) -> list[tuple[str, list[bytes], bool]]:
    """(what it is, the requests written on one connection, whether pipelined)."""
    token = tokens.admin if tokens else None

    def post(body: Any, **kwargs: Any) -> bytes:
        return _request(body, token=token, **kwargs)

    plain = [
        ("list_sources", post(_call("list_sources", {}))),
        ("query_sql", post(_call("query_sql", {"sql": "SELECT 1"}))),
        ("describe_table", post(_call("describe_table", {"table_name": TABLE}))),
        ("preview_table", post(_call("preview_table", {"table_name": TABLE, "limit": 1}))),
        ("a string id", post({**_call("list_tables", {}), "id": "seven"})),
        ("_meta without a progress token", post(_call("list_sources", {}, _meta={"trace": "x"}))),
        ("invalid arguments", post(_call("list_sources", {"limit": "many"}))),
        ("missing argument", post(_call("describe_table", {}))),
        ("a service error", post(_call("query_sql", {"sql": "DELETE FROM orders"}))),
        ("unknown tool", post(_call("no_such_tool", {}))),
        ("a tool that is not direct", post(_call("analyze_schema", {"table_name": TABLE}))),
        (
            "a handshake-era version",
            post(_call("list_sources", {}), headers={**JSON_HEADERS, "MCP-Protocol-Version": "2025-06-18"}),
        ),
        (
            "a modern version",
            post(_call("list_sources", {}), headers={**JSON_HEADERS, "MCP-Protocol-Version": "2026-07-28"}),
        ),
        (
            "an unsupported version",
            post(_call("list_sources", {}), headers={**JSON_HEADERS, "MCP-Protocol-Version": "1999-01-01"}),
        ),
        ("text/plain", post(_call("list_sources", {}), headers={**JSON_HEADERS, "Content-Type": "text/plain"})),
        (
            "JSON with a charset",
            post(
                _call("list_sources", {}), headers={**JSON_HEADERS, "Content-Type": "application/json; charset=utf-8"}
            ),
        ),
        ("no Accept", post(_call("list_sources", {}), headers={"Content-Type": "application/json"})),
        ("Accept: SSE only", post(_call("list_sources", {}), headers={**JSON_HEADERS, "Accept": "text/event-stream"})),
        ("Accept: */*", post(_call("list_sources", {}), headers={**JSON_HEADERS, "Accept": "*/*"})),
        (
            "a foreign Origin",
            post(_call("list_sources", {}), headers={**JSON_HEADERS, "Origin": "https://evil.example"}),
        ),
        (
            "a loopback Origin",
            post(_call("list_sources", {}), headers={**JSON_HEADERS, "Origin": "http://localhost:3000"}),
        ),
        ("a foreign Host", post(_call("list_sources", {}), headers={**JSON_HEADERS, "Host": "rebound.example:80"})),
        ("a progress token", post(_call("list_sources", {}, _meta={"progressToken": "p1"}))),
        ("a batch", post([_call("list_sources", {}, 1), _call("query_sql", {"sql": "SELECT 1"}, 2)])),
        ("a notification", post({"jsonrpc": "2.0", "method": "notifications/initialized"})),
        (
            "initialize",
            post(
                {
                    "jsonrpc": "2.0",
                    "id": 1,
                    "method": "initialize",
                    "params": {
                        "protocolVersion": "2025-06-18",
                        "capabilities": {},
                        "clientInfo": {"name": "probe", "version": "0"},
                    },
                }
            ),
        ),
        ("not JSON", post(b"{not json")),
        ("an empty body", post(b"")),
        ("a query string", post(_call("list_sources", {}), target="/mcp?x=1")),
        ("a trailing slash", post(_call("list_sources", {}), target="/mcp/")),
        ("a GET", _request(None, method="GET", headers={"Accept": "text/event-stream"})),
        ("a body past the fast path's bound", post(_call("query_sql", {"sql": "SELECT 1 -- " + "x" * 70_000}))),
        ("a call past the request limit", post(_call("query_sql", {"sql": "x" * (limit + 10)}))),
        ("HTTP/1.0", post(_call("list_sources", {}), http="HTTP/1.0")),
        ("Connection: close", post(_call("list_sources", {}), headers={**JSON_HEADERS, "Connection": "close"})),
    ]
    if tokens is not None:
        plain += [
            ("no token", _request(_call("list_sources", {}))),
            ("a bad token", _request(_call("list_sources", {}), token="lg_not_a_token")),
            ("a JWT", _request(_call("list_sources", {}), token=tokens.jwt)),
            ("a reader calls an admin tool", _request(_call("list_audit_records", {}), token=tokens.reader)),
            ("a token without a tenant", _request(_call("list_sources", {}), token=tokens.tenantless)),
            (
                "no token and a foreign Origin",
                _request(_call("list_sources", {}), headers={**JSON_HEADERS, "Origin": "https://evil.example"}),
            ),
        ]
    cases = [(name, [request], False) for name, request in plain]
    calls = [post(_call("list_sources", {}, n)) for n in range(1, 4)]
    mixed = [calls[0], post(_call("list_sources", {}, _meta={"progressToken": "p"})), calls[1], post(b"{"), calls[2]]
    many = [
        post(_call("query_sql" if n % 3 else "list_sources", {"sql": "SELECT 1"} if n % 3 else {}, n))
        for n in range(100)
    ]
    closing = post(_call("query_sql", {"sql": "SELECT 1"}, 9), headers={**JSON_HEADERS, "Connection": "close"})
    cases += [
        ("keep-alive: three calls in turn", calls, False),
        ("keep-alive: fast and slow in turn", mixed, False),
        ("pipelined: three calls", calls, True),
        ("pipelined: fast and slow", mixed, True),
        ("pipelined: a close, then a call it drops", [calls[0], closing, calls[1]], True),
        ("pipelined: a hundred calls, read after all are written", many, True),
    ]
    return cases


@pytest.fixture(scope="module")
def signing_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


@dataclass(frozen=True)
class Edge:
    state: EdgeState
    port: int
    fast: FastCalls | None


@contextlib.asynccontextmanager
async def _edge(settings: EdgeSettings) -> AsyncIterator[Edge]:
    async with serve(settings) as state:
        app = http_app(state)
        assert isinstance(app, AnswersFast)
        async with listening(app, "127.0.0.1", 0, grace_seconds=5) as listener:
            await state.link.ready()
            yield Edge(state, int(listener.url.rsplit(":", 1)[1]), app.fast_calls)


def _settings(nats: NatsSettings, tenant: str, seal_public_key: str, **more: Any) -> EdgeSettings:
    return EdgeSettings(nats=nats, default_tenant=tenant, sync_wait_seconds=30, seal_public_key=seal_public_key, **more)


@pytest.mark.parametrize("authenticated", [False, True], ids=["anonymous", "bearer tokens"])
async def test_every_answer_of_the_fast_path_is_the_answer_of_uvicorn_and_the_asgi_layers_byte_for_byte(
    authenticated: bool,
    nats_settings: NatsSettings,
    tenant_id: str,
    fakes: Fakes,
    seal_public_key: str,
    tmp_path: Path,
    signing_key: rsa.RSAPrivateKey,
) -> None:
    auth: dict[str, Any] = {}
    tokens = None
    if authenticated:
        path = tmp_path / "api-tokens.json"
        tokens = Tokens(
            admin=mint(path, tenant_id, ["admin"], "admin"),
            reader=mint(path, tenant_id, ["read"], "reader"),
            tenantless=signed_jwt(signing_key, lakegate_tenant=None),
            jwt=signed_jwt(signing_key, lakegate_tenant=tenant_id),
        )
        auth = {
            "tokens_file": path,
            "oauth_issuer": ISSUER,
            "oauth_audience": AUDIENCE,
            "oauth_public_key": pem(signing_key),
            "oauth_algorithms": ["RS256"],
            "public_url": AUDIENCE,
        }
    settings = _settings(nats_settings, tenant_id, seal_public_key, **auth)
    async with (
        _edge(settings) as fast,
        _edge(settings.model_copy(update={"fast_http": False})) as slow,
    ):
        assert fast.fast is not None
        assert slow.fast is None
        differing = []
        for name, requests, pipelined in _corpus(tokens, settings.max_request_bytes):
            ours = await _exchange(fast.port, requests, pipelined=pipelined)
            theirs = await _exchange(slow.port, requests, pipelined=pipelined)
            if [a.normalised() for a in ours] != [a.normalised() for a in theirs]:
                differing.append((name, ours, theirs))
        served = fast.fast.served

    assert differing == []
    assert served >= 20  # the plain calls of the corpus took the fast path


async def test_a_plain_call_takes_the_fast_path_and_anything_else_does_not(
    nats_settings: NatsSettings, tenant_id: str, fakes: Fakes, seal_public_key: str
) -> None:
    async with _edge(_settings(nats_settings, tenant_id, seal_public_key)) as edge:
        assert edge.fast is not None
        [plain] = await _exchange(edge.port, [_request(_call("list_sources", {}))])
        after_plain = edge.fast.served
        others = [
            _request(_call("list_sources", {}, _meta={"progressToken": "p"})),
            _request(_call("list_sources", {}), headers={**JSON_HEADERS, "Origin": "https://evil.example"}),
            _request(_call("list_sources", {}), headers={**JSON_HEADERS, "Content-Type": "text/plain"}),
            _request(_call("analyze_schema", {"table_name": TABLE})),
        ]
        answers = await _exchange(edge.port, others)

    assert plain.status == b"HTTP/1.1 200 OK"
    assert after_plain == 1
    assert [answer.status[9:12] for answer in answers] == [b"200", b"403", b"400", b"200"]
    assert edge.fast.served == 1


async def test_a_client_that_leaves_during_a_fast_call_cancels_its_tool(
    nats_settings: NatsSettings, tenant_id: str, fakes: Fakes, seal_public_key: str
) -> None:
    async with _edge(_settings(nats_settings, tenant_id, seal_public_key)) as edge:
        nats = edge.state.runtime.broker.connection
        heard: asyncio.Queue[CancelCall] = asyncio.Queue()

        async def on_cancel(msg: Msg) -> None:
            heard.put_nowait(CancelCall.model_validate_json(msg.data))

        watch = await nats.subscribe(edge.state.runtime.topology.call_cancel("*"), cb=on_cancel)
        try:
            _, writer = await asyncio.open_connection("127.0.0.1", edge.port)
            writer.write(_request(_call("query_sql", {"sql": "SELECT slow FROM shop_orders"})))
            await asyncio.wait_for(fakes.loader.running.wait(), 10)
            writer.close()  # the client leaves while the loader runs the query
            cancel = await asyncio.wait_for(heard.get(), 10)
        finally:
            fakes.loader.release.set()
            await watch.unsubscribe()
        [answer] = await _exchange(edge.port, [_request(_call("query_sql", {"sql": "SELECT 1"}))])

    [slow, _] = fakes.loader.queries
    assert cancel.call_id == slow.call_id
    assert answer.status == b"HTTP/1.1 200 OK"


async def test_a_fast_call_under_way_when_the_edge_stops_is_answered_and_its_connection_closed(
    nats_settings: NatsSettings, tenant_id: str, fakes: Fakes, seal_public_key: str
) -> None:
    settings = _settings(nats_settings, tenant_id, seal_public_key)
    async with serve(settings) as state:
        await state.link.ready()
        app = http_app(state)
        assert isinstance(app, AnswersFast)
        stopping = contextlib.AsyncExitStack()
        listener = await stopping.enter_async_context(listening(app, "127.0.0.1", 0, grace_seconds=5))
        port = int(listener.url.rsplit(":", 1)[1])
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(_request(_call("query_sql", {"sql": "SELECT slow FROM shop_orders"})))
        await asyncio.wait_for(fakes.loader.running.wait(), 10)
        stopped = asyncio.create_task(stopping.aclose())  # uvicorn's should_exit: open requests may finish
        await asyncio.wait_for(_refused(port), 10)  # then uvicorn has asked each connection to close after its answer
        fakes.loader.release.set()
        answer = await asyncio.wait_for(_read_answer(reader), 10)
        await asyncio.wait_for(stopped, 10)
        writer.close()

    assert answer is not None
    assert answer.status == b"HTTP/1.1 200 OK"
    assert (b"connection", b"close") in answer.headers
    assert b'"row_count"' in answer.body
    assert app.fast_calls is not None
    assert app.fast_calls.served == 1
