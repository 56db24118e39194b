"""Which tenant a tool call acts for: the access token's, or else the configured default."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import pytest
from lakegate.common.errors import InvalidInput, PermissionDenied
from lakegate.edge.tenancy import Tenancy
from mcp.server.auth.middleware.auth_context import auth_context_var
from mcp.server.auth.middleware.bearer_auth import AuthenticatedUser
from mcp.server.auth.provider import AccessToken


@contextmanager
def authenticated(scopes: list[str], claims: dict[str, object] | None = None) -> Iterator[None]:
    """Run the body as the auth middleware runs a request that carried this token."""
    token = AccessToken(token="opaque", client_id="agent-7", scopes=scopes, claims=claims)
    reset = auth_context_var.set(AuthenticatedUser(token))
    try:
        yield
    finally:
        auth_context_var.reset(reset)


def test_a_caller_without_a_token_acts_for_the_default_tenant() -> None:
    assert Tenancy("acme").current() == "acme"


def test_a_token_names_its_tenant_by_claim_before_scope() -> None:
    with authenticated(["tenant:globex", "mcp"], {"lakegate_tenant": "initech"}):
        assert Tenancy("acme").current() == "initech"
    with authenticated(["mcp", "tenant:globex"]):
        assert Tenancy("acme").current() == "globex"


def test_a_token_that_names_no_single_tenant_is_refused_rather_than_given_the_default() -> None:
    for scopes in (["mcp"], ["tenant:globex", "tenant:initech"]):
        with authenticated(scopes), pytest.raises(PermissionDenied, match=r"agent-7.*names no single tenant"):
            Tenancy("acme").current()


def test_a_tenant_that_is_not_a_slug_is_refused() -> None:
    with authenticated(["tenant:../other"]), pytest.raises(InvalidInput, match="tenant id"):
        Tenancy("acme").current()


def test_the_actor_is_the_tokens_subject_or_client_and_local_without_a_token() -> None:
    assert Tenancy("acme").actor() == "local"
    with authenticated(["tenant:globex"]):
        assert Tenancy("acme").actor() == "agent-7"
    token = AccessToken(token="opaque", client_id="agent-7", scopes=[], subject="alice@example.com")
    reset = auth_context_var.set(AuthenticatedUser(token))
    try:
        assert Tenancy("acme").actor() == "alice@example.com"
    finally:
        auth_context_var.reset(reset)
