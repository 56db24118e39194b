"""The whole lakegate stack on one machine: NATS, the catalog's PostgreSQL, and the four services.

`Stack(config).start()` brings it up in order and returns when every service answers `/readyz`;
`stop()` takes it down in reverse order and leaves no process behind. `make up` uses it through
`python -m lakegate.devstack up`; end-to-end tests use it directly, in a temporary home on free ports.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from types import TracebackType

from lakegate.common.api_tokens import ApiTokenFile
from lakegate.common.errors import InvalidInput
from lakegate.common.nats_users import NatsUsers, deployment_users, inbox_prefix, tenant_subscriber
from lakegate.common.subjects import Topology
from lakegate.devstack.keys import ensure_fernet_key, ensure_seal_key
from lakegate.devstack.layout import StackHome, repo_root
from lakegate.devstack.leftovers import ChildRecords
from lakegate.devstack.lock import StackLock
from lakegate.devstack.nats_server import NatsServer
from lakegate.devstack.passwords import ensure_password
from lakegate.devstack.ports import PortClaim, check_ports, free_port
from lakegate.devstack.postgres import SUPERUSER, PostgresCluster
from lakegate.devstack.processes import StartupError
from lakegate.devstack.supervisor import Backoff, ServiceLaunch, Supervisor

log = logging.getLogger("lakegate.devstack")

#: The services in start order, and the module each runs as.
SERVICES: Mapping[str, str] = {
    "catalog": "lakegate.catalog",
    "extractor": "lakegate.extractor",
    "loader": "lakegate.loader",
    "edge": "lakegate.edge",
}
CATALOG_DATABASE = "lakegate_catalog"
CATALOG_ROLE = "lakegate"
#: The tenant of unauthenticated local callers; its events get a subscriber user of their own.
LOCAL_TENANT = "default"
LOOPBACK = "127.0.0.1"
#: The edge's serving processes: on 2 cores two serve ~1.5x the calls of one at every concurrency (the edge's
#: README), and any of them serves any password page (it asks the page's own process over NATS).
EDGE_PROCESSES = 2
#: How nats-server logs a refused publish and a refused subscription.
REFUSALS = ("Permissions", "Subscription")


@dataclass(frozen=True)
class StackPorts:
    """Every port the stack listens on; the defaults avoid the usual ports of NATS and PostgreSQL."""

    nats: int = 14222
    postgres: int = 15432
    edge: int = 8085
    catalog_health: int = 18081
    extractor_health: int = 18082
    loader_health: int = 18083
    edge_health: int = 18084

    @classmethod
    def free(cls) -> StackPorts:
        """Ports nothing listens on now, all different: for tests next to a running stack."""
        chosen: set[int] = set()
        while len(chosen) < len(cls.__dataclass_fields__):
            chosen.add(free_port())
        return cls(*sorted(chosen))

    def health(self, service: str) -> int:
        """The port of a service's `/healthz` and `/readyz`."""
        port: int = getattr(self, f"{service}_health")
        return port


@dataclass(frozen=True)
class StackConfig:
    """Everything a stack needs to start; built from the environment by `StackSettings`."""

    home: Path
    repo: Path = field(default_factory=repo_root)
    ports: StackPorts = field(default_factory=StackPorts)
    #: Where the edge's MCP endpoint listens; loopback unless you mean to expose it.
    edge_host: str = LOOPBACK
    #: The edge's HTTP serving processes on its one port.
    edge_processes: int = EDGE_PROCESSES
    #: Commands to run instead of `python -m lakegate.<service>`, by service name (tests use stand-ins).
    commands: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    #: Extra environment for every service, e.g. a NATS subject prefix or a log level.
    env: Mapping[str, str] = field(default_factory=dict)
    #: Full syncs staged as the lakehouse's own data files (one machine); False: every run on JetStream parts,
    #: as where the extractor cannot reach the loader's files (docker-compose, Kubernetes, Databricks).
    extractor_data_files: bool = True
    backoff: Backoff = field(default_factory=Backoff)
    ready_timeout: float = 90.0
    stop_timeout: float = 20.0

    def port_claims(self) -> list[PortClaim]:
        """The ports to check before starting, each with the variable that moves it."""
        p = self.ports
        return [
            PortClaim(p.nats, "LAKEGATE_NATS_PORT", "NATS"),
            PortClaim(p.postgres, "LAKEGATE_POSTGRES_PORT", "the catalog's PostgreSQL"),
            PortClaim(p.edge, "LAKEGATE_EDGE_PORT", "the MCP edge", host=self.edge_host),
            *(
                PortClaim(p.health(name), f"LAKEGATE_{name.upper()}_HEALTH_PORT", f"{name} health probes")
                for name in SERVICES
            ),
        ]


