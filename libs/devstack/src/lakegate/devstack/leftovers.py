"""Pid records of the stack's children, so processes left behind by a killed `up` are found and stopped.

Every child runs in its own session, so Ctrl-C in the terminal reaches only the supervisor, which stops
them in order. If the supervisor itself is killed (`kill -9`, a closed laptop lid gone wrong) the
children outlive it; the next `up` reads these records and stops them before it checks its ports.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
from dataclasses import dataclass
from pathlib import Path

import psutil


@dataclass(frozen=True)
class Leftover:
    """A process an earlier `up` started and never stopped."""

    name: str
    pid: int


class ChildRecords:
    """One `<name>.pid` file per running child under `directory`."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory

    def record(self, name: str, proc: subprocess.Popen[bytes]) -> None:
        """Remember a child just started; the start time tells it apart from a later process with its pid."""
        self.directory.mkdir(parents=True, exist_ok=True)
        try:
            started = psutil.Process(proc.pid).create_time()
        except psutil.Error:
            return  # already gone: nothing can be left behind
        (self.directory / f"{name}.pid").write_text(f"{proc.pid} {started!r}\n")

    def forget(self, name: str) -> None:
        """The child stopped: drop its record."""
        (self.directory / f"{name}.pid").unlink(missing_ok=True)

    def alive(self) -> list[tuple[Leftover, psutil.Process]]:
        """Recorded children still running, newest first (the reverse of the start order)."""
        found: list[tuple[Leftover, psutil.Process]] = []
        for path in self.directory.glob("*.pid"):
            process = _still_running(path)
            if process is None:
                path.unlink(missing_ok=True)
            else:
                found.append((Leftover(path.stem, process.pid), process))
        return sorted(found, key=lambda pair: -pair[1].create_time())

    def reap(self, timeout: float = 20.0) -> list[Leftover]:
        """Stop every recorded child still running (its whole process group), newest first."""
        stopped: list[Leftover] = []
        for leftover, process in self.alive():
            _stop_group(process, timeout)
            self.forget(leftover.name)
            stopped.append(leftover)
        return stopped


def _still_running(record: Path) -> psutil.Process | None:
    try:
        pid_text, started_text = record.read_text().split()
        process = psutil.Process(int(pid_text))
        if abs(process.create_time() - float(started_text)) > 0.01 or process.status() == psutil.STATUS_ZOMBIE:
            return None
        return process
    except (ValueError, OSError, psutil.Error):
        return None


def _stop_group(process: psutil.Process, timeout: float) -> None:
    for sig in (signal.SIGTERM, signal.SIGKILL):
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(process.pid, sig)
        _, alive = psutil.wait_procs([process], timeout=timeout)
        if not alive:
            return
