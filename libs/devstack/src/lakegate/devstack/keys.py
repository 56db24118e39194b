"""The catalog's Fernet key: generated once per home, private to its owner, reused on every start."""

from __future__ import annotations

import os
import stat
from pathlib import Path

from cryptography.fernet import Fernet
from lakegate.devstack.processes import StartupError


def ensure_fernet_key(path: Path) -> Path:
    """Create the key at `path` on first use (mode 0600); afterwards check it is still private and valid."""
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return _checked(path)
    with os.fdopen(descriptor, "wb") as out:
        out.write(Fernet.generate_key())
    return path


def _checked(path: Path) -> Path:
    mode = stat.S_IMODE(path.stat().st_mode)
    if mode & 0o077:
        raise StartupError(f"the catalog key {path} can be read by other users (mode {mode:o}): run `chmod 600 {path}`")
    try:
        # Several comma-separated keys rotate: the catalog encrypts with the first, decrypts with any.
        for key in path.read_text().strip().split(","):
            Fernet(key.strip())
    except ValueError as exc:
        raise StartupError(
            f"the catalog key {path} is not a valid Fernet key ({exc}): restore it from a backup; deleting it "
            "makes the stored source passwords unreadable, so every source would have to be registered again"
        ) from None
    return path
