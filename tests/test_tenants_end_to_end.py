"""Two tenants on the real stack, each with its own API token, through the real MCP edge over HTTP.

Neither may list, describe, query, sync, preview, cancel, schedule, upload over, complete, or read
as a resource what the other owns, not even by guessing its ids, its three-part names or its
resource URIs. Bearer tokens that are forged, expired, from another issuer or for another audience
get 401 with the header the MCP authorization spec asks for and change nothing; a read token
calling a write tool gets a permission error. Afterwards no secret of the test is in any log.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import httpx2
import jwt
import nats
import pytest
from lakegate.common.api_tokens import mint
from lakegate.common.nats_users import tenant_subscriber
from lakegate.devstack.bearerclient import bearer_client
from lakegate.devstack.layout import StackHome
from lakegate.devstack.postgres import PostgresCluster
from lakegate.devstack.pytest_plugin import CreateDatabase, directory_outside_pytest
from lakegate.devstack.stack import Stack, StackConfig, StackPorts
from lakegate.devstack.toolresults import error_text
from mcp import Client
from mcp.shared.exceptions import MCPError
from mcp.types import ResourceTemplateReference
from nats.js.api import ConsumerConfig, DeliverPolicy

from tests.conftest import Source, make_source
from tests.mcp_calls import call
from tests.sources import create_orders_table

#: Under `pytest -n`, every test of this module runs on one worker, so its stack of its own starts once.
pytestmark = pytest.mark.xdist_group("tenants-stack")

ISSUER = "https://login.lakegate.test/"
AUDIENCE = "https://lakegate.test/mcp"
JWT_SECRET = "e2e-shared-hmac-secret-that-is-long-enough-for-hs256"
SOURCE_PASSWORD = r"pw-[0-9a-f]+-ünï"
MCP_HEADERS = {"Accept": "application/json, text/event-stream", "Content-Type": "application/json"}


@dataclass(frozen=True)
class Tenants:
    stack: Stack
    acme: str  # admin token of tenant acme
    acme_reader: str  # read-only token of tenant acme
    globex: str  # admin token of tenant globex


@pytest.fixture(scope="module")
def tenants() -> Iterator[Tenants]:
    """A stack of its own whose edge requires a bearer token: API tokens from its home, or a JWT."""
    with directory_outside_pytest("lakegate-tenants-") as home:
        tokens = StackHome(home).api_tokens
        tokens.parent.mkdir(parents=True, exist_ok=True)
        acme = mint(tokens, "acme", ["admin"], "acme admin")
        acme_reader = mint(tokens, "acme", ["read"], "acme reader")
        globex = mint(tokens, "globex", ["admin"], "globex admin")
        env = {
            "LAKEGATE_EDGE_SYNC_WAIT_SECONDS": "120",
            "LAKEGATE_EXTRACTOR_ALLOW_PRIVATE_SOURCES": "true",
            "LAKEGATE_EDGE_OAUTH_ISSUER": ISSUER,
            "LAKEGATE_EDGE_OAUTH_AUDIENCE": AUDIENCE,
            "LAKEGATE_EDGE_OAUTH_SHARED_SECRET": JWT_SECRET,
        }
        with Stack(StackConfig(home=home, ports=StackPorts.free(), env=env)) as running:
            made = Tenants(running, acme, acme_reader, globex)
            yield made
            refused = running.nats_permission_violations()
            assert not refused, "\n".join(refused)
            assert_no_secret_in_logs(made)


def _client(url: str, token: str) -> contextlib.AbstractAsyncContextManager[Client]:
    return bearer_client(url, token, timeout=180)


@dataclass(frozen=True)
class Owned:
    """What tenant acme made, which globex then tries to reach."""

    connection_id: str
    run_id: str
    schedule_id: str
    bronze: str
    silver: str
    gold: str
    uploaded: str


async def _acme_builds_everything(client: Client, source: Source, name: str) -> Owned:
    connection = await call(client, "connect_postgres", source.connect_arguments(name))
    cid = connection["connection_id"]
    run = await call(client, "sync_table_to_bronze", {"connection_id": cid, "table_name": "orders"})
    assert run["status"] == "succeeded", run
    bronze = f"{name}_orders"
    await call(
        client,
        "transform_to_silver",
        {"bronze_table": bronze, "transformations": [{"kind": "filter", "column": "id", "op": "<", "value": 10}]},
    )
    gold = f"{name}_gold"
    await call(client, "create_gold_view", {"name": gold, "sql": f"SELECT count(*) AS n FROM silver.{bronze}"})
    uploaded = f"{name}_up"
    await call(
        client,
        "upload_file",
        {"file_content": base64.b64encode(b"id\n1\n2\n").decode(), "file_name": "a.csv", "dataset_name": uploaded},
    )
    schedule = await call(client, "schedule_sync", {"connection_id": cid, "table_name": "orders", "every": "1d"})
    return Owned(cid, run["run_id"], schedule["schedule_id"], bronze, bronze, gold, uploaded)


async def _counts(client: Client, owned: Owned) -> list[Any]:
    counts = []
    for table in (f"bronze.{owned.bronze}", f"silver.{owned.silver}", f"gold.{owned.gold}", f"bronze.{owned.uploaded}"):
        rows = await call(client, "query_sql", {"sql": f"SELECT count(*) FROM {table}"})
        counts.append(rows["rows"])
    return counts


async def test_neither_tenant_reaches_the_others_sources_runs_tables_views_or_schedules(
    tenants: Tenants, pg_cluster: PostgresCluster, create_database: CreateDatabase, unique: str
) -> None:
    mcp = tenants.stack.urls.mcp
    source = await make_source(pg_cluster, create_database, unique)
    await create_orders_table(source.admin_dsn, 50)
    name = f"iso{unique}"
    async with _client(mcp, tenants.acme) as acme:
        owned = await _acme_builds_everything(acme, source, name)
        before = await _counts(acme, owned)

    cid, run_id, schedule_id = owned.connection_id, owned.run_id, owned.schedule_id
    layers = (("bronze", owned.bronze), ("silver", owned.silver), ("gold", owned.gold), ("bronze", owned.uploaded))
    three_part = [f"tenant_acme.{layer}.{table}" for layer, table in layers]
    async with _client(mcp, tenants.globex) as globex:
        # Listing shows none of acme's objects.
        listed = json.dumps(
            [
                await call(globex, "list_sources", {}),
                await call(globex, "list_sync_runs", {}),
                await call(globex, "list_schedules", {}),
                await call(globex, "list_datasets", {}),
                await call(globex, "get_metadata", {}),
                *[await call(globex, "list_tables", {"layer": layer}) for layer in ("bronze", "silver", "gold")],
                await call(globex, "list_audit_records", {}),
            ]
        )
        for secret_of_acme in (cid, run_id, schedule_id, name, "tenant_acme"):
            assert secret_of_acme not in listed
        uris = [str(r.uri) for r in (await globex.list_resources()).resources]
        assert not [uri for uri in uris if cid in uri or run_id in uri or "tenant_acme" in uri or name in uri]

        # Guessed ids: each call is refused, whatever it is.
        guessed = {
            "test_connection": {"connection_id": cid},
            "list_source_tables": {"connection_id": cid},
            "describe_source_table": {"connection_id": cid, "table_name": "orders"},
            "query_source": {"connection_id": cid, "sql": "SELECT count(*) FROM orders"},
            "sync_table_to_bronze": {"connection_id": cid, "table_name": "orders"},
            "schedule_sync": {"connection_id": cid, "table_name": "orders", "every": "1d"},
            "list_sync_runs": {"connection_id": cid},
            "get_sync_run": {"run_id": run_id},
            "cancel_sync": {"run_id": run_id},
            "delete_schedule": {"schedule_id": schedule_id},
        }
        for tool, arguments in guessed.items():
            result = await globex.call_tool(tool, arguments)
            if tool == "list_sync_runs" and not result.is_error:  # an unknown source may list nothing
                assert result.structured_content is not None
                assert result.structured_content["runs"] == [], tool
                continue
            assert cid not in json.dumps(result.structured_content or {}), tool
            error_text(result)

        # Three-part names and bare names of acme's tables: nothing to describe, preview, query or build on.
        for table in [*three_part, owned.bronze, f"silver.{owned.silver}", f"gold.{owned.gold}"]:
            for tool, arguments in (
                ("describe_table", {"table_name": table}),
                ("preview_table", {"table_name": table}),
                ("query_sql", {"sql": f"SELECT count(*) FROM {table}"}),
                ("analyze_schema", {"table_name": table}),
            ):
                error_text(await globex.call_tool(tool, arguments))
        error_text(
            await globex.call_tool(
                "query_sql", {"sql": f"SELECT * FROM {three_part[0]} UNION ALL SELECT * FROM {three_part[0]}"}
            )
        )
        error_text(
            await globex.call_tool("transform_to_silver", {"bronze_table": three_part[0], "transformations": []})
        )
        error_text(
            await globex.call_tool(
                "create_gold_view", {"name": f"{name}_steal", "sql": f"SELECT count(*) AS n FROM {three_part[1]}"}
            )
        )
        # An upload under the name of acme's table makes globex's own table; acme's stays as it was.
        await call(
            globex,
            "upload_file",
            {
                "file_content": base64.b64encode(b"id\n7\n").decode(),
                "file_name": "b.csv",
                "dataset_name": owned.uploaded,
            },
        )
        # A three-part name is not a dataset name: refused, so acme's table cannot be named from globex at all.
        content = base64.b64encode(b"id\n7\n").decode()
        refused = error_text(
            await globex.call_tool(
                "upload_file", {"file_content": content, "file_name": "b.csv", "dataset_name": three_part[3]}
            )
        )
        assert "dataset_name" in refused, refused
        made = await call(
            globex, "upload_file", {"file_content": content, "file_name": "b.csv", "dataset_name": owned.uploaded}
        )
        assert made["table_name"].startswith("tenant_globex.bronze."), made

        # Resource URIs and completions.
        for uri in (
            f"datasource://{cid}/status",
            f"datasource://{cid}/tables",
            f"table://tenant_acme/bronze/{owned.bronze}/schema",
            f"table://tenant_acme/bronze/{owned.bronze}/preview",
            f"run://{run_id}",
            f"schedule://{schedule_id}",
        ):
            with pytest.raises(MCPError):
                await globex.read_resource(uri)
        for template, argument in (("datasource://{id}/status", "id"), ("run://{id}", "id")):
            completion = await globex.complete(
                ResourceTemplateReference(type="ref/resource", uri=template), {"name": argument, "value": ""}
            )
            assert not [v for v in completion.completion.values if v in (cid, run_id)]

    async with _client(mcp, tenants.acme) as acme:
        assert await _counts(acme, owned) == before
        assert (await call(acme, "get_sync_run", {"run_id": run_id}))["status"] == "succeeded"
        assert schedule_id in json.dumps(await call(acme, "list_schedules", {}))
        assert cid in json.dumps(await call(acme, "list_sources", {}))
        runs = await call(acme, "list_sync_runs", {"connection_id": cid})
        assert [r["run_id"] for r in runs["runs"]] == [run_id], "globex started no run of acme's source"


def _jwt(secret: str = JWT_SECRET, **overrides: Any) -> str:
    now = int(time.time())
    claims = {"iss": ISSUER, "aud": AUDIENCE, "sub": "eve", "exp": now + 600, "iat": now}
    claims |= {"scope": "lakegate:admin", "lakegate_tenant": "acme"}
    claims.update(overrides)
    return jwt.encode({k: v for k, v in claims.items() if v is not None}, secret, algorithm="HS256")


async def test_bad_bearer_tokens_get_401_and_a_read_token_cannot_write_and_nothing_changes(
    tenants: Tenants, pg_cluster: PostgresCluster, create_database: CreateDatabase, unique: str
) -> None:
    mcp = tenants.stack.urls.mcp
    source = await make_source(pg_cluster, create_database, unique)
    await create_orders_table(source.admin_dsn, 5)
    name = f"bad{unique}"
    connect = {
        "jsonrpc": "2.0",
        "id": 1,
        "method": "tools/call",
        "params": {"name": "connect_postgres", "arguments": source.connect_arguments(name)},
    }
    refused = {
        "forged": _jwt(secret="not-the-issuers-secret-but-just-as-long-as-it"),
        "expired": _jwt(exp=int(time.time()) - 3600),
        "wrong issuer": _jwt(iss="https://evil.example.com/"),
        "wrong audience": _jwt(aud="https://other.example.com/mcp"),
        "unknown api token": "lg_000000000000_not-a-real-token",
        "none": None,
    }
    async with httpx2.AsyncClient(timeout=30) as http:
        for what, token in refused.items():
            headers = {**MCP_HEADERS, **({"Authorization": f"Bearer {token}"} if token else {})}
            response = await http.post(mcp, json=connect, headers=headers)
            assert response.status_code == 401, what
            challenge = response.headers["www-authenticate"]
            assert challenge.startswith("Bearer "), what
            assert "resource_metadata=" in challenge, what
            if token is not None:
                assert 'error="invalid_token"' in challenge, what

    async with _client(mcp, _jwt()) as valid:  # the right JWT works, so the refusals above were about the token
        await call(valid, "list_sources", {})

    async with _client(mcp, tenants.acme) as admin:
        connection = await call(admin, "connect_postgres", source.connect_arguments(f"{name}ok"))
    cid = connection["connection_id"]
    async with _client(mcp, tenants.acme_reader) as reader:
        for tool, arguments in (
            ("sync_table_to_bronze", {"connection_id": cid, "table_name": "orders"}),
            ("schedule_sync", {"connection_id": cid, "table_name": "orders", "every": "1d"}),
            ("connect_postgres", source.connect_arguments(f"{name}r")),
            ("upload_file", {"file_content": "aWQKMQo=", "file_name": "r.csv", "dataset_name": f"{name}_r"}),
        ):
            text = error_text(await reader.call_tool(tool, arguments))
            assert "scope" in text, (tool, text)
        assert (await call(reader, "list_sync_runs", {"connection_id": cid}))["runs"] == []
        assert (await call(reader, "list_schedules", {}))["schedules"] == [] or cid not in json.dumps(
            await call(reader, "list_schedules", {})
        )
        sources = json.dumps(await call(reader, "list_sources", {}))
        assert f'"{name}"' not in sources
        assert f'"{name}r"' not in sources
        tables = json.dumps(await call(reader, "list_tables", {"layer": "bronze"}))
        assert f"{name}_r" not in tables


def _secrets(tenants: Tenants) -> dict[str, str]:
    stack = tenants.stack
    return {
        "acme token": tenants.acme,
        "acme reader token": tenants.acme_reader,
        "globex token": tenants.globex,
        "jwt secret": JWT_SECRET,
        **{f"nats {user}": stack.nats_password(user) for user in ("catalog", "extractor", "loader", "edge", "admin")},
        **{f"postgres {role}": stack.postgres_password(role) for role in ("postgres", "lakegate")},
    }


def assert_no_secret_in_logs(tenants: Tenants) -> None:
    # The logs are there to search: every service wrote that it started.
    assert {line.split()[2] for line in tenants.stack.logs_matching(r" started$")} >= {"catalog", "extractor", "loader"}
    secrets = _secrets(tenants)
    found = tenants.stack.secrets_in_logs(secrets.values())
    assert not found, {what: found[value] for what, value in secrets.items() if value in found}
    # Source passwords follow one pattern (tests/conftest.py make_source).
    assert not tenants.stack.logs_matching(SOURCE_PASSWORD)


async def test_after_a_sync_and_refused_logins_no_secret_is_in_any_log_of_the_stack(
    tenants: Tenants, pg_cluster: PostgresCluster, create_database: CreateDatabase, unique: str
) -> None:
    """Tokens, the JWT secret, NATS, PostgreSQL and source passwords: none is written to a service's log."""
    source = await make_source(pg_cluster, create_database, unique)
    await create_orders_table(source.admin_dsn, 5)
    async with _client(tenants.stack.urls.mcp, tenants.acme) as acme:
        wrong = {**source.connect_arguments(f"log{unique}x"), "password": f"pw-{unique}0-ünï"}
        error_text(await acme.call_tool("connect_postgres", wrong))
        connection = await call(acme, "connect_postgres", source.connect_arguments(f"log{unique}"))
        run = await call(
            acme, "sync_table_to_bronze", {"connection_id": connection["connection_id"], "table_name": "orders"}
        )
        assert run["status"] == "succeeded", run
    async with httpx2.AsyncClient(timeout=30) as http:
        headers = {**MCP_HEADERS, "Authorization": f"Bearer {_jwt(exp=int(time.time()) - 60)}"}
        assert (await http.post(tenants.stack.urls.mcp, json={"jsonrpc": "2.0"}, headers=headers)).status_code == 401

    assert_no_secret_in_logs(tenants)


