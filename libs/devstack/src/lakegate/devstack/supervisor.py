"""Keeps the services of the local stack running, as Kubernetes would: start in order, probe
readiness, restart a process that dies (with backoff), stop in reverse order.

Each service runs as its own OS process in its own process group, writing to its own log. One
watcher thread per service waits on its process; when the process exits while the stack is not
stopping, the watcher logs why, waits out the backoff and starts it again.
"""

from __future__ import annotations

import contextlib
import http.client
import logging
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from lakegate.devstack.leftovers import ChildRecords
from lakegate.devstack.ports import accepts_connections
from lakegate.devstack.processes import StartupError, spawn, stop, wait_until

log = logging.getLogger("lakegate.devstack")


@dataclass(frozen=True)
class ServiceLaunch:
    """How to run one service: its command, its environment, and where it answers `/readyz`."""

    name: str
    command: tuple[str, ...]
    env: Mapping[str, str]
    health_port: int
    host: str = "127.0.0.1"
    #: Other ports that must accept connections before the service counts as ready (the edge's MCP port).
    serves: tuple[int, ...] = ()

    @classmethod
    def module(
        cls, name: str, module: str, env: Mapping[str, str], health_port: int, *, serves: tuple[int, ...] = ()
    ) -> ServiceLaunch:
        """A service run as `python -m <module>`, so it is recognisable in `ps`."""
        return cls(name, (sys.executable, "-m", module), env, health_port, serves=serves)

    @property
    def readiness_url(self) -> str:
        return f"http://{self.host}:{self.health_port}/readyz"


@dataclass(frozen=True)
class Backoff:
    """Delays between restarts of a crashing service: doubling from `first` up to `limit`."""

    first: float = 1.0
    limit: float = 30.0
    #: A run at least this long counts as healthy, so the next crash starts from `first` again.
    healthy_after: float = 60.0

    def delay(self, crashes_in_a_row: int) -> float:
        """Seconds to wait before restart number `crashes_in_a_row` (counted from 1)."""
        return float(min(self.limit, self.first * 2 ** max(0, crashes_in_a_row - 1)))


def answers_ready(host: str, port: int, timeout: float = 2.0) -> bool:
    """True when `http://host:port/readyz` answers 200 (no proxy: this is always a local probe)."""
    conn = http.client.HTTPConnection(host, port, timeout=timeout)
    try:
        conn.request("GET", "/readyz")
        return conn.getresponse().status == 200
    except (OSError, http.client.HTTPException):
        return False
    finally:
        conn.close()


@dataclass
class _Child:
    launch: ServiceLaunch
    log: Path
    proc: subprocess.Popen[bytes]
    restarts: int = 0
    started: float = field(default_factory=time.monotonic)
    watcher: threading.Thread | None = field(default=None, repr=False)


