"""Parquet parts reach a Unity Catalog Volume through the Files API, tested against minilake.

minilake (a local Databricks API emulator on PyPI) serves `/api/2.0/fs/files` and `/directories`
over real HTTP. It pins DuckDB 1.x while lakegate uses 2.x, so it runs in its own environment
(`uv tool run --from minilake==1.9.0`), started here on a free loopback port and stopped after.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import time
import urllib.request
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest
from databricks.sdk import WorkspaceClient
from lakegate.common.contracts.runs import TableRef
from lakegate.devstack.ports import free_port
from lakegate.loader.warehouses.base import LoadPlan
from lakegate.loader.warehouses.databricks import DatabricksWarehouse, Limits
from lakegate.loader.warehouses.databricks.client import Backoff, SqlClient
from lakegate.loader.warehouses.databricks.layout import TenantLayout
from lakegate.loader.warehouses.databricks.volumes import FilesApiVolume

MINILAKE = "minilake==1.9.0"
START_LIMIT = 180.0  # seconds; the first start installs minilake into uv's cache


@pytest.fixture(scope="module")
def minilake(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Path]]:
    """A running minilake: its URL and its data directory."""
    uv = shutil.which("uv")
    if uv is None:
        pytest.skip("uv is not on PATH, so minilake (the Files API emulator) cannot be started")
    data = tmp_path_factory.mktemp("minilake")
    port = free_port()
    log = (data / "minilake.log").open("wb")
    process = subprocess.Popen(
        [
            uv,
            "tool",
            "run",
            "--python",
            "3.11",
            "--from",
            MINILAKE,
            "minilake",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
        ],
        env={**os.environ, "MINILAKE_DATA_DIR": str(data / "data")},
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,  # its own process group, so stopping it stops uv's child too
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + START_LIMIT
        while True:
            with contextlib.suppress(OSError), urllib.request.urlopen(f"{url}/_minilake/health", timeout=2) as answer:
                if answer.status == 200:
                    break
            if process.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"minilake did not start: {(data / 'minilake.log').read_text(errors='replace')[-2000:]}")
            time.sleep(0.2)  # polling a process we started for readiness; nothing to wait on instead
        yield url, data / "data"
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
        log.close()


@pytest.fixture
def volume(minilake: tuple[str, Path]) -> FilesApiVolume:
    url, _ = minilake
    return FilesApiVolume(lambda: WorkspaceClient(host=url, token="lakegate-test"))


def test_a_part_is_uploaded_whole_and_a_run_directory_is_removed_with_everything_in_it(
    volume: FilesApiVolume, minilake: tuple[str, Path]
) -> None:
    _, data = minilake
    directory = "/Volumes/tenant_a/lakegate_staging/files/runs/r1"
    volume.put(f"{directory}/part-00000.parquet", b"PAR1 first")
    volume.put(f"{directory}/part-00001.parquet", bytes(range(256)) * 4096)
    volume.put(f"{directory}/part-00000.parquet", b"PAR1 again")  # a retry writes the same name again

    stored = data / "dbfs" / directory.lstrip("/")
    assert sorted(p.name for p in stored.iterdir()) == ["part-00000.parquet", "part-00001.parquet"]
    assert (stored / "part-00000.parquet").read_bytes() == b"PAR1 again"
    assert (stored / "part-00001.parquet").read_bytes() == bytes(range(256)) * 4096

    volume.remove_tree(directory)
    volume.remove_tree(directory)  # already gone: nothing to do

    assert not stored.exists()


async def test_a_load_stages_its_parts_through_the_files_api_and_commits_them(
    volume: FilesApiVolume, minilake: tuple[str, Path], workspace_on: Callable[[Path], Any]
) -> None:
    _, data = minilake
    # The emulated SQL warehouse reads Volumes from minilake's files, as COPY INTO reads a real Volume.
    workspace = workspace_on(data / "dbfs" / "Volumes")
    client = SqlClient(workspace.connect, connections=1, backoff=Backoff(retries=0))
    warehouse = DatabricksWarehouse(client, volume, TenantLayout(), Limits(parquet_file_bytes=1024))
    schema = pa.schema([pa.field("id", pa.int64()), pa.field("label", pa.string())])
    target = TableRef(catalog="tenant_files", schema_name="bronze", name="orders")

    async def batches() -> AsyncIterator[pa.RecordBatch]:
        for start in range(0, 300, 100):
            yield pa.record_batch({"id": range(start, start + 100), "label": [f"row {i}" for i in range(100)]}, schema)

    result = await warehouse.load(LoadPlan(target, schema, "full", "files1"), batches())
    counted = await warehouse.query("tenant_files", "SELECT COUNT(*) AS n, MAX(id) AS top FROM orders", 5, 20.0)

    assert result.row_count == 300
    assert counted.rows == [[300, 299]]
    assert not (data / "dbfs" / "Volumes" / "tenant_files" / "lakegate_staging" / "files" / "runs" / "files1").exists()
