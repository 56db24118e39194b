"""Signed JWTs for the edge's tests, and the public key an edge verifies them with."""

from __future__ import annotations

import time
from typing import Any

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from lakegate.common.api_tokens import READ, WRITE

ISSUER = "https://login.example.com/"
AUDIENCE = "https://lakegate.example.com/mcp"


def pem(key: rsa.RSAPrivateKey) -> str:
    """The PEM of `key`'s public half (`LAKEGATE_EDGE_OAUTH_PUBLIC_KEY`)."""
    public = key.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    return public.decode()


def signed_jwt(key: rsa.RSAPrivateKey, **overrides: Any) -> str:
    """A JWT for alice of tenant globex, read and write scopes, valid 10 minutes; a claim given as None is left out."""
    now = int(time.time())
    claims = {
        "iss": ISSUER,
        "aud": AUDIENCE,
        "sub": "alice",
        "exp": now + 600,
        "iat": now,
        "scope": f"{READ} {WRITE}",
        "lakegate_tenant": "globex",
    }
    claims.update(overrides)
    return jwt.encode({k: v for k, v in claims.items() if v is not None}, key, algorithm="RS256")
