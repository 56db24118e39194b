"""Generated passwords of the local stack: made once per home, private to its owner, reused on every start."""

from __future__ import annotations

import os
import secrets
import stat
from pathlib import Path

from lakegate.devstack.processes import StartupError


def ensure_password(path: Path) -> str:
    """The password kept at `path`, generated (mode 0600) on first use."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.parent.chmod(0o700)
    try:
        descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return _read_password(path)
    # URL-safe, so it can stand in a connection URL without quoting.
    password = secrets.token_urlsafe(24)
    with os.fdopen(descriptor, "w", encoding="utf-8") as out:
        out.write(password + "\n")
    return password


def _read_password(path: Path) -> str:
    mode = stat.S_IMODE(path.stat().st_mode)
    if mode & 0o077:
        raise StartupError(f"{path} can be read by other users (mode {mode:o}): run `chmod 600 {path}`")
    password = path.read_text(encoding="utf-8").strip()
    if not password:
        raise StartupError(f"{path} is empty: delete it and start again to generate a new password")
    return password
