"""The stack's keys: generated once per home, private to their owner, reused on every start.

The catalog's Fernet key encrypts what it stores; the extractor's sealing key opens the source
passwords the edge seals for it (the edge is given only the public half).
"""

from __future__ import annotations

from pathlib import Path

from cryptography.fernet import Fernet
from lakegate.common.errors import InvalidInput
from lakegate.common.sealing import Unsealer, new_private_key
from lakegate.devstack.private import ensure_private
from lakegate.devstack.processes import StartupError


def ensure_fernet_key(path: Path) -> Path:
    """Create the key at `path` on first use (mode 0600); afterwards check it is still private and valid."""
    text = ensure_private(path, lambda: Fernet.generate_key().decode(), f"the catalog key {path}")
    try:
        # Several comma-separated keys rotate: the catalog encrypts with the first, decrypts with any.
        for key in text.strip().split(","):
            Fernet(key.strip())
    except ValueError as exc:
        raise StartupError(
            f"the catalog key {path} is not a valid Fernet key ({exc}): restore it from a backup; deleting it "
            "makes the stored source passwords unreadable, so every source would have to be registered again"
        ) from None
    return path


def ensure_seal_key(path: Path) -> str:
    """Create the extractor's sealing key at `path` on first use (mode 0600); its public key (for the edge)."""
    text = ensure_private(path, lambda: new_private_key() + "\n", f"the sealing key {path}")
    try:
        keys = [part.strip() for part in text.split(",") if part.strip()]
        return Unsealer(keys, origin=f"the sealing key {path}").public_key
    except InvalidInput as exc:
        raise StartupError(
            f"{exc}. Restore it from a backup; a new key makes every stored source password unreadable, so each "
            "source would have to be registered again"
        ) from None
