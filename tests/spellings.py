"""How a secret could show up in a captured message, for tests that look for it."""

from __future__ import annotations

import base64
import json


def spellings(secret: str) -> list[bytes]:
    """Every way a message could spell `secret`: raw, JSON-escaped, base64 and URL-safe base64."""
    raw = secret.encode()
    escaped = json.dumps(secret)[1:-1].encode()  # ü as \\u00fc
    return [raw, escaped, base64.b64encode(raw), base64.urlsafe_b64encode(raw).rstrip(b"=")]
