"""Who may call the HTTP edge: the edge as an OAuth 2.1 resource server, and static API tokens.

Built on the SDK's `mcp.server.auth`: `TokenVerifier` implementations here, its
`BearerAuthBackend` and `RequireAuthMiddleware` in front of the MCP endpoint (a request without a
valid token gets `401` with `WWW-Authenticate: Bearer error="invalid_token", resource_metadata=…`;
a token without any lakegate scope gets `403 insufficient_scope`), and its RFC 9728 route for the
protected-resource metadata.

    bearer token ──▶ Verifiers ──lg_…──▶ ApiTokenVerifier  (the hashed tokens file)
                               └─other─▶ JwtVerifier       (signature by JWKS URL, public key or
                                                            shared secret; iss, aud, exp, nbf)

Either returns an `AccessToken` whose `scopes` are already widened to the scopes they include
(`api_tokens.granted`) and whose tenant is in the `lakegate_tenant` claim or a `tenant:<id>`
scope, where `tenancy.Tenancy` reads it. A token that fails any check is `None`, which the SDK
answers with 401; why it failed is logged (never the token).

Every request carries its token again, so each verifier keeps what it granted: an API token's
`AccessToken` until the tokens file changes (the file is still checked on every request, so a
revoked token is refused at once), a JWT's until it expires, at most `JWT_CACHE_SECONDS` (so a key
dropped from the JWKS stops its tokens within that time). Refusals are not kept.
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import jwt
from lakegate.common.api_tokens import READ, SCOPES, TOKEN_PREFIX, ApiTokenFile, granted
from lakegate.common.errors import InvalidInput
from lakegate.edge.config import EdgeSettings
from lakegate.edge.tenancy import TENANT_CLAIM
from mcp.server.auth.provider import AccessToken, TokenVerifier
from mcp.server.auth.routes import create_protected_resource_routes
from mcp.server.auth.settings import AuthSettings
from pydantic import AnyHttpUrl
from starlette.routing import BaseRoute, Route

log = logging.getLogger(__name__)

#: Scopes that are not lakegate's but are kept on the token (the tenant may be named by one).
_KEPT_PREFIX = "tenant:"
#: Longest a verified JWT is trusted again without checking its signature; and how many are kept.
JWT_CACHE_SECONDS = 300.0
CACHED_TOKENS = 4096


def _widened(scopes: list[str]) -> list[str]:
    """Token scopes with every lakegate scope each one includes, lakegate's first."""
    lakegate = [scope for scope in SCOPES if scope in granted(scopes)]
    return [*lakegate, *(scope for scope in scopes if scope.startswith(_KEPT_PREFIX))]


@dataclass
class ApiTokenVerifier:
    """Static tokens from a file of hashes; the file is read again when it changes, so minting needs no restart."""

    path: Path
    _tokens: ApiTokenFile = field(default_factory=ApiTokenFile, init=False)
    _read: tuple[int, int] | None = field(default=None, init=False)
    #: What each token was granted, for the file as read now (emptied when it is read again).
    _granted: dict[str, AccessToken] = field(default_factory=dict, init=False)

    async def verify_token(self, token: str) -> AccessToken | None:
        """The token's tenant and scopes, or None when the file does not hold it."""
        tokens = self._current()
        granted = self._granted.get(token)
        if granted is not None:
            return granted
        entry = tokens.find(token)
        if entry is None:
            log.info("refused an API token that is not in %s", self.path)
            return None
        granted = AccessToken(
            token=token,
            client_id=f"api-token:{entry.id}",
            scopes=_widened(entry.scopes),
            subject=f"api-token:{entry.id} ({entry.name})",
            claims={TENANT_CLAIM: entry.tenant_id},
        )
        if len(self._granted) < CACHED_TOKENS:  # only tokens of the file get here, so this rarely binds
            self._granted[token] = granted
        return granted

    def _current(self) -> ApiTokenFile:
        try:
            stat = self.path.stat()
        except FileNotFoundError:
            return ApiTokenFile()
        seen = (stat.st_mtime_ns, stat.st_size)
        if seen != self._read:
            try:
                self._tokens = ApiTokenFile.load(self.path)
            except InvalidInput as exc:
                log.warning("%s; keeping the tokens read before", exc)
            self._read = seen
            self._granted = {}
        return self._tokens


