"""`sources.list` answered with the JSON PostgreSQL writes: the models' very bytes, on every replica, after failures."""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

import asyncpg
from lakegate.catalog.app import CatalogState, serve
from lakegate.catalog.config import CatalogSettings
from lakegate.catalog.database import READERS_APPLICATION
from lakegate.common.contracts.sources import (
    ListSources,
    RegisterSource,
    SourceAddress,
    SourceInfo,
    SourceList,
    SourceLogin,
)
from lakegate.common.rpc import reply_json

from .texts import AWKWARD

if TYPE_CHECKING:
    from conftest import Peer


async def _register(peer: Peer, name: str, *, referenced: bool = False) -> SourceInfo:
    address = SourceAddress(host=f"h {AWKWARD}", port=6543, database=f"db {AWKWARD}", user=f"u {AWKWARD}")
    login = (
        SourceLogin(address=address, password_ref="env:SHOP_PASSWORD")
        if referenced
        else SourceLogin(address=address, sealed_password=peer.password)
    )
    request = RegisterSource(tenant_id=peer.tenant_id, name=name, login=login)
    return await peer.rpc.call(peer.topology.sources_register, request, SourceInfo)


async def _listed_bytes(peer: Peer) -> bytes:
    """The reply to `sources.list` as it comes over NATS."""
    request = ListSources(tenant_id=peer.tenant_id).model_dump_json().encode()
    return bytes((await peer.nc.request(peer.topology.sources_list, request, timeout=20)).data)


async def test_a_listing_is_byte_for_byte_the_reply_the_models_would_make(
    catalog: CatalogState, peer: Peer, db: asyncpg.Connection
) -> None:
    assert await _listed_bytes(peer) == reply_json(SourceList(sources=[]))
    names = [f"shop {AWKWARD}", "b-shop", "c shop", "d shop"]
    for name in names:
        await _register(peer, name, referenced=name == "b-shop")
    # A whole second (pydantic writes no fraction), a tie on it (ordered by name), trailing zeros, one microsecond.
    for name, at in zip(
        names,
        (
            "2026-01-02 03:04:05.000001+00",
            "2026-01-02 03:04:05+00",
            "2026-01-02 03:04:05+00",
            "2026-01-02 03:04:05.12+00",
        ),
        strict=True,
    ):
        await db.execute("UPDATE sources SET created_at = $2::text::timestamptz WHERE name = $1", name, at)

    expected = SourceList(sources=await catalog.handlers.sources.of_tenant(peer.tenant_id))
    assert [s.name for s in expected.sources] == ["b-shop", "c shop", f"shop {AWKWARD}", "d shop"]
    assert await _listed_bytes(peer) == reply_json(expected)
    listed = await peer.rpc.call(peer.topology.sources_list, ListSources(tenant_id=peer.tenant_id), SourceList)
    assert listed == expected


async def test_a_source_registered_through_one_replica_is_listed_at_once_by_every_replica(
    catalog: CatalogState, catalog_settings: CatalogSettings, peer: Peer
) -> None:
    async with serve(catalog_settings) as second:
        for round_ in range(3):
            registered = await _register(peer, f"shop {round_}")  # answered by either replica
            for replica in (catalog, second):
                reply = await replica.handlers.list_sources(ListSources(tenant_id=peer.tenant_id))
                assert reply.error is None
                listed = SourceList.model_validate(reply.result)
                assert listed.sources[-1] == registered
                assert len(listed.sources) == round_ + 1


async def test_a_listing_after_the_database_ended_the_readers_connections_is_answered_on_new_ones(
    catalog: CatalogState, peer: Peer, db: asyncpg.Connection
) -> None:
    registered = await _register(peer, "shop")
    request = ListSources(tenant_id=peer.tenant_id)
    assert (await peer.rpc.call(peer.topology.sources_list, request, SourceList)).sources == [registered]

    ended = await db.fetchval(
        "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE application_name = $1 "
        "AND datname = current_database()",
        READERS_APPLICATION,
    )
    assert ended >= 1

    for _ in range(5):
        assert (await peer.rpc.call(peer.topology.sources_list, request, SourceList)).sources == [registered]


async def test_another_tenants_sources_are_not_listed(catalog: CatalogState, peer: Peer) -> None:
    await _register(peer, "shop")
    other = ListSources(tenant_id=f"{peer.tenant_id}x")
    assert (await peer.rpc.call(peer.topology.sources_list, other, SourceList)).sources == []


async def test_listings_asked_at_once_by_several_tenants_while_the_reader_is_busy_each_get_their_own_sources(
    catalog_settings: CatalogSettings, peer: Peer
) -> None:
    # One reader connection: while it serves the first request, the others wait and are read together.
    async with serve(catalog_settings.model_copy(update={"read_connections": 1})) as state:
        tenants = [f"{peer.tenant_id}{n}" for n in range(3)]
        for n, tenant in enumerate(tenants):
            for index in range(n + 1):
                await peer.register(f"shop {index}", tenant_id=tenant)
        expected = {
            tenant: reply_json(SourceList(sources=await state.handlers.sources.of_tenant(tenant))) for tenant in tenants
        }
        asked = [tenants[n % 3] for n in range(30)] + [f"{peer.tenant_id}none"]

        async def listed(tenant: str) -> bytes:
            request = ListSources(tenant_id=tenant).model_dump_json().encode()
            return bytes((await peer.nc.request(peer.topology.sources_list, request, timeout=20)).data)

        answers = await asyncio.gather(*(listed(tenant) for tenant in asked))

    assert answers[:-1] == [expected[tenant] for tenant in asked[:-1]]
    assert answers[-1] == reply_json(SourceList(sources=[]))
