"""Fixtures for the Databricks warehouse: an emulated workspace (recording DB-API connection over DuckDB)."""

from __future__ import annotations

import functools
import importlib.util
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from types import ModuleType

import pytest
from lakegate.loader.warehouses.databricks import DatabricksWarehouse, Limits
from lakegate.loader.warehouses.databricks.client import Backoff, SqlClient
from lakegate.loader.warehouses.databricks.layout import TenantLayout


def load_emulator() -> ModuleType:
    """The emulator module beside this file (tests are imported by path, not as a package)."""
    name = "lakegate_loader_tests_databricks_emulator"
    if name not in sys.modules:
        spec = importlib.util.spec_from_file_location(name, Path(__file__).with_name("emulator.py"))
        assert spec is not None
        assert spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        spec.loader.exec_module(module)
    return sys.modules[name]


emulator = load_emulator()


@pytest.fixture
def workspace(tmp_path: Path) -> Iterator[object]:
    found = emulator.Workspace(tmp_path / "volumes")
    yield found
    found.close()


@pytest.fixture
def workspace_on() -> Iterator[Callable[[Path], object]]:
    """Emulated workspaces whose Volumes are a given directory (closed after the test)."""
    made: list[object] = []

    def make(volumes: Path) -> object:
        made.append(emulator.Workspace(volumes))
        return made[-1]

    yield make
    for found in made:
        found.close()  # type: ignore[attr-defined]


def emulated_warehouse(workspace: object, layout: TenantLayout | None = None, **limits: object) -> DatabricksWarehouse:
    """A Databricks warehouse whose connections and Volume are the emulated workspace's."""
    client = SqlClient(workspace.connect, connections=2, backoff=Backoff(retries=2, pauses=(0.0,)))  # type: ignore[attr-defined]
    return DatabricksWarehouse(
        client,
        emulator.DirectoryVolume(workspace),
        layout or TenantLayout(),
        Limits(**limits),  # type: ignore[arg-type]
    )


@pytest.fixture
def warehouse(workspace: object) -> DatabricksWarehouse:
    return emulated_warehouse(workspace, query_seconds=20.0)


@pytest.fixture
def make_warehouse(workspace: object) -> Callable[..., DatabricksWarehouse]:
    """A warehouse on the workspace with other layout or limits."""
    return functools.partial(emulated_warehouse, workspace)