@dataclass
class JwtVerifier:
    """Bearer JWTs from an OAuth authorization server: signature, issuer, audience, expiry."""

    issuer: str
    audience: str
    algorithms: list[str]
    key: Any = None  # a public key (PEM text) or a shared secret; None: fetched from jwks_url
    jwks_url: str | None = None
    leeway_seconds: float = 30.0
    _jwks: jwt.PyJWKClient | None = field(default=None, init=False)
    #: Verified tokens and until when (`time.time()`) they may be taken without checking them again.
    _verified: dict[str, tuple[AccessToken, float]] = field(default_factory=dict, init=False)

    def __post_init__(self) -> None:
        if self.jwks_url is not None:
            self._jwks = jwt.PyJWKClient(self.jwks_url, cache_keys=True, lifespan=300)

    async def verify_token(self, token: str) -> AccessToken | None:
        """The token's claims, or None when any check fails."""
        now = time.time()
        verified = self._verified.get(token)
        if verified is not None:
            if now < verified[1]:
                return verified[0]
            del self._verified[token]
        access = await self._verify(token)
        if access is not None and access.expires_at is not None:
            if len(self._verified) >= CACHED_TOKENS:
                # Expired ones first; if all are current, start over rather than track recency per request.
                self._verified = {t: v for t, v in self._verified.items() if now < v[1]}
                if len(self._verified) >= CACHED_TOKENS:
                    self._verified.clear()
            self._verified[token] = (access, min(access.expires_at + self.leeway_seconds, now + JWT_CACHE_SECONDS))
        return access

    async def _verify(self, token: str) -> AccessToken | None:
        try:
            key = self.key
            if self._jwks is not None:
                key = (await asyncio.to_thread(self._jwks.get_signing_key_from_jwt, token)).key
            claims: dict[str, Any] = jwt.decode(
                token,
                key,
                algorithms=self.algorithms,
                audience=self.audience,
                issuer=self.issuer,
                leeway=self.leeway_seconds,
                options={"require": ["exp", "iss", "aud"]},
            )
        except jwt.PyJWTError as exc:
            log.info("refused a bearer JWT: %s", exc)
            return None
        scopes = claims.get("scope", claims.get("scp", ""))
        listed = scopes.split() if isinstance(scopes, str) else [str(scope) for scope in scopes]
        subject = claims.get("sub")
        return AccessToken(
            token=token,
            client_id=str(claims.get("client_id") or claims.get("azp") or subject or "unknown-client"),
            scopes=_widened(listed),
            expires_at=int(claims["exp"]),
            resource=self.audience,
            subject=str(subject) if subject is not None else None,
            claims=claims,
        )


@dataclass
class Verifiers:
    """API tokens by their prefix, everything else as a JWT; either kind may be absent."""

    api_tokens: ApiTokenVerifier | None
    jwts: JwtVerifier | None

    async def verify_token(self, token: str) -> AccessToken | None:
        """Whichever verifier the token is for."""
        if token.startswith(TOKEN_PREFIX):
            return await self.api_tokens.verify_token(token) if self.api_tokens else None
        return await self.jwts.verify_token(token) if self.jwts else None


@dataclass(frozen=True)
class Authentication:
    """What the MCP server needs to require bearer tokens."""

    settings: AuthSettings
    verifier: TokenVerifier


def authentication(settings: EdgeSettings) -> Authentication | None:
    """Bearer authentication as the settings ask for it; None when none is configured (loopback only)."""
    if not settings.authenticates:
        return None
    api_tokens = None
    if settings.tokens_file is not None:
        api_tokens = ApiTokenVerifier(settings.tokens_file)
    jwts = None
    if settings.oauth_issuer is not None:
        jwts = JwtVerifier(
            issuer=settings.oauth_issuer,
            audience=settings.oauth_audience or settings.resource_url,
            algorithms=settings.oauth_algorithms,
            key=_jwt_key(settings),
            jwks_url=settings.oauth_jwks_url,
        )
    auth = AuthSettings(
        # Without an authorization server (API tokens only) the metadata names the edge itself.
        issuer_url=AnyHttpUrl(settings.oauth_issuer or settings.resource_url),
        resource_server_url=AnyHttpUrl(settings.resource_url),
        # The JWT verifier checks the audience itself, so the SDK's resource check stays off.
        validate_token_resource=False,
        # Every lakegate scope includes read, so any lakegate token passes; one without is 403.
        required_scopes=[READ],
    )
    return Authentication(auth, Verifiers(api_tokens, jwts))


def metadata_routes(settings: EdgeSettings) -> list[BaseRoute]:
    """RFC 9728 protected-resource metadata listing every lakegate scope (the SDK's lists only the required one)."""
    routes = create_protected_resource_routes(
        resource_url=AnyHttpUrl(settings.resource_url),
        authorization_servers=[AnyHttpUrl(settings.oauth_issuer or settings.resource_url)],
        scopes_supported=list(SCOPES),
        resource_name="lakegate",
    )
    return list(routes)


def replace_metadata_route(routes: list[BaseRoute], settings: EdgeSettings) -> None:
    """Swap the SDK's metadata route for ours, keeping its place (and so its precedence)."""
    ours = metadata_routes(settings)
    paths = {route.path for route in ours if isinstance(route, Route)}
    for index, route in enumerate(routes):
        if isinstance(route, Route) and route.path in paths:
            routes[index] = ours[0]


def _jwt_key(settings: EdgeSettings) -> Any:
    if settings.oauth_jwks_url is not None:
        return None
    if settings.oauth_shared_secret is not None:
        return settings.oauth_shared_secret.get_secret_value()
    key = settings.oauth_public_key or ""
    if not key.lstrip().startswith("-----BEGIN") and os.path.isfile(key):
        return Path(key).read_text()
    return key
