"""Who the caller is: the one code path that decides which tenant a tool call acts for.

A caller with an access token (streamable HTTP behind OAuth) acts for the tenant its token names,
in the `lakegate_tenant` claim or a `tenant:<id>` scope. A caller without one (stdio, or loopback
HTTP) acts for the configured default tenant. No tool takes a tenant argument.

What the caller may do comes from the same place: a token's lakegate scopes (`scopes.py` says
which tool needs which), every scope for a caller without a token, who is the one local user.
"""

from __future__ import annotations

from dataclasses import dataclass

from lakegate.common.api_tokens import SCOPES, granted
from lakegate.common.errors import LakegateError, PermissionDenied
from lakegate.common.names import check_tenant_id
from mcp.server.auth.middleware.auth_context import get_access_token
from mcp.server.auth.provider import AccessToken

TENANT_CLAIM = "lakegate_tenant"
#: The actor of a call without an access token (stdio, loopback HTTP).
LOCAL_ACTOR = "local"
TENANT_SCOPE_PREFIX = "tenant:"
#: What a caller without a token may do: everything (made once, not per call).
EVERY_SCOPE = frozenset(SCOPES)


def tenant_from_token(token: AccessToken) -> str | None:
    """The tenant an access token names, from its claim or else its `tenant:<id>` scope."""
    claimed = (token.claims or {}).get(TENANT_CLAIM)
    if isinstance(claimed, str) and claimed:
        return claimed
    prefix = TENANT_SCOPE_PREFIX
    scoped = [scope.removeprefix(prefix) for scope in token.scopes if scope.startswith(prefix)]
    return scoped[0] if len(scoped) == 1 else None


@dataclass(frozen=True)
class Tenancy:
    """Resolves the tenant of the current tool call."""

    default_tenant: str

    def __post_init__(self) -> None:
        check_tenant_id(self.default_tenant)  # once, here: a call asks for its tenant five times

    def current(self) -> str:
        """The caller's tenant: from its access token when it has one, else the default tenant."""
        token = get_access_token()
        if token is None:
            return self.default_tenant
        tenant = tenant_from_token(token)
        if tenant is None:
            raise PermissionDenied(
                f"the access token of client {token.client_id!r} names no single tenant: issue it with a "
                f"{TENANT_CLAIM!r} claim or exactly one '{TENANT_SCOPE_PREFIX}<id>' scope"
            )
        return check_tenant_id(tenant)

    def known(self) -> str | None:
        """The caller's tenant, or None when its token names no valid one (for bookkeeping that must not raise)."""
        try:
            return self.current()
        except LakegateError:
            return None

    def actor(self) -> str:
        """Who is calling, for the audit log: the token's subject (or client id), else `local`."""
        token = get_access_token()
        if token is None:
            return LOCAL_ACTOR
        return token.subject or token.client_id

    def scopes(self) -> frozenset[str]:
        """The lakegate scopes of the caller: its token's (with those they include), else every scope."""
        token = get_access_token()
        if token is None:
            return EVERY_SCOPE
        return granted(token.scopes)
