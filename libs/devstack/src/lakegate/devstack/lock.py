"""One `up` per home: an advisory lock that the OS releases when its holder dies, however it dies."""

from __future__ import annotations

import contextlib
import fcntl
import os
from pathlib import Path
from typing import IO

from lakegate.devstack.processes import StartupError


class StackAlreadyRunning(StartupError):
    """Another `up` holds this home."""


class StackLock:
    """Held while a stack runs from `home`; the file names the holder's pid for `status` and for errors."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._file: IO[str] | None = None

    def acquire(self) -> None:
        """Take the lock, or raise `StackAlreadyRunning` naming the pid that holds it."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        handle = self.path.open("a+")
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.close()
            pid = holder(self.path)
            who = f" (pid {pid})" if pid else ""
            raise StackAlreadyRunning(
                f"lakegate is already running from {self.path.parent.parent}{who}: stop it with Ctrl-C in its "
                "terminal" + (f" or `kill {pid}`" if pid else "") + ", or set LAKEGATE_HOME to start another stack "
                "elsewhere (with other ports)"
            ) from None
        handle.seek(0)
        handle.truncate()
        handle.write(f"{os.getpid()}\n")
        handle.flush()
        self._file = handle

    @property
    def held(self) -> bool:
        """True while this object holds the lock."""
        return self._file is not None

    def release(self) -> None:
        """Give the lock up; safe to call when not held."""
        if self._file is None:
            return
        with contextlib.suppress(OSError):
            self._file.truncate(0)
        fcntl.flock(self._file, fcntl.LOCK_UN)
        self._file.close()
        self._file = None


def holder(path: Path) -> int | None:
    """The pid of the `up` holding the lock at `path`, or None when no running stack holds it."""
    if not path.exists():
        return None
    with path.open("a+") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.seek(0)
            text = handle.read().strip()
            return int(text) if text.isdigit() else None
        fcntl.flock(handle, fcntl.LOCK_UN)
        return None
