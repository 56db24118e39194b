"""Sources: registration, reading back, credentials, and isolation between tenants."""

from __future__ import annotations

from typing import TYPE_CHECKING

import asyncpg
import pytest
from cryptography.fernet import Fernet
from lakegate.catalog.app import CatalogState
from lakegate.common.contracts.runs import RunRef, RunView
from lakegate.common.contracts.sources import (
    ListSources,
    RegisterSource,
    SourceAddress,
    SourceCredentials,
    SourceInfo,
    SourceList,
    SourceLogin,
    SourceRef,
)
from lakegate.common.errors import InvalidInput, NotFound

if TYPE_CHECKING:
    from conftest import Peer


async def test_a_registered_source_reads_back_without_its_password_which_is_stored_encrypted(
    catalog: CatalogState, peer: Peer, db: asyncpg.Connection, secret_key: str
) -> None:
    registered = await peer.register("shop")
    assert registered.connection_id.startswith("src_")
    assert registered.tenant_id == peer.tenant_id
    assert registered.address.host == "db.example.internal"
    assert registered.address.port == 5433

    ref = SourceRef(tenant_id=peer.tenant_id, connection_id=registered.connection_id)
    assert await peer.rpc.call(peer.topology.sources_get, ref, SourceInfo) == registered
    listed = await peer.rpc.call(peer.topology.sources_list, ListSources(tenant_id=peer.tenant_id), SourceList)
    assert listed.sources == [registered]

    credentials = await peer.rpc.call(peer.topology.sources_credentials, ref, SourceCredentials)
    assert credentials.source == registered
    assert credentials.login.address == registered.address
    assert credentials.login.sealed_password == peer.password

    row_text = await db.fetchval("SELECT row_to_json(s)::text FROM sources s WHERE id = $1", registered.connection_id)
    assert peer.password not in row_text
    token = await db.fetchval("SELECT password_encrypted FROM sources WHERE id = $1", registered.connection_id)
    assert peer.password.encode() not in token
    assert Fernet(secret_key.encode()).decrypt(token).decode() == peer.password


async def test_a_second_source_with_the_same_name_is_refused_naming_the_existing_one(
    catalog: CatalogState, peer: Peer
) -> None:
    first = await peer.register("shop")

    with pytest.raises(InvalidInput) as refused:
        await peer.register("shop")

    assert first.connection_id in str(refused.value)
    assert "'shop' is already registered" in str(refused.value)
    assert peer.password not in str(refused.value)


async def test_a_name_that_would_write_the_same_bronze_tables_as_another_source_is_refused(
    catalog: CatalogState, peer: Peer
) -> None:
    first = await peer.register("Shop DB")

    with pytest.raises(InvalidInput, match=r"same bronze tables \(shop_db_\*\) as source 'Shop DB'") as refused:
        await peer.register("shop_db")

    assert first.connection_id in str(refused.value)


async def test_the_same_name_may_be_used_by_two_tenants(catalog: CatalogState, peer: Peer) -> None:
    mine = await peer.register("shop")
    theirs = await peer.register("shop", tenant_id=f"{peer.tenant_id}_other")
    assert mine.connection_id != theirs.connection_id


async def test_a_source_name_without_letters_or_digits_is_refused(catalog: CatalogState, peer: Peer) -> None:
    with pytest.raises(InvalidInput, match="has no letters or digits"):
        await peer.register("--")


async def test_another_tenant_can_neither_see_nor_read_nor_start_runs_on_a_source(
    catalog: CatalogState, peer: Peer
) -> None:
    source = await peer.register("shop")
    run = await peer.start(source.connection_id)
    other = f"{peer.tenant_id}_other"
    theirs = SourceRef(tenant_id=other, connection_id=source.connection_id)
    missing = SourceRef(tenant_id=other, connection_id="src_0000000000000000")

    with pytest.raises(NotFound) as not_theirs:
        await peer.rpc.call(peer.topology.sources_get, theirs, SourceInfo)
    with pytest.raises(NotFound) as not_there:
        await peer.rpc.call(peer.topology.sources_get, missing, SourceInfo)
    # A foreign source and a missing one get the same answer, so ids cannot be probed.
    assert str(not_theirs.value) == str(not_there.value).replace(missing.connection_id, source.connection_id)

    with pytest.raises(NotFound):
        await peer.rpc.call(peer.topology.sources_credentials, theirs, SourceCredentials)
    with pytest.raises(NotFound):
        await peer.start(source.connection_id, tenant_id=other)
    with pytest.raises(NotFound):
        await peer.rpc.call(peer.topology.runs_get, RunRef(tenant_id=other, run_id=run.run_id), RunView)
    listed = await peer.rpc.call(peer.topology.sources_list, ListSources(tenant_id=other), SourceList)
    assert listed.sources == []


async def test_a_source_registered_by_reference_stores_only_the_reference_and_hands_it_to_the_extractor(
    catalog: CatalogState, peer: Peer, db: asyncpg.Connection
) -> None:
    reference = f"env:LAKEGATE_SECRET_{peer.tenant_id.upper()}_CRM"
    request = RegisterSource(
        tenant_id=peer.tenant_id,
        name="crm",
        login=SourceLogin(
            address=SourceAddress(host="crm.internal", port=5432, database="crm", user="reader"), password_ref=reference
        ),
    )

    registered = await peer.rpc.call(peer.topology.sources_register, request, SourceInfo)
    ref = SourceRef(tenant_id=peer.tenant_id, connection_id=registered.connection_id)
    credentials = await peer.rpc.call(peer.topology.sources_credentials, ref, SourceCredentials)

    assert registered.password_ref == reference
    assert credentials.login.password_ref == reference
    assert credentials.login.sealed_password is None
    row = await db.fetchrow(
        "SELECT password_encrypted, password_ref FROM sources WHERE id = $1", registered.connection_id
    )
    assert row is not None
    assert row["password_encrypted"] is None
    assert row["password_ref"] == reference
