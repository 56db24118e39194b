import asyncio
import logging
import os
import socket
import stat
import subprocess
import sys
import uuid
from collections.abc import Callable, Iterator
from dataclasses import replace
from pathlib import Path

import asyncpg
import nats
import psutil
import pytest
from lakegate.devstack.lock import StackAlreadyRunning
from lakegate.devstack.ports import free_port
from lakegate.devstack.postgres import PostgresCluster
from lakegate.devstack.pytest_plugin import directory_outside_pytest
from lakegate.devstack.stack import SERVICES, Stack, StackConfig, StackPorts
from lakegate.devstack.supervisor import answers_ready
from nats.js.api import StreamConfig

StandinConfig = Callable[..., StackConfig]
Descendants = Callable[[], set[int]]


@pytest.fixture
def stack(lakegate_home: Path, standin_config: StandinConfig) -> Iterator[Stack]:
    with Stack(standin_config(lakegate_home)) as running:
        yield running


def test_up_refuses_a_taken_port_naming_the_variable_that_moves_it_and_starts_nothing(tmp_path: Path) -> None:
    home = tmp_path / "home"
    ports = StackPorts.free()
    with socket.socket() as squatter:
        squatter.bind(("127.0.0.1", 0))
        squatter.listen()
        taken = squatter.getsockname()[1]
        env = {
            **os.environ,
            "LAKEGATE_HOME": str(home),
            "LAKEGATE_NATS_PORT": str(ports.nats),
            "LAKEGATE_POSTGRES_PORT": str(ports.postgres),
            "LAKEGATE_EDGE_PORT": str(taken),
            **{f"LAKEGATE_{name.upper()}_HEALTH_PORT": str(ports.health(name)) for name in SERVICES},
        }
        result = subprocess.run(
            [sys.executable, "-m", "lakegate.devstack", "up"], env=env, capture_output=True, text=True, timeout=120
        )

    assert result.returncode == 1
    assert f"port {taken} (the MCP edge) is already in use by another program" in result.stderr
    assert "stop it or set LAKEGATE_EDGE_PORT=<free port>" in result.stderr
    assert not (home / "nats" / "jetstream").exists()
    assert not (home / "postgres" / "data").exists()
    assert not [p for p in psutil.process_iter(["cmdline"]) if str(home) in " ".join(p.info["cmdline"] or [])]


def test_the_supervisor_restarts_a_service_that_is_killed_and_says_so(
    stack: Stack, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="lakegate.devstack")
    killed = stack.kill_service("extractor")

    assert stack.wait_for_restarts("extractor", 1, timeout=30)
    stack.wait_ready("extractor", timeout=30)
    assert stack.supervisor.pid("extractor") != killed
    assert any(
        f"extractor (pid {killed}) exited with signal SIGKILL" in record.getMessage() for record in caplog.records
    )

    stack.kill_service("extractor")
    assert stack.wait_for_restarts("extractor", 2, timeout=30)
    assert stack.restarts("catalog") == 0


def test_a_second_start_from_the_same_home_is_refused_while_the_first_runs(stack: Stack) -> None:
    second = Stack(replace(stack.config, ports=StackPorts.free()))

    with pytest.raises(StackAlreadyRunning, match=r"lakegate is already running from .* \(pid \d+\)"):
        second.start()
    assert all(answers_ready("127.0.0.1", stack.config.ports.health(name)) for name in SERVICES)


@pytest.mark.parametrize(
    "flags",
    [
        pytest.param(("--ignore-sigterm",), id="a service that ignores SIGTERM"),
        pytest.param((), id="a helper that outlives its service"),
    ],
)
def test_stopping_leaves_no_process_behind(
    lakegate_home: Path, flags: tuple[str, ...], standin_config: StandinConfig, descendants: Descendants
) -> None:
    token = f"lakegate-helper-{uuid.uuid4().hex}"
    before = descendants()
    stack = Stack(standin_config(lakegate_home, *flags, "--helper", token, stop_timeout=1.0))
    stack.start()
    assert len(descendants() - before) >= 2 + 2 * len(SERVICES)  # NATS, PostgreSQL, services and their helpers

    stack.stop()

    assert descendants() - before == set()
    assert not [
        p
        for p in psutil.process_iter(["cmdline", "status"])
        if token in (p.info["cmdline"] or []) and p.info["status"] != psutil.STATUS_ZOMBIE
    ]


