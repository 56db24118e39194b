"""Where the local stack keeps its state: one directory, `LAKEGATE_HOME`, that survives restarts.

```
<home>/
  nats/         JetStream data and the server's config
  postgres/     the catalog's PostgreSQL cluster
  lakehouse/    the local Delta Lake tables
  keys/         catalog.key, the Fernet key that encrypts source secrets; api-tokens.json, token hashes;
                nats/<user>.password and postgres/<role>.password, generated on first start
  logs/         one <process>.log per process
  run/          the lock of the running `up` and the pids of its children
```
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

HOME_DIRECTORY = ".lakegate"


def repo_root(start: Path | None = None) -> Path:
    """The uv workspace that holds `start` (default: the current directory), else `start` itself."""
    here = (start or Path.cwd()).resolve()
    for directory in [here, *here.parents]:
        pyproject = directory / "pyproject.toml"
        if (directory / "uv.lock").exists() and pyproject.exists() and "[tool.uv.workspace]" in pyproject.read_text():
            return directory
    return here


@dataclass(frozen=True)
class StackHome:
    """The layout of one stack's state directory."""

    root: Path

    @property
    def nats(self) -> Path:
        return self.root / "nats"

    @property
    def postgres(self) -> Path:
        return self.root / "postgres"

    @property
    def lakehouse(self) -> Path:
        return self.root / "lakehouse"

    @property
    def catalog_key(self) -> Path:
        return self.root / "keys" / "catalog.key"

    @property
    def api_tokens(self) -> Path:
        """Hashes of the static API tokens the edge accepts; once it exists the edge requires one."""
        return self.root / "keys" / "api-tokens.json"

    def nats_password(self, user: str) -> Path:
        """The generated password of one NATS user (the services read theirs with LAKEGATE_NATS_PASSWORD_FILE)."""
        return self.root / "keys" / "nats" / f"{user}.password"

    def postgres_password(self, role: str) -> Path:
        """The generated password of one role of the catalog's PostgreSQL (its superuser, the catalog's own)."""
        return self.root / "keys" / "postgres" / f"{role}.password"

    @property
    def catalog_pgpass(self) -> Path:
        """The libpq password file the catalog reads its role's password from (PGPASSFILE)."""
        return self.root / "keys" / "postgres" / "catalog.pgpass"

    @property
    def logs(self) -> Path:
        return self.root / "logs"

    @property
    def run(self) -> Path:
        return self.root / "run"

    def log(self, process: str) -> Path:
        """The log file of one process of the stack."""
        return self.logs / f"{process}.log"

    def create(self) -> None:
        """Make the directories that do not exist yet; existing state is left as it is."""
        for directory in (
            self.root,
            self.nats,
            self.postgres,
            self.lakehouse,
            self.catalog_key.parent,
            self.logs,
            self.run,
        ):
            directory.mkdir(parents=True, exist_ok=True)
        self.catalog_key.parent.chmod(0o700)
