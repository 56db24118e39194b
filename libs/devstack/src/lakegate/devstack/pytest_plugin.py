"""Pytest fixtures: a real NATS server and a real PostgreSQL cluster on free ports, per test session.

Each test gets its own subject prefix, tenant and databases, so tests never see each other's data
and never depend on order. Nothing here touches services already running on the machine.
"""

from __future__ import annotations

import contextlib
import secrets
import shutil
import tempfile
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path

import asyncpg
import pytest
from lakegate.common.nats_users import NatsUser, NatsUsers
from lakegate.common.settings import NatsSettings
from lakegate.devstack.nats_server import NatsServer
from lakegate.devstack.ports import free_port
from lakegate.devstack.postgres import PostgresCluster

CreateDatabase = Callable[[str], Awaitable[str]]


@pytest.hookimpl(trylast=True)
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Keep `--dist loadgroup` grouping on pytest 9.2, where xdist's renaming has no effect (pytest-xdist#1386).

    xdist's scheduler groups tests by an `@<group>` suffix of their node ids; xdist 3.8 appends it
    through `item._nodeid`, which pytest 9.2's structured node ids no longer read. Without this every
    test of a module that shares a stack of its own would go to any worker, starting that stack twice.
    """
    if not getattr(config.option, "loadgroup", False):  # set only in xdist workers, only for loadgroup
        return
    for item in items:
        groups = sorted(
            {
                str(mark.args[0] if mark.args else mark.kwargs.get("name", "default"))
                for mark in item.iter_markers("xdist_group")
            }
        )
        suffix = "@" + "_".join(groups)
        if not groups or item.nodeid.endswith(suffix):  # ungrouped, or xdist's own renaming took effect
            continue
        from _pytest.nodeid import NodeId

        item._id = NodeId.parse(item.nodeid + suffix)


@pytest.fixture(scope="session")
def nats_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[NatsServer]:
    # Like every deployment, the harness's server refuses anonymous clients; tests log in as `tests`.
    users = NatsUsers((NatsUser("tests", secrets.token_urlsafe(16)),))
    server = NatsServer(tmp_path_factory.mktemp("nats"), free_port(), users=users)
    server.start()
    yield server
    server.stop()


@contextlib.contextmanager
def directory_outside_pytest(prefix: str) -> Iterator[Path]:
    """A temporary directory that is not under pytest's own.

    As root, PostgreSQL runs as another user and must traverse to its data. Every pytest session
    that starts on the machine takes the group/other bits off `/tmp/pytest-of-<user>`, which would
    cut a running cluster off from its files; a directory of our own is left alone.
    """
    path = Path(tempfile.mkdtemp(prefix=prefix))
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


@pytest.fixture(scope="session")
def pg_cluster() -> Iterator[PostgresCluster]:
    with directory_outside_pytest("lakegate-pg-") as home:
        cluster = PostgresCluster(home, free_port(), durable=False)
        cluster.start()
        yield cluster
        cluster.stop()


@pytest.fixture
def unique() -> str:
    """A short id unique to this test, for names that must not collide."""
    return uuid.uuid4().hex[:10]


@pytest.fixture
def nats_settings(nats_server: NatsServer, unique: str) -> NatsSettings:
    """NATS settings with a subject/stream prefix of this test's own."""
    return NatsSettings(url=nats_server.url_with("tests"), prefix=f"t{unique}", request_timeout=20.0)


@pytest.fixture
def tenant_id(unique: str) -> str:
    return f"tenant{unique}"


@pytest.fixture
async def create_database(pg_cluster: PostgresCluster, unique: str) -> AsyncIterator[CreateDatabase]:
    """Create databases named after this test; they are dropped afterwards."""
    created: list[str] = []

    async def create(purpose: str) -> str:
        name = f"{purpose}_{unique}"
        admin = await asyncpg.connect(pg_cluster.dsn())
        try:
            await admin.execute(f'CREATE DATABASE "{name}"')
        finally:
            await admin.close()
        created.append(name)
        return pg_cluster.dsn(name)

    yield create
    admin = await asyncpg.connect(pg_cluster.dsn())
    try:
        for name in created:
            await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await admin.close()


@pytest.fixture
def lakegate_home() -> Iterator[Path]:
    """A private state directory (lakehouse, keys; a whole stack's home) for this test, not created yet.

    It lies outside pytest's temporary directory, so a stack's PostgreSQL can live in it (see
    `directory_outside_pytest`); it is removed after the test.
    """
    with directory_outside_pytest("lakegate-home-") as parent:
        yield parent / "lakegate-home"


#: The system's Chromium, which Playwright drives (its own download needs a network this CI lacks).
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


@pytest.fixture
async def browser() -> AsyncIterator[object]:
    """A headless Chromium (a `playwright.async_api.Browser`); the test is skipped, saying why, without one."""
    if CHROMIUM is None:
        pytest.skip("no chromium on this machine (apt-get install chromium): the page is tested over HTTP only")
    from playwright.async_api import async_playwright

    async with async_playwright() as playwright:
        launched = await playwright.chromium.launch(executable_path=CHROMIUM, headless=True)
        yield launched
        await launched.close()
