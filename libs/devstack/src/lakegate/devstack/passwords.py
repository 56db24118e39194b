"""Generated passwords of the local stack: made once per home, private to its owner, reused on every start."""

from __future__ import annotations

import secrets
from pathlib import Path

from lakegate.devstack.private import ensure_private
from lakegate.devstack.processes import StartupError


def ensure_password(path: Path) -> str:
    """The password kept at `path`, generated (mode 0600) on first use."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.parent.chmod(0o700)
    # URL-safe, so it can stand in a connection URL without quoting.
    password = ensure_private(path, lambda: secrets.token_urlsafe(24) + "\n", str(path)).strip()
    if not password:
        raise StartupError(f"{path} is empty: delete it and start again to generate a new password")
    return password
