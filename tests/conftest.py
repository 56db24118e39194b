"""End-to-end fixtures: the real stack (NATS, catalog PostgreSQL, four services as processes) in a
temporary home on free ports, and source databases in the harness's PostgreSQL cluster."""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass

import asyncpg
import pytest
from lakegate.devstack.postgres import PASSWORD_ROLE, PostgresCluster
from lakegate.devstack.pytest_plugin import CreateDatabase, directory_outside_pytest
from lakegate.devstack.stack import Stack, StackConfig, StackPorts


@pytest.fixture(scope="session")
def stack() -> Iterator[Stack]:
    """One stack for the whole session; each test uses a source (and so tables) of its own."""
    with directory_outside_pytest("lakegate-e2e-") as home:
        env = {
            "LAKEGATE_EDGE_SYNC_WAIT_SECONDS": "120",
            # The sources live in the harness cluster on 127.0.0.1; the stack's own ports stay refused.
            "LAKEGATE_EXTRACTOR_ALLOW_PRIVATE_SOURCES": "true",
            # A hung source holds its connection attempt this long: longer than any other test's calls.
            "LAKEGATE_EXTRACTOR_CONNECT_TIMEOUT": "30",
        }
        config = StackConfig(home=home, ports=StackPorts.free(), env=env)
        with Stack(config) as running:
            yield running
            # Every service did all it needed within its own NATS permissions.
            refused = running.nats_permission_violations()
            assert not refused, "\n".join(refused)
            # No password of the stack's or of a test's source reached a log.
            passwords = [running.nats_password(user) for user in ("catalog", "extractor", "loader", "edge", "admin")]
            passwords += [running.postgres_password(role) for role in ("postgres", "lakegate")]
            assert not running.secrets_in_logs(passwords)
            assert not running.logs_matching(r"pw-[0-9a-f]+-ünï")


@pytest.fixture
def edge_env(stack: Stack) -> dict[str, str]:
    """Environment for an edge started over stdio against the session's stack."""
    return {
        **os.environ,
        "LAKEGATE_NATS_URL": stack.urls.nats,
        "LAKEGATE_NATS_USER": "edge",
        "LAKEGATE_NATS_PASSWORD_FILE": str(stack.home.nats_password("edge")),
        "LAKEGATE_LOG_LEVEL": "WARNING",
        "LAKEGATE_EDGE_SEAL_PUBLIC_KEY": stack.urls.seal_public_key,
    }


@dataclass(frozen=True)
class Source:
    """A source database with a read-only login that needs a real password."""

    host: str
    port: int
    database: str
    user: str
    password: str
    admin_dsn: str

    async def execute(self, sql: str) -> None:
        """Run `sql` in the source as its owner (to create, change or drop what the tests read)."""
        admin = await asyncpg.connect(self.admin_dsn)
        try:
            await admin.execute(sql)
        finally:
            await admin.close()

    def connect_arguments(self, name: str) -> dict[str, object]:
        return {
            "name": name,
            "host": self.host,
            "port": self.port,
            "database": self.database,
            "user": self.user,
            "password": self.password,
        }


async def make_source(
    pg_cluster: PostgresCluster, create_database: CreateDatabase, unique: str, label: str = "source"
) -> Source:
    """A new source database (its name starts with `label`) in the harness cluster with a read-only login of its own."""
    admin_dsn = await create_database(label)
    database = admin_dsn.rsplit("/", 1)[1]
    user, password = f"reader_{unique}", f"pw-{unique}-ünï"
    admin = await asyncpg.connect(admin_dsn)
    try:
        await admin.execute(f"CREATE ROLE {user} LOGIN PASSWORD '{password}' IN ROLE {PASSWORD_ROLE}")
        await admin.execute(f"ALTER DEFAULT PRIVILEGES IN SCHEMA public GRANT SELECT ON TABLES TO {user}")
    finally:
        await admin.close()
    return Source(pg_cluster.host, pg_cluster.port, database, user, password, admin_dsn)


@pytest.fixture
async def source(pg_cluster: PostgresCluster, create_database: CreateDatabase, unique: str) -> Source:
    return await make_source(pg_cluster, create_database, unique)
