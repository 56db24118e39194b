"""The HTTP edge as an OAuth resource server: bearer JWTs and static API tokens, tenants and scopes from them.

Two tenants, each with its own token, against the fakes: the fakes keep every object under the
tenant the request named, so what one token reaches is what the edge asked for on its behalf.
"""

from __future__ import annotations

import base64
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import TYPE_CHECKING

import httpx2
import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import rsa
from lakegate.common.api_tokens import ADMIN, READ, WRITE, ApiTokenFile, mint
from lakegate.common.settings import NatsSettings
from lakegate.devstack.bearerclient import bearer_client
from lakegate.edge.authentication import ApiTokenVerifier, JwtVerifier
from lakegate.edge.config import EdgeSettings
from lakegate.edge.scopes import TOOL_SCOPES
from mcp import Client
from pydantic import ValidationError

from .jwts import AUDIENCE, ISSUER, pem, signed_jwt
from .processes import EdgeProcess, serving

if TYPE_CHECKING:
    from conftest import Fakes

INITIALIZE = {
    "jsonrpc": "2.0",
    "id": 1,
    "method": "initialize",
    "params": {"protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "probe", "version": "0"}},
}
MCP_HEADERS = {"Accept": "application/json, text/event-stream", "Content-Type": "application/json"}
CONNECT = {"name": "shop", "host": "db.internal", "database": "shop", "user": "u", "password": "p"}


@pytest.fixture(scope="module")
def signing_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


class Tokens:
    def __init__(self, path: Path, first: str, second: str) -> None:
        self.path = path
        self.admin = mint(path, first, ["admin"], "first tenant's admin")
        self.reader = mint(path, first, ["read"], "first tenant's reader")
        self.other = mint(path, second, ["admin"], "second tenant's admin")


@pytest.fixture
def second_tenant(unique: str) -> str:
    return f"other{unique}"


@pytest.fixture
def tokens(tmp_path: Path, tenant_id: str, second_tenant: str) -> Tokens:
    return Tokens(tmp_path / "api-tokens.json", tenant_id, second_tenant)


@pytest.fixture
async def secured_url(
    nats_settings: NatsSettings,
    tenant_id: str,
    tokens: Tokens,
    signing_key: rsa.RSAPrivateKey,
    fakes: Fakes,
    seal_public_key: str,
) -> AsyncIterator[str]:
    """An edge that requires a bearer token: API tokens from the file, JWTs signed by `signing_key`."""
    settings = EdgeSettings(
        nats=nats_settings,
        default_tenant=tenant_id,
        sync_wait_seconds=30,
        tokens_file=tokens.path,
        oauth_issuer=ISSUER,
        oauth_audience=AUDIENCE,
        oauth_public_key=pem(signing_key),
        oauth_algorithms=["RS256"],
        public_url=AUDIENCE,
        seal_public_key=seal_public_key,
    )
    async with serving(settings, EdgeProcess) as edge:
        yield edge.url


async def _post(url: str, token: str | None) -> httpx2.Response:
    headers = {**MCP_HEADERS, **({"Authorization": f"Bearer {token}"} if token else {})}
    async with httpx2.AsyncClient() as http:
        return await http.post(url, json=INITIALIZE, headers=headers)


async def test_a_request_without_a_token_gets_401_pointing_at_the_resource_metadata(secured_url: str) -> None:
    response = await _post(secured_url, None)

    assert response.status_code == 401
    challenge = response.headers["www-authenticate"]
    assert challenge.startswith("Bearer ")
    assert 'error="invalid_token"' in challenge
    assert 'resource_metadata="https://lakegate.example.com/.well-known/oauth-protected-resource/mcp"' in challenge


async def test_the_protected_resource_metadata_names_the_issuer_and_every_scope(secured_url: str) -> None:
    base = secured_url.removesuffix("/mcp")
    async with httpx2.AsyncClient() as http:
        response = await http.get(f"{base}/.well-known/oauth-protected-resource/mcp")

    assert response.status_code == 200
    metadata = response.json()
    assert metadata["resource"] == AUDIENCE
    assert metadata["authorization_servers"] == [ISSUER]
    assert metadata["scopes_supported"] == [READ, WRITE, ADMIN]
    assert metadata["bearer_methods_supported"] == ["header"]


async def test_forged_expired_wrong_issuer_and_wrong_audience_jwts_get_401_and_change_nothing(
    secured_url: str, signing_key: rsa.RSAPrivateKey, fakes: Fakes
) -> None:
    forger = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    good = signed_jwt(signing_key)
    header, _payload, signature = good.split(".")
    richer = base64.urlsafe_b64encode(b'{"lakegate_tenant":"initech"}').decode().rstrip("=")
    refused = {
        "forged": signed_jwt(forger),
        "tampered": f"{header}.{richer}.{signature}",
        "expired": signed_jwt(signing_key, exp=int(time.time()) - 3600),
        "wrong issuer": signed_jwt(signing_key, iss="https://evil.example.com/"),
        "wrong audience": signed_jwt(signing_key, aud="https://other.example.com/mcp"),
        "no expiry": signed_jwt(signing_key, exp=None),
        "unsigned": jwt.encode({"iss": ISSUER, "aud": AUDIENCE, "exp": int(time.time()) + 60}, None, algorithm="none"),
        "unknown api token": "lg_000000000000_not-a-real-token",
    }
    sources_before = dict(fakes.catalog.sources)
    for what, token in refused.items():
        response = await _post(secured_url, token)
        assert response.status_code == 401, what
        assert 'error="invalid_token"' in response.headers["www-authenticate"], what

    assert (await _post(secured_url, good)).status_code == 200
    assert fakes.catalog.sources == sources_before


async def test_a_jwt_without_any_lakegate_scope_gets_403_insufficient_scope(
    secured_url: str, signing_key: rsa.RSAPrivateKey
) -> None:
    response = await _post(secured_url, signed_jwt(signing_key, scope="openid profile"))

    assert response.status_code == 403
    assert 'error="insufficient_scope"' in response.headers["www-authenticate"]


async def test_a_valid_jwt_acts_for_the_tenant_its_claim_names(
    secured_url: str, signing_key: rsa.RSAPrivateKey, fakes: Fakes
) -> None:
    fakes.catalog.seed("globex")
    async with bearer_client(secured_url, signed_jwt(signing_key)) as client:
        listed = await client.call_tool("list_sources", {})

    assert not listed.is_error, listed.content
    assert listed.structured_content is not None
    # The fake lists only the sources of the tenant the edge asked for; the seeded one is now globex's.
    assert fakes.catalog.sources["src_seed"].tenant_id == "globex"
    assert [s["connection_id"] for s in listed.structured_content["sources"]] == ["src_seed"]


async def test_a_read_token_sees_only_read_tools_and_a_write_tool_call_is_a_permission_error(
    secured_url: str, tokens: Tokens, fakes: Fakes
) -> None:
    async with bearer_client(secured_url, tokens.reader) as client:
        listed = {tool.name for tool in (await client.list_tools()).tools}
        synced = await client.call_tool("sync_table_to_bronze", {"connection_id": "src_seed", "table_name": "orders"})
        connected = await client.call_tool("connect_postgres", CONNECT)
        queried = await client.call_tool("query_sql", {"sql": "SELECT 1"})

    assert listed == {tool for tool, scope in TOOL_SCOPES.items() if scope == READ}
    assert synced.is_error
    assert "sync_table_to_bronze needs the lakegate:write scope" in synced.content[0].text  # type: ignore[union-attr]
    assert "has lakegate:read" in synced.content[0].text  # type: ignore[union-attr]
    assert connected.is_error
    assert "lakegate:admin" in connected.content[0].text  # type: ignore[union-attr]
    assert not queried.is_error
    assert fakes.catalog.runs == {}
    assert fakes.extractor.checked == []


async def test_an_admin_token_sees_every_tool(secured_url: str, tokens: Tokens) -> None:
    async with bearer_client(secured_url, tokens.admin) as client:
        listed = {tool.name for tool in (await client.list_tools()).tools}

    assert listed == set(TOOL_SCOPES)


async def test_every_tool_the_edge_serves_has_a_scope_in_the_table(edge_url: str) -> None:
    async with Client(edge_url) as client:
        served = {tool.name for tool in (await client.list_tools()).tools}

    assert served <= set(TOOL_SCOPES), served - set(TOOL_SCOPES)


async def test_two_tenants_tokens_never_reach_each_others_sources_runs_or_schedules(
    secured_url: str, tokens: Tokens, tenant_id: str, second_tenant: str, fakes: Fakes
) -> None:
    async with bearer_client(secured_url, tokens.other) as other:
        mine = await other.call_tool("connect_postgres", {**CONNECT, "name": "others"})
        assert mine.structured_content is not None
        theirs = mine.structured_content["connection_id"]
        run = await other.call_tool("sync_table_to_bronze", {"connection_id": theirs, "table_name": "orders"})
        assert run.structured_content is not None
        their_run = run.structured_content["run_id"]
        every = "15m"
        schedule = await other.call_tool(
            "schedule_sync", {"connection_id": theirs, "table_name": "orders", "every": every}
        )
        assert schedule.structured_content is not None
        their_schedule = schedule.structured_content["schedule_id"]

    async with bearer_client(secured_url, tokens.admin) as first:
        sources = await first.call_tool("list_sources", {})
        runs = await first.call_tool("list_sync_runs", {})
        schedules = await first.call_tool("list_schedules", {})
        guessed = {
            "test_connection": await first.call_tool("test_connection", {"connection_id": theirs}),
            "get_sync_run": await first.call_tool("get_sync_run", {"run_id": their_run}),
            "cancel_sync": await first.call_tool("cancel_sync", {"run_id": their_run}),
            "sync": await first.call_tool("sync_table_to_bronze", {"connection_id": theirs, "table_name": "orders"}),
            "delete_schedule": await first.call_tool("delete_schedule", {"schedule_id": their_schedule}),
            "describe three-part": await first.call_tool(
                "describe_table", {"table_name": f"tenant_{second_tenant}.bronze.orders"}
            ),
        }
        resources = {str(resource.uri) for resource in (await first.list_resources()).resources}

    assert sources.structured_content is not None
    assert runs.structured_content is not None
    assert {s["connection_id"] for s in sources.structured_content["sources"]} == {"src_seed"}
    assert their_run not in {r["run_id"] for r in runs.structured_content["runs"]}
    assert schedules.structured_content is not None
    assert their_schedule not in {s["schedule_id"] for s in schedules.structured_content["schedules"]}
    for what, result in guessed.items():
        assert result.is_error, what
    assert not any(theirs in uri or their_run in uri for uri in resources)
    assert fakes.catalog.schedules[their_schedule].tenant_id == second_tenant
    assert fakes.catalog.sources[theirs].tenant_id == second_tenant
    assert tenant_id != second_tenant


def test_a_tokens_file_that_does_not_exist_is_refused_naming_the_setting(tmp_path: Path) -> None:
    with pytest.raises(ValidationError, match=r"LAKEGATE_EDGE_TOKENS_FILE=.*does not exist.*token create"):
        EdgeSettings(tokens_file=tmp_path / "missing.json")


def test_an_issuer_without_a_way_to_check_signatures_is_refused() -> None:
    with pytest.raises(ValidationError, match="needs exactly one way to check signatures"):
        EdgeSettings(oauth_issuer=ISSUER)


def test_a_remote_address_is_served_when_tokens_are_required(tmp_path: Path) -> None:
    path = tmp_path / "tokens.json"
    ApiTokenFile().save(path)
    assert EdgeSettings(host="0.0.0.0", tokens_file=path).authenticates
    with pytest.raises(ValidationError, match="LAKEGATE_EDGE_TOKENS_FILE"):
        EdgeSettings(host="0.0.0.0")


def test_the_tokens_file_holds_hashes_never_the_tokens(tokens: Tokens) -> None:
    stored = tokens.path.read_text()
    for token in (tokens.admin, tokens.reader, tokens.other):
        assert token not in stored
        assert token.split("_", 2)[2] not in stored  # the secret, which may itself hold "_"
    assert oct(tokens.path.stat().st_mode & 0o777) == "0o600"


async def test_only_an_admin_token_reads_the_audit_log_and_only_its_own_tenants(
    secured_url: str, tokens: Tokens, tenant_id: str, second_tenant: str, fakes: Fakes
) -> None:
    from datetime import UTC, datetime

    from lakegate.common.contracts.audit import AuditRecord

    for n, tenant in enumerate((tenant_id, second_tenant)):
        fakes.catalog.audit.append(
            AuditRecord(
                id=f"aud_{n}",
                tenant_id=tenant,
                actor="someone",
                tool="query_sql",
                arguments={"sql": "SELECT 1"},
                outcome="ok",
                duration_ms=1.0,
                at=datetime.now(UTC),
            )
        )
    async with bearer_client(secured_url, tokens.admin) as admin:
        page = await admin.call_tool("list_audit_records", {})
    async with bearer_client(secured_url, tokens.reader) as reader:
        refused = await reader.call_tool("list_audit_records", {})

    assert page.structured_content is not None
    assert [record["id"] for record in page.structured_content["records"]] == ["aud_0"]
    assert refused.is_error
    assert "list_audit_records needs the lakegate:admin scope" in refused.content[0].text  # type: ignore[union-attr]


async def test_an_api_token_removed_from_the_file_is_refused_on_its_next_request_though_it_was_granted_before(
    tokens: Tokens,
) -> None:
    verifier = ApiTokenVerifier(tokens.path)
    first = await verifier.verify_token(tokens.reader)
    again = await verifier.verify_token(tokens.reader)
    kept = ApiTokenFile.load(tokens.path)
    kept.tokens = [entry for entry in kept.tokens if entry.name != "first tenant's reader"]
    kept.save(tokens.path)

    assert first is not None
    assert again == first
    assert await verifier.verify_token(tokens.reader) is None
    assert await verifier.verify_token(tokens.admin) is not None


async def test_a_jwt_granted_once_does_not_let_a_forged_token_for_the_same_subject_through(
    signing_key: rsa.RSAPrivateKey,
) -> None:
    verifier = JwtVerifier(issuer=ISSUER, audience=AUDIENCE, algorithms=["RS256"], key=pem(signing_key))
    genuine = signed_jwt(signing_key)
    forger = rsa.generate_private_key(public_exponent=65537, key_size=2048)

    granted = await verifier.verify_token(genuine)
    assert granted is not None
    assert granted.subject == "alice"
    assert await verifier.verify_token(genuine) == granted
    assert await verifier.verify_token(signed_jwt(forger)) is None
