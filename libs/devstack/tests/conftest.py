"""The real stack (NATS, PostgreSQL, supervisor) with `standin_service.py` processes as its services."""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path

import psutil
import pytest
from lakegate.devstack.stack import SERVICES, StackConfig, StackPorts
from lakegate.devstack.supervisor import Backoff

STANDIN = Path(__file__).with_name("standin_service.py")

StandinConfig = Callable[..., StackConfig]


@pytest.fixture
def standin_config() -> StandinConfig:
    """Build a stack config on free ports whose services are stand-ins run with the given flags."""

    def build(home: Path, *flags: str, stop_timeout: float = 10.0) -> StackConfig:
        return StackConfig(
            home=home,
            ports=StackPorts.free(),
            commands={name: (sys.executable, str(STANDIN), name, *flags) for name in SERVICES},
            backoff=Backoff(first=0.1, limit=1.0),
            ready_timeout=60.0,
            stop_timeout=stop_timeout,
        )

    return build


def descendants() -> set[int]:
    """Pids of every live process below this one (zombies are already dead)."""
    alive = set()
    for child in psutil.Process().children(recursive=True):
        try:
            if child.status() != psutil.STATUS_ZOMBIE:
                alive.add(child.pid)
        except psutil.NoSuchProcess:
            continue
    return alive


@pytest.fixture(name="descendants")
def descendants_fixture() -> Callable[[], set[int]]:
    """A function listing the live processes below the test process."""
    return descendants
