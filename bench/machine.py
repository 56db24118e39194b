"""What the figures were measured on: the machine, how busy it was, and the versions involved."""

from __future__ import annotations

import os
import platform
import subprocess
from importlib import metadata
from pathlib import Path
from typing import Any

import psutil
from lakegate.devstack.nats_server import nats_server_binary

#: Distributions whose versions decide the figures.
PACKAGES = (
    "pyarrow",
    "adbc-driver-postgresql",
    "adbc-driver-manager",
    "asyncpg",
    "deltalake",
    "duckdb",
    "faststream",
    "nats-py",
    "mcp",
    "psutil",
)


def cpu_model() -> str:
    """The CPU's model name, from /proc/cpuinfo when there is one."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def load() -> list[float]:
    """The 1, 5 and 15 minute load averages: how much else the machine was doing."""
    return [round(value, 2) for value in os.getloadavg()]


def describe_machine() -> dict[str, Any]:
    """Cores, memory, CPU, kernel and load now."""
    return {
        "logical_cores": os.cpu_count(),
        "physical_cores": psutil.cpu_count(logical=False),
        "memory_bytes": psutil.virtual_memory().total,
        "cpu": cpu_model(),
        "system": f"{platform.system()} {platform.release()}",
        "load_at_start": load(),
    }


def versions() -> dict[str, str]:
    """Python, the packages that matter and the NATS server."""
    found = {"python": platform.python_version()}
    for name in PACKAGES:
        try:
            found[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            found[name] = "not installed"
    try:
        answer = subprocess.run([str(nats_server_binary()), "--version"], capture_output=True, text=True, check=True)
        found["nats-server"] = answer.stdout.strip().removeprefix("nats-server: ")
    except (OSError, subprocess.CalledProcessError, RuntimeError):
        found["nats-server"] = "unknown"
    return found
