"""What a table or view of the local lakehouse holds now, in a few `stat` calls: a cache's key.

A Delta table's state is which table it is (its first log entry's inode and mtime, so one dropped
and written again at the same path is another table) and its latest version. Commits are numbered
without gaps and each is one file created atomically (`_delta_log/<version:020>.json`), so when the
version seen last time still has its file and the next one has none, the table is still at it: two
`stat` calls instead of reading the log. Anything else (a first look, a new commit) lists the log
once. The filesystem is the only source, so a commit made by another loader replica on the same
lakehouse is seen as soon as its file exists. A gold view's state is its definition file's inode,
mtime and size (a view is written to a temporary file and renamed into place, so a new definition
is a new inode).
"""

from __future__ import annotations

import os
import re
import threading

#: One table's state: (inode, mtime_ns) of its first log entry, then its version; None when absent.
TableState = tuple[int, int, int]
#: One view file's state: (inode, mtime_ns, size).
ViewState = tuple[int, int, int]

_COMMIT = re.compile(r"^(\d{20})\.json$")
FIRST_COMMIT = "00000000000000000000.json"
#: Versions remembered for the next look; beyond this the oldest are forgotten (costing one listing).
REMEMBERED = 4096


def _commit_file(log: str, version: int) -> str:
    return os.path.join(log, f"{version:020d}.json")


class TableStates:
    """The current state of Delta tables by path, remembering each one's version to check it cheaply."""

    def __init__(self) -> None:
        self._versions: dict[str, int] = {}
        self._lock = threading.Lock()

    def delta(self, path: str) -> TableState | None:
        """The state of the Delta table at `path`; None when there is none."""
        log = os.path.join(path, "_delta_log")
        try:
            first = os.stat(os.path.join(log, FIRST_COMMIT))
            identity = (first.st_ino, first.st_mtime_ns)
        except FileNotFoundError:
            try:  # the first entry was cleaned up after a checkpoint: the log directory stands for the table
                directory = os.stat(log)
            except FileNotFoundError:
                return None
            identity = (directory.st_ino, directory.st_ctime_ns)
        with self._lock:
            known = self._versions.get(path)
        if (
            known is not None
            and os.path.exists(_commit_file(log, known))
            and not os.path.exists(_commit_file(log, known + 1))
        ):
            return (*identity, known)
        version = self._latest(log)
        if version is None:
            return None
        with self._lock:
            if len(self._versions) >= REMEMBERED:
                self._versions.clear()
            self._versions[path] = version
        return (*identity, version)

    @staticmethod
    def _latest(log: str) -> int | None:
        try:
            names = os.listdir(log)
        except FileNotFoundError:
            return None
        versions = [int(found.group(1)) for name in names if (found := _COMMIT.match(name))]
        return max(versions) if versions else None


def view_state(path: str) -> ViewState | None:
    """The state of one gold view's definition file; None when there is none."""
    try:
        found = os.stat(path)
    except FileNotFoundError:
        return None
    return (found.st_ino, found.st_mtime_ns, found.st_size)