class Supervisor:
    """Runs a fixed list of services; `start()` returns once all are ready, `stop()` once all are gone."""

    def __init__(
        self,
        launches: Sequence[ServiceLaunch],
        logs: Path,
        *,
        records: ChildRecords | None = None,
        backoff: Backoff | None = None,
        stop_timeout: float = 20.0,
        cwd: Path | None = None,
    ) -> None:
        names = [launch.name for launch in launches]
        if len(set(names)) != len(names):
            raise ValueError(f"service names must be unique, got {names}")
        self.launches = tuple(launches)
        self.logs = logs
        self.records = records
        self.backoff = backoff or Backoff()
        self.stop_timeout = stop_timeout
        self.cwd = cwd
        self._children: dict[str, _Child] = {}
        self._changed = threading.Condition()
        self._stopping = threading.Event()

    # -- lifecycle ---------------------------------------------------------------------------------

    def start(self, ready_timeout: float = 90.0) -> None:
        """Start every service in order, each only after the one before it is ready."""
        self._stopping.clear()
        try:
            for launch in self.launches:
                try:
                    proc = self._spawn(launch)
                except OSError as exc:
                    raise StartupError(f"could not start {launch.name} ({' '.join(launch.command)}): {exc}") from exc
                child = _Child(launch, self.logs / f"{launch.name}.log", proc)
                with self._changed:
                    self._children[launch.name] = child
                self._wait_ready(child, ready_timeout)
                child.watcher = threading.Thread(
                    target=self._watch, args=(child,), name=f"watch-{launch.name}", daemon=True
                )
                child.watcher.start()
                log.info("%s is ready (pid %d)", launch.name, child.proc.pid)
        except BaseException:
            self.stop()
            raise

    def stop(self) -> None:
        """Stop every service, newest first: SIGTERM to its group, SIGKILL to groups that outstay the timeout."""
        with self._changed:
            self._stopping.set()
            children = list(self._children.values())
        for child in reversed(children):
            if child.proc.poll() is None:
                log.info("stopping %s (pid %d)", child.launch.name, child.proc.pid)
            stop(child.proc, timeout=self.stop_timeout)
            if self.records is not None:
                self.records.forget(child.launch.name)
        for child in children:
            if child.watcher is not None and child.watcher is not threading.current_thread():
                child.watcher.join()
        with self._changed:
            self._children.clear()
            self._changed.notify_all()

    # -- observing and disturbing (for `status` and the tests) ---------------------------------------

    def pid(self, name: str) -> int:
        """The pid of the service's current process."""
        return self._child(name).proc.pid

    def restarts(self, name: str) -> int:
        """How often the supervisor has restarted the service since `start()`."""
        return self._child(name).restarts

    def kill(self, name: str) -> int:
        """SIGKILL the service's process group, as a crash or the OOM killer would; returns the pid killed."""
        child = self._child(name)
        pid = child.proc.pid
        with contextlib.suppress(ProcessLookupError):
            os.killpg(pid, signal.SIGKILL)
        return pid

    def wait_for_restarts(self, name: str, count: int, timeout: float) -> bool:
        """Block until the service has been restarted at least `count` times; False on timeout."""
        with self._changed:
            return self._changed.wait_for(lambda: self._child(name).restarts >= count, timeout)

    def wait_ready(self, name: str, timeout: float) -> None:
        """Block until the service's current process answers `/readyz`."""
        self._wait_ready(self._child(name), timeout)

    # -- internals -----------------------------------------------------------------------------------

    def _child(self, name: str) -> _Child:
        try:
            return self._children[name]
        except KeyError:
            known = ", ".join(launch.name for launch in self.launches)
            raise KeyError(f"no running service named {name!r}; the stack runs: {known}") from None

    def _spawn(self, launch: ServiceLaunch) -> subprocess.Popen[bytes]:
        log_file = self.logs / f"{launch.name}.log"
        log_file.parent.mkdir(parents=True, exist_ok=True)
        with log_file.open("a") as out:
            out.write(f"--- {datetime.now(UTC):%Y-%m-%dT%H:%M:%SZ} lakegate devstack starts {launch.name} ---\n")
        proc = spawn(launch.command, log=log_file, env={**launch.env, "PYTHONUNBUFFERED": "1"}, cwd=self.cwd)
        if self.records is not None:
            self.records.record(launch.name, proc)
        return proc

    def _wait_ready(self, child: _Child, timeout: float) -> None:
        launch = child.launch

        def ready() -> bool:
            return answers_ready(launch.host, launch.health_port) and all(
                accepts_connections(port, launch.host) for port in launch.serves
            )

        wait_until(ready, timeout=timeout, what=launch.name, proc=child.proc, log=child.log)

    def _watch(self, child: _Child) -> None:
        """Restart the child whenever it exits, until the stack stops."""
        crashes_in_a_row = 0
        while True:
            code = child.proc.wait()
            if self._stopping.is_set():
                return
            # Whatever the dead process left in its group (a helper it forked) must not linger and hold its
            # ports while we wait to restart it.
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(child.proc.pid, signal.SIGKILL)
            ran = time.monotonic() - child.started
            crashes_in_a_row = 1 if ran >= self.backoff.healthy_after else crashes_in_a_row + 1
            delay = self.backoff.delay(crashes_in_a_row)
            log.warning(
                "%s (pid %d) exited with %s after %.1fs; restarting it in %gs (see %s)",
                child.launch.name,
                child.proc.pid,
                _exit_reason(code),
                ran,
                delay,
                child.log,
            )
            if self._stopping.wait(delay):
                return
            with self._changed:
                if self._stopping.is_set():
                    return
                try:
                    child.proc = self._spawn(child.launch)
                    child.started = time.monotonic()
                except OSError as exc:
                    log.error("could not restart %s: %s; giving up on it", child.launch.name, exc)
                    return
                child.restarts += 1
                self._changed.notify_all()
            log.warning("restarted %s as pid %d (restart %d)", child.launch.name, child.proc.pid, child.restarts)


def _exit_reason(code: int) -> str:
    if code < 0:
        try:
            return f"signal {signal.Signals(-code).name}"
        except ValueError:
            return f"signal {-code}"
    return f"code {code}"
