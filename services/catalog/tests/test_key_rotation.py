"""`python -m lakegate.catalog rotate-keys`: every stored password moves to the newest key."""

from __future__ import annotations

import asyncio
import os
import sys
from typing import TYPE_CHECKING

import asyncpg
import pytest
from cryptography.fernet import Fernet, InvalidToken
from lakegate.catalog.app import serve
from lakegate.catalog.config import CatalogSettings
from lakegate.common.contracts.sources import (
    RegisterSource,
    SourceAddress,
    SourceCredentials,
    SourceInfo,
    SourceLogin,
    SourceRef,
)
from pydantic import SecretStr

if TYPE_CHECKING:
    from conftest import Peer


async def _rotate(catalog_dsn: str, keys: str) -> tuple[int, str]:
    """Run the command as an operator would, with the settings in its environment."""
    env = {**os.environ, "LAKEGATE_CATALOG_DATABASE_URL": catalog_dsn, "LAKEGATE_CATALOG_SECRET_KEY": keys}
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "lakegate.catalog",
        "rotate-keys",
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    output, _ = await asyncio.wait_for(process.communicate(), timeout=60)
    assert process.returncode is not None
    return process.returncode, output.decode()


async def test_rotate_keys_re_encrypts_every_stored_password_so_the_old_key_can_be_dropped(
    catalog_settings: CatalogSettings, catalog_dsn: str, peer: Peer, db: asyncpg.Connection, secret_key: str
) -> None:
    async with serve(catalog_settings):
        sources = [await peer.register(name) for name in ("shop", "crm", "billing")]
        # A source whose password is only referenced has nothing encrypted to rotate.
        address = SourceAddress(host="db.internal", database="hr", user="reader")
        login = SourceLogin(address=address, password_ref=f"env:LAKEGATE_SECRET_{peer.tenant_id.upper()}_HR")
        request = RegisterSource(tenant_id=peer.tenant_id, name="hr", login=login)
        await peer.rpc.call(peer.topology.sources_register, request, SourceInfo)
    stored = "SELECT id, password_encrypted FROM sources WHERE password_encrypted IS NOT NULL"
    old_tokens = {row["id"]: row["password_encrypted"] for row in await db.fetch(stored)}

    new_key = Fernet.generate_key().decode()
    status, output = await _rotate(catalog_dsn, f"{new_key},{secret_key}")

    assert status == 0, output
    assert "re-encrypted 3 source secret(s)" in output
    assert secret_key not in output
    assert new_key not in output
    assert len(old_tokens) == 3
    for row in await db.fetch(stored):
        assert row["password_encrypted"] != old_tokens[row["id"]]
        assert Fernet(new_key.encode()).decrypt(row["password_encrypted"]).decode() == peer.password
        with pytest.raises(InvalidToken):
            Fernet(secret_key.encode()).decrypt(row["password_encrypted"])

    # The old key is gone from the settings, and every source still reads back.
    only_new = catalog_settings.model_copy(update={"secret_key": SecretStr(new_key)})
    async with serve(only_new):
        for source in sources:
            ref = SourceRef(tenant_id=peer.tenant_id, connection_id=source.connection_id)
            credentials = await peer.rpc.call(peer.topology.sources_credentials, ref, SourceCredentials)
            assert credentials.login.sealed_password == peer.password


async def test_rotate_keys_without_the_old_key_changes_nothing_and_names_the_source(
    catalog_settings: CatalogSettings, catalog_dsn: str, peer: Peer, db: asyncpg.Connection
) -> None:
    async with serve(catalog_settings):
        source = await peer.register("shop")
    before = await db.fetchval("SELECT password_encrypted FROM sources WHERE id = $1", source.connection_id)

    status, output = await _rotate(catalog_dsn, Fernet.generate_key().decode())

    assert status != 0
    assert f"the password of source {source.connection_id} cannot be decrypted" in output
    assert "list the old key after the new one" in output
    assert await db.fetchval("SELECT password_encrypted FROM sources WHERE id = $1", source.connection_id) == before


async def test_rotate_keys_with_unknown_arguments_says_how_to_call_it() -> None:
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "lakegate.catalog", "rotate", stderr=asyncio.subprocess.PIPE
    )
    _, error = await asyncio.wait_for(process.communicate(), timeout=60)

    assert process.returncode == 1
    assert "usage: python -m lakegate.catalog [rotate-keys]" in error.decode()