async def test_a_tenants_events_subscriber_receives_its_own_sync_events_and_never_the_others(
    tenants: Tenants, pg_cluster: PostgresCluster, create_database: CreateDatabase, unique: str
) -> None:
    stack = tenants.stack
    topology = stack.topology
    runs = {}
    for tenant, token in (("acme", tenants.acme), ("globex", tenants.globex)):
        source = await make_source(pg_cluster, create_database, f"{unique}{tenant[0]}", label=f"events_{tenant}")
        await create_orders_table(source.admin_dsn, 3)
        async with _client(stack.urls.mcp, token) as client:
            connection = await call(client, "connect_postgres", source.connect_arguments(f"ev{unique}{tenant[0]}"))
            run = await call(
                client, "sync_table_to_bronze", {"connection_id": connection["connection_id"], "table_name": "orders"}
            )
            assert run["status"] == "succeeded", run
            runs[tenant] = run["run_id"]

    refusals: asyncio.Queue[str] = asyncio.Queue()

    async def refused(error: Exception) -> None:
        await refusals.put(str(error).lower())

    user = tenant_subscriber("globex")
    nc = await nats.connect(stack.urls.nats, **stack.nats_credentials(user), error_cb=refused, allow_reconnect=False)
    try:
        await nc.subscribe(f"{topology.prefix}.events.acme.>")
        assert "permissions violation" in await asyncio.wait_for(refusals.get(), timeout=10)
        durable = user  # the one consumer its permissions allow it (docs/events.md)
        js = nc.jetstream()
        sub = await js.pull_subscribe(
            f"{topology.prefix}.events.globex.>",
            durable=durable,
            stream=topology.events_stream.name,
            config=ConsumerConfig(name=durable, deliver_policy=DeliverPolicy.ALL),
        )
        seen: dict[str, str] = {}
        while runs["globex"] not in seen:
            for msg in await sub.fetch(10, timeout=30):
                event = json.loads(msg.data)
                seen[event["data"]["run_id"]] = event["data"]["tenant_id"]
                await msg.ack()
    finally:
        await nc.close()
    assert set(seen.values()) == {"globex"}
    assert runs["acme"] not in seen
