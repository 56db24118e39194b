"""The stack's keys: generated once per home, private to their owner, reused on every start.

The catalog's Fernet key encrypts what it stores; the extractor's sealing key opens the source
passwords the edge seals for it (the edge is given only the public half).
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

from cryptography.fernet import Fernet
from lakegate.common.errors import InvalidInput
from lakegate.common.sealing import Unsealer, new_private_key
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


def ensure_seal_key(path: Path) -> str:
    """Create the extractor's sealing key at `path` on first use (mode 0600); its public key (for the edge)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        mode = stat.S_IMODE(path.stat().st_mode)
        if mode & 0o077:
            raise StartupError(
                f"the sealing key {path} can be read by other users (mode {mode:o}): run `chmod 600 {path}`"
            ) from None
    else:
        with os.fdopen(descriptor, "w") as out:
            out.write(new_private_key() + "\n")
    try:
        keys = [part.strip() for part in path.read_text().split(",") if part.strip()]
        return Unsealer(keys, origin=f"the sealing key {path}").public_key
    except InvalidInput as exc:
        raise StartupError(
            f"{exc}. Restore it from a backup; a new key makes every stored source password unreadable, so each "
            "source would have to be registered again"
        ) from None
