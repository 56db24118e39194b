"""Sources that can reach only what they should: never lakegate's own services, private ranges only when allowed.

Each address goes through `sources.check` over NATS, as `connect_postgres` sends it.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from urllib.parse import urlsplit

import asyncpg
import pytest
from lakegate.common.contracts.sources import CheckSource, ConnectionStatus
from lakegate.common.errors import InvalidInput, PermissionDenied
from lakegate.common.settings import NatsSettings
from lakegate.devstack.ports import free_port
from lakegate.devstack.postgres import PostgresCluster
from lakegate.extractor.app import ExtractorState, serve
from lakegate.extractor.config import ExtractorSettings
from lakegate.extractor.destinations import destination
from lakegate.extractor.logins import Login
from lakegate.extractor.reader import conninfo

from .conftest import SEAL_KEYS, FakeCatalog, login_for

PRIVATE = "unless LAKEGATE_EXTRACTOR_ALLOW_PRIVATE_SOURCES=true"
INFRASTRUCTURE = "one of this lakegate deployment's own services"
#: Stands in for the catalog's database port: the deployment names it in LAKEGATE_EXTRACTOR_INFRASTRUCTURE.
CATALOG_PORT = free_port()


@pytest.fixture(params=[False, True], ids=["private refused", "private allowed"])
def allow_private(request: pytest.FixtureRequest) -> bool:
    flag: bool = request.param
    return flag


@pytest.fixture
def settings(nats_settings: NatsSettings, allow_private: bool) -> ExtractorSettings:
    return ExtractorSettings(
        nats=nats_settings,
        seal_keys=SEAL_KEYS,
        allow_private_sources=allow_private,
        infrastructure=[f"127.0.0.1:{CATALOG_PORT}"],
        connect_timeout=2.0,
    )


@pytest.fixture
async def extractor(settings: ExtractorSettings) -> AsyncIterator[ExtractorState]:
    async with serve(settings) as state:
        yield state


async def check(catalog: FakeCatalog, login: Login) -> ConnectionStatus:
    request = CheckSource(tenant_id=catalog.tenant_id, login=catalog.seal(login))
    return await catalog.rpc.call(catalog.topology.sources_check, request, ConnectionStatus)


def _nats_port(settings: NatsSettings) -> int:
    port = urlsplit(settings.servers[0]).port
    assert port is not None
    return port


async def test_the_deployments_own_services_are_refused_even_when_private_addresses_are_allowed(
    catalog: FakeCatalog, source_dsn: str, nats_settings: NatsSettings, allow_private: bool
) -> None:
    for host, port in (
        ("127.0.0.1", CATALOG_PORT),
        ("localhost", CATALOG_PORT),
        ("0.0.0.0", CATALOG_PORT),
        ("127.0.0.1", _nats_port(nats_settings)),
        ("127.0.0.2", _nats_port(nats_settings)),
    ):
        with pytest.raises(PermissionDenied) as raised:
            await check(catalog, login_for(source_dsn, host=host, port=port))
        message = raised.value.message
        # The infrastructure check comes before the private-range one, so it is the reason either way.
        assert INFRASTRUCTURE in message, message
        assert "may never point at lakegate's infrastructure" in message
        assert f"'{host}' port {port}" in message


async def test_a_socket_path_as_host_is_refused_whatever_the_settings(
    catalog: FakeCatalog, source_dsn: str, pg_cluster: PostgresCluster
) -> None:
    for host in (str(pg_cluster.home / "sockets"), "/tmp", "/var/run/postgresql"):
        with pytest.raises(PermissionDenied, match="is a path: lakegate connects to sources over TCP only"):
            await check(catalog, login_for(source_dsn, host=host))


@pytest.mark.parametrize("allow_private", [False], ids=["private refused"])
async def test_loopback_unspecified_link_local_and_private_hosts_are_refused_naming_the_setting(
    catalog: FakeCatalog, source_dsn: str
) -> None:
    refused = {
        "127.0.0.1": "is a loopback address",
        "localhost": "resolves to 127.0.0.1, a loopback address",
        "0.0.0.0": "is an unspecified address",
        "::": "is an unspecified address",
        "::1": "is a loopback address",
        "::ffff:127.0.0.1": "a loopback address",
        "169.254.169.254": "is a link-local address",
        "10.1.2.3": "is a private-network address",
        "192.168.0.10": "is a private-network address",
        "172.16.5.4": "is a private-network address",
    }
    for host, why in refused.items():
        with pytest.raises(PermissionDenied) as raised:
            await check(catalog, login_for(source_dsn, host=host))
        assert why in raised.value.message, host
        assert PRIVATE in raised.value.message, host


@pytest.mark.parametrize("allow_private", [True], ids=["private allowed"])
async def test_with_private_addresses_allowed_a_source_on_this_machine_is_checked_by_name(
    catalog: FakeCatalog, source_dsn: str
) -> None:
    status = await check(catalog, login_for(source_dsn, host="localhost"))

    assert status.ok


@pytest.mark.parametrize("allow_private", [True], ids=["private allowed"])
async def test_the_connection_goes_to_the_address_that_was_checked(
    settings: ExtractorSettings, source_dsn: str
) -> None:
    login = login_for(source_dsn, host="localhost")
    checked = await destination(login.address, settings)

    assert checked in ("127.0.0.1", "::1")
    assert f"hostaddr='{checked}'" in conninfo(login, settings, checked)
    conn = await asyncpg.connect(host=checked, port=login.address.port, user="postgres", database="postgres")
    await conn.close()


@pytest.mark.parametrize("allow_private", [True], ids=["private allowed"])
async def test_a_host_with_a_label_longer_than_dns_allows_is_refused_as_input(
    settings: ExtractorSettings, source_dsn: str
) -> None:
    login = login_for(source_dsn, host="a" * 100 + ".example.com")

    with pytest.raises(InvalidInput, match="each dot-separated part is at most 63 characters"):
        await destination(login.address, settings)
