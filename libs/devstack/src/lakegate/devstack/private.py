"""Files of the stack's home that only their owner may read: made once, checked on every later start."""

from __future__ import annotations

import os
import stat
from collections.abc import Callable
from pathlib import Path

from lakegate.devstack.processes import StartupError


def ensure_private(path: Path, make: Callable[[], str], label: str) -> str:
    """The text at `path`, written with `make()` (mode 0600) on first use; refused once others can read it.

    `label` names the file in the refusal (`the catalog key <path>`).
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        mode = stat.S_IMODE(path.stat().st_mode)
        if mode & 0o077:
            raise StartupError(f"{label} can be read by other users (mode {mode:o}): run `chmod 600 {path}`") from None
        return path.read_text(encoding="utf-8")
    text = make()
    with os.fdopen(descriptor, "w", encoding="utf-8") as out:
        out.write(text)
    return text