async def test_the_catalog_postgres_refuses_every_role_without_its_password_over_tcp_and_the_socket(
    stack: Stack, tmp_path: Path
) -> None:
    # The stand-in catalog reached its database (it is ready only then) with the password file it was given.
    assert answers_ready("127.0.0.1", stack.config.ports.health("catalog"))
    nowhere = tmp_path / "no-pgpass"  # no ~/.pgpass of the machine's may help
    port, database = stack.config.ports.postgres, "lakegate_catalog"
    for host in ("127.0.0.1", str(stack.postgres.home / "sockets")):
        for user in ("postgres", "lakegate"):
            for password in (None, "", "wrong"):
                with pytest.raises((asyncpg.InvalidAuthorizationSpecificationError, asyncpg.InterfaceError)):
                    await asyncpg.connect(
                        host=host,
                        port=port,
                        user=user,
                        password=password,
                        database="lakegate_catalog",
                        passfile=nowhere,
                    )
            right = stack.postgres_password(user)
            conn = await asyncpg.connect(
                host=host, port=port, user=user, password=right, database=database, passfile=nowhere
            )
            await conn.close()
    assert stat.S_IMODE(stack.home.postgres_password("postgres").stat().st_mode) == 0o600
    assert stat.S_IMODE(stack.home.catalog_pgpass.stat().st_mode) == 0o600


async def test_a_restarted_stack_keeps_its_jetstream_data_catalog_database_and_key(
    lakegate_home: Path, standin_config: StandinConfig
) -> None:
    stack = Stack(standin_config(lakegate_home))
    await asyncio.to_thread(stack.start)
    try:
        nc = await nats.connect(stack.urls.nats, **stack.nats_credentials())
        await nc.jetstream().add_stream(StreamConfig(name="KEPT", subjects=["kept.>"]))
        await nc.jetstream().publish("kept.one", b"still here")
        await nc.close()
        conn = await asyncpg.connect(stack.catalog_database_dsn())
        await conn.execute("create table sources (name text); insert into sources values ('shop')")
        await conn.close()
        key = stack.home.catalog_key.read_bytes()
    finally:
        await asyncio.to_thread(stack.stop)

    again = Stack(stack.config)
    await asyncio.to_thread(again.start)
    try:
        nc = await nats.connect(again.urls.nats, **again.nats_credentials())
        message = await nc.jetstream().get_last_msg("KEPT", "kept.one")
        await nc.close()
        conn = await asyncpg.connect(again.catalog_database_dsn())
        names = await conn.fetchval("select string_agg(name, ',') from sources")
        await conn.close()
    finally:
        await asyncio.to_thread(again.stop)

    assert message.data == b"still here"
    assert names == "shop"
    assert again.home.catalog_key.read_bytes() == key
    assert stat.S_IMODE(again.home.catalog_key.stat().st_mode) == 0o600


async def test_a_catalog_cluster_made_before_passwords_asks_for_one_from_its_next_start(tmp_path: Path) -> None:
    """A home from an older lakegate trusted loopback and the socket; starting it with a password ends that."""
    with directory_outside_pytest("lakegate-pg-upgrade-") as home:
        cluster = PostgresCluster(home, free_port(), durable=False)
        await asyncio.to_thread(cluster.start)
        conn = await asyncpg.connect(host=cluster.host, port=cluster.port, user="postgres", passfile=tmp_path / "none")
        await conn.close()  # trusted, as before
        await asyncio.to_thread(cluster.stop)

        cluster.superuser_password = "s3cret-upgrade"
        await asyncio.to_thread(cluster.start)
        try:
            for host in (cluster.host, str(home / "sockets")):
                with pytest.raises(asyncpg.InvalidAuthorizationSpecificationError):
                    await asyncpg.connect(host=host, port=cluster.port, user="postgres", passfile=tmp_path / "none")
                conn = await asyncpg.connect(host=host, port=cluster.port, user="postgres", password="s3cret-upgrade")
                await conn.close()
        finally:
            await asyncio.to_thread(cluster.stop)
