"""Static API tokens and the three scopes: the file the edge verifies against and `devstack token` writes.

A token is `lg_<id>_<secret>` with 32 random bytes of secret. The file keeps only its SHA-256
(a slow password hash buys nothing against a 256-bit random secret), the tenant it acts for and
its scopes, so a leaked file grants nothing. Scopes nest: `lakegate:admin` includes
`lakegate:write`, which includes `lakegate:read`.

```json
{"tokens": [{"id": "k3v9...", "name": "laptop", "sha256": "…", "tenant_id": "default",
             "scopes": ["lakegate:read", "lakegate:write"], "created_at": "2026-12-02T16:00:00Z"}]}
```
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import secrets
from collections.abc import Iterable
from datetime import UTC, datetime
from pathlib import Path

from lakegate.common.errors import InvalidInput
from lakegate.common.names import check_tenant_id
from pydantic import BaseModel, Field

READ = "lakegate:read"
WRITE = "lakegate:write"
ADMIN = "lakegate:admin"
#: Every scope, weakest first; each includes the ones before it.
SCOPES = (READ, WRITE, ADMIN)
TOKEN_PREFIX = "lg_"


def granted(scopes: Iterable[str]) -> frozenset[str]:
    """The lakegate scopes a set of token scopes grants, with the weaker scopes each one includes."""
    given = set(scopes)
    strongest = max((SCOPES.index(scope) for scope in given if scope in SCOPES), default=-1)
    return frozenset(SCOPES[: strongest + 1])


def check_scopes(scopes: Iterable[str]) -> list[str]:
    """`scopes` in canonical order; short names (`read`, `write`, `admin`) are accepted."""
    chosen = []
    for scope in scopes:
        full = scope if scope.startswith("lakegate:") else f"lakegate:{scope}"
        if full not in SCOPES:
            raise InvalidInput(f"scope {scope!r} is not one of {', '.join(SCOPES)} (or read, write, admin)")
        chosen.append(full)
    if not chosen:
        raise InvalidInput(f"a token needs at least one scope: {', '.join(SCOPES)}")
    return [scope for scope in SCOPES if scope in chosen]


def token_digest(token: str) -> str:
    """The SHA-256 the file stores for a token."""
    return hashlib.sha256(token.encode()).hexdigest()


class ApiToken(BaseModel):
    """One static token as the file stores it: never the token itself."""

    id: str = Field(description="Public id of the token, the part after `lg_`.")
    name: str = Field(description="What the token is for, e.g. the machine or person it was given to.")
    sha256: str = Field(description="SHA-256 of the whole token, hex.")
    tenant_id: str = Field(description="The tenant every call with this token acts for.")
    scopes: list[str] = Field(description="The scopes the token grants.")
    created_at: datetime = Field(description="When the token was minted.")


class ApiTokenFile(BaseModel):
    """The tokens file."""

    tokens: list[ApiToken] = Field(default_factory=list)

    @classmethod
    def load(cls, path: Path) -> ApiTokenFile:
        """Read the file; a file that is not a tokens file is an error that names it."""
        try:
            return cls.model_validate_json(path.read_bytes())
        except ValueError as exc:
            raise InvalidInput(f"the API tokens file {path} is not valid: {exc}") from None

    def find(self, token: str) -> ApiToken | None:
        """The entry of `token`, compared in constant time."""
        digest = token_digest(token)
        return next((entry for entry in self.tokens if hmac.compare_digest(entry.sha256, digest)), None)

    def save(self, path: Path) -> None:
        """Write the file atomically, readable by its owner only."""
        path.parent.mkdir(parents=True, exist_ok=True)
        partial = path.with_suffix(".partial")
        descriptor = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(descriptor, "w") as out:
            out.write(json.dumps(self.model_dump(mode="json"), indent=2) + "\n")
        partial.replace(path)


def mint(path: Path, tenant_id: str, scopes: Iterable[str], name: str) -> str:
    """Add a new token for `tenant_id` to the file at `path` and return it; it is shown only this once."""
    check_tenant_id(tenant_id)
    chosen = check_scopes(scopes)
    token_id = secrets.token_hex(6)
    token = f"{TOKEN_PREFIX}{token_id}_{secrets.token_urlsafe(32)}"
    tokens = ApiTokenFile.load(path) if path.exists() else ApiTokenFile()
    tokens.tokens.append(
        ApiToken(
            id=token_id,
            name=name,
            sha256=token_digest(token),
            tenant_id=tenant_id,
            scopes=chosen,
            created_at=datetime.now(UTC),
        )
    )
    tokens.save(path)
    return token
