"""connect_postgres with `password_ref`: only the reference travels (the extractor resolves it), and a
reference that is not one, or one given with a password, is refused naming the argument."""

from __future__ import annotations

import pytest
from lakegate.devstack.toolresults import error_text, structured
from lakegate.edge.app import EdgeState
from mcp import Client

from .conftest import Fakes

ADDRESS = {"name": "shop", "host": "db.internal", "database": "shop", "user": "reader"}


async def test_a_secret_reference_goes_to_the_check_and_the_catalog_instead_of_a_password(
    edge: EdgeState, fakes: Fakes, tenant_id: str
) -> None:
    reference = f"env:LAKEGATE_SECRET_{tenant_id.upper()}_SHOP"
    async with Client(edge.server) as client:
        connection = structured(await client.call_tool("connect_postgres", {**ADDRESS, "password_ref": reference}))

    [checked] = fakes.extractor.checked
    [registered] = fakes.catalog.registered
    for login in (checked.login, registered.login):
        assert login.password_ref == reference
        assert login.sealed_password is None
    assert connection["connection_id"] in fakes.catalog.sources


@pytest.mark.parametrize("reference", ["SHOP_PASSWORD", "env:", "env:1BAD", "file:relative/path", "vault:x"])
async def test_something_that_is_not_a_reference_is_refused_naming_password_ref_and_the_two_forms(
    edge: EdgeState, fakes: Fakes, reference: str
) -> None:
    async with Client(edge.server) as client:
        message = error_text(await client.call_tool("connect_postgres", {**ADDRESS, "password_ref": reference}))

    assert "password_ref" in message
    assert "env:NAME" in message
    assert "file:/" in message
    assert fakes.extractor.checked == []


async def test_a_password_and_a_reference_together_are_refused(edge: EdgeState, fakes: Fakes) -> None:
    arguments = {**ADDRESS, "password": "pw-Secret-1", "password_ref": "env:LAKEGATE_SECRET_X_SHOP"}
    async with Client(edge.server) as client:
        message = error_text(await client.call_tool("connect_postgres", arguments))

    assert "either password or password_ref" in message
    assert "pw-Secret-1" not in message
    assert fakes.extractor.checked == []