@dataclass(frozen=True)
class StackUrls:
    """Where to reach the running stack, and what an edge of its own needs besides."""

    nats: str
    catalog_database: str
    mcp: str
    readiness: Mapping[str, str]
    #: The extractor's sealing public key: an edge started by hand (stdio) seals passwords with it.
    seal_public_key: str


class Stack:
    """NATS, PostgreSQL and the supervised services of one home; usable as a context manager."""

    def __init__(self, config: StackConfig) -> None:
        self.config = config
        self.home = StackHome(config.home)
        self.records = ChildRecords(self.home.run)
        self.nats = NatsServer(self.home.nats, config.ports.nats, LOOPBACK, log_file=self.home.log("nats"))
        self.postgres = PostgresCluster(
            self.home.postgres, config.ports.postgres, LOOPBACK, log_file=self.home.log("postgres")
        )
        self.supervisor = Supervisor(
            self._launches(),
            self.home.logs,
            records=self.records,
            backoff=config.backoff,
            stop_timeout=config.stop_timeout,
            cwd=config.repo,
        )
        self._lock = StackLock(self.home.run / "up.lock")

    @property
    def urls(self) -> StackUrls:
        p = self.config.ports
        return StackUrls(
            nats=self.nats.url,
            catalog_database=self.postgres.dsn(CATALOG_DATABASE, user=CATALOG_ROLE),
            mcp=f"http://{_reachable(self.config.edge_host)}:{p.edge}/mcp",
            readiness={name: f"http://{LOOPBACK}:{p.health(name)}/readyz" for name in SERVICES},
            seal_public_key=ensure_seal_key(self.home.seal_key),
        )

    def start(self) -> None:
        """Start everything in order; on any failure stop what was started and raise."""
        self._lock.acquire()
        try:
            for leftover in self.records.reap():
                log.warning(
                    "stopped %s (pid %d), left running by an earlier start that was killed", leftover.name, leftover.pid
                )
            check_ports(self.config.port_claims())
            self.home.create()
            ensure_fernet_key(self.home.catalog_key)
            self.nats.users = self._nats_users()
            ensure_seal_key(self.home.seal_key)
            log.info("starting NATS on port %d", self.config.ports.nats)
            self.nats.start()
            self._record("nats", self.nats)
            log.info("starting PostgreSQL on port %d", self.config.ports.postgres)
            self.postgres.superuser_password = self.postgres_password(SUPERUSER)
            self.postgres.start()
            self._record("postgres", self.postgres)
            self.postgres.ensure_database(CATALOG_DATABASE, CATALOG_ROLE, self.postgres_password(CATALOG_ROLE))
            self._write_pgpass()
            self._write_description()
            self.supervisor.start(self.config.ready_timeout)
        except BaseException:
            self.stop()
            raise

    def stop(self) -> None:
        """Stop services first, then PostgreSQL, then NATS; safe to call twice."""
        self.supervisor.stop()
        for name, server in (("postgres", self.postgres), ("nats", self.nats)):
            if server.proc is not None:
                log.info("stopping %s", name)
                server.stop()
                self.records.forget(name)
        if self._lock.held:  # the description belongs to whoever holds the lock
            (self.home.run / "stack.json").unlink(missing_ok=True)
            self._lock.release()

    def kill_service(self, name: str) -> int:
        """SIGKILL one service, as a crash would; the supervisor restarts it. Returns the pid killed."""
        return self.supervisor.kill(name)

    def restarts(self, name: str) -> int:
        """How often a service has been restarted since `start()`."""
        return self.supervisor.restarts(name)

    def wait_for_restarts(self, name: str, count: int, timeout: float = 30.0) -> bool:
        """Block until a service has been restarted `count` times; False on timeout."""
        return self.supervisor.wait_for_restarts(name, count, timeout)

    def wait_ready(self, name: str, timeout: float = 60.0) -> None:
        """Block until a service answers `/readyz` again (after a restart, say)."""
        self.supervisor.wait_ready(name, timeout)

    def __enter__(self) -> Stack:
        self.start()
        return self

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None
    ) -> None:
        self.stop()

    def _record(self, name: str, server: NatsServer | PostgresCluster) -> None:
        if server.proc is not None:
            self.records.record(name, server.proc)

    def _launches(self) -> list[ServiceLaunch]:
        config, ports = self.config, self.config.ports
        specific: dict[str, dict[str, str]] = {
            "catalog": {
                "LAKEGATE_CATALOG_DATABASE_URL": self.postgres.dsn(CATALOG_DATABASE, user=CATALOG_ROLE),
                # The role's password, in a libpq password file rather than in the URL or the environment.
                "PGPASSFILE": str(self.home.catalog_pgpass),
                "LAKEGATE_CATALOG_SECRET_KEY_FILE": str(self.home.catalog_key),
            },
            # No source may point at the stack itself (NATS is added by the extractor on its own).
            "extractor": {
                "LAKEGATE_EXTRACTOR_INFRASTRUCTURE": ",".join(self._own_endpoints()),
                "LAKEGATE_EXTRACTOR_SEAL_KEYS_FILE": str(self.home.seal_key),
                "LAKEGATE_EXTRACTOR_SECRET_DIRS": str(self.home.secrets),
            },
            # The loader keeps its tables under `<its home>/lakehouse`, so its home is the stack's.
            "loader": {"LAKEGATE_LOADER_HOME": str(self.home.root)},
            "edge": {
                "LAKEGATE_EDGE_HOST": config.edge_host,
                "LAKEGATE_EDGE_PORT": str(ports.edge),
                "LAKEGATE_EDGE_PROCESSES": str(config.edge_processes),
                # Only the public half: the edge seals passwords, it can open none.
                "LAKEGATE_EDGE_SEAL_PUBLIC_KEY": ensure_seal_key(self.home.seal_key),
            },
        }
        if config.extractor_data_files:
            # One machine: full syncs are staged as the lakehouse's own data files, which the loader commits.
            specific["extractor"]["LAKEGATE_EXTRACTOR_LAKEHOUSE_DIR"] = str(self.home.lakehouse)
        if self.home.api_tokens.exists():  # minted with `token create`: from now on the edge requires one
            specific["edge"]["LAKEGATE_EDGE_TOKENS_FILE"] = str(self.home.api_tokens)
        launches = []
        for name, module in SERVICES.items():
            prefix = f"LAKEGATE_{name.upper()}_"
            env = {
                "LAKEGATE_NATS_URL": self.nats.url,
                # Each service is its own NATS user with only its subjects; the password stays in a file.
                "LAKEGATE_NATS_USER": name,
                "LAKEGATE_NATS_PASSWORD_FILE": str(self.home.nats_password(name)),
                f"{prefix}HEALTH_HOST": LOOPBACK,
                f"{prefix}HEALTH_PORT": str(ports.health(name)),
                **specific[name],
                **config.env,
            }
            serves = (ports.edge,) if name == "edge" else ()
            command = config.commands.get(name)
            launches.append(
                ServiceLaunch(name, command, env, ports.health(name), serves=serves)
                if command is not None
                else ServiceLaunch.module(name, module, env, ports.health(name), serves=serves)
            )
        return launches

    @property
    def topology(self) -> Topology:
        """The subjects of this stack (a test may give it a prefix of its own)."""
        return Topology(self.config.env.get("LAKEGATE_NATS_PREFIX", "lakegate"))

    def nats_password(self, user: str) -> str:
        """The generated password of a NATS user of this stack: a service, `admin` or `<tenant>_events`."""
        return ensure_password(self.home.nats_password(user))

    def nats_credentials(self, user: str = "admin") -> dict[str, str]:
        """Keyword arguments for `nats.connect` that log in as `user` (`admin` may use every subject)."""
        return {"user": user, "password": self.nats_password(user), "inbox_prefix": inbox_prefix(user)}

    def postgres_password(self, role: str) -> str:
        """The generated password of a role of the catalog's PostgreSQL (`postgres`, the catalog's own)."""
        return ensure_password(self.home.postgres_password(role))

    def catalog_database_dsn(self) -> str:
        """The catalog's database URL with its role's password, for a client of the test's own."""
        return self.postgres.dsn(CATALOG_DATABASE, user=CATALOG_ROLE, password=self.postgres_password(CATALOG_ROLE))

    def _write_pgpass(self) -> None:
        path = self.home.catalog_pgpass
        path.touch(mode=0o600)
        path.chmod(0o600)
        path.write_text(f"*:*:{CATALOG_DATABASE}:{CATALOG_ROLE}:{self.postgres_password(CATALOG_ROLE)}\n")

    def _log_texts(self) -> dict[str, str]:
        return {
            path.name: path.read_text(encoding="utf-8", errors="replace")
            for path in sorted(self.home.logs.glob("*.log"))
        }

    def secrets_in_logs(self, secrets: Iterable[str]) -> dict[str, list[str]]:
        """Each of `secrets` that some log of the stack holds, with the logs that hold it."""
        texts = self._log_texts()
        found = {secret: [name for name, text in texts.items() if secret in text] for secret in secrets if secret}
        return {secret: names for secret, names in found.items() if names}

    def logs_matching(self, pattern: str) -> list[str]:
        """The log lines of the stack that match a regular expression."""
        compiled = re.compile(pattern)
        return [line for text in self._log_texts().values() for line in text.splitlines() if compiled.search(line)]

    def nats_permission_violations(self, users: Iterable[str] = SERVICES) -> list[str]:
        """The lines of the NATS log where the server refused one of `users` a subject (to publish or subscribe)."""
        try:
            text = self.nats.log.read_text(encoding="utf-8", errors="replace")
        except FileNotFoundError:
            return []
        marks = tuple(f'/user:{user}"' for user in users)
        return [
            line
            for line in text.splitlines()
            if any(f"{kind} Violation" in line for kind in REFUSALS) and any(mark in line for mark in marks)
        ]

    def tenants(self) -> list[str]:
        """The local tenant and every tenant an API token of the home acts for: each gets an events subscriber."""
        try:
            tokens = ApiTokenFile.load(self.home.api_tokens) if self.home.api_tokens.exists() else ApiTokenFile()
        except InvalidInput as exc:
            raise StartupError(f"{exc}: mint tokens with `python -m lakegate.devstack token create`") from None
        return sorted({LOCAL_TENANT, *(token.tenant_id for token in tokens.tokens)})

    def _nats_users(self) -> NatsUsers:
        tenants = self.tenants()
        names = [*SERVICES, *(tenant_subscriber(tenant) for tenant in tenants), "admin"]
        passwords = {name: self.nats_password(name) for name in names}
        return deployment_users(self.topology, passwords, tenants=tenants)

    def _own_endpoints(self) -> list[str]:
        ports = self.config.ports
        hosts = {LOOPBACK: [ports.postgres, *(ports.health(name) for name in SERVICES)]}
        hosts.setdefault(_reachable(self.config.edge_host), []).append(ports.edge)
        return [f"{host}:{port}" for host, listed in hosts.items() for port in listed]

    def _write_description(self) -> None:
        """Leave the ports and URLs where `status` finds them."""
        description = {"ports": asdict(self.config.ports), "urls": asdict(self.urls), "repo": str(self.config.repo)}
        (self.home.run / "stack.json").write_text(json.dumps(description, indent=2) + "\n")


def _reachable(host: str) -> str:
    """A host a client on this machine can connect to, for a server bound to `host`."""
    return LOOPBACK if host in ("", "0.0.0.0", "::") else host
