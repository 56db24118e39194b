"""Warehouse factories for the contract suite: every warehouse lakegate has must pass the same tests.

    local                 the embedded Delta lakehouse, always
    databricks-emulated   `DatabricksWarehouse` on the emulated workspace of `tests/databricks/emulator.py`, always
    databricks            `DatabricksWarehouse` on a real workspace, when its settings are in the environment

The real workspace is configured exactly as the loader is (`DATABRICKS_HOST`, a token or
`DATABRICKS_CLIENT_ID` + `DATABRICKS_CLIENT_SECRET`, `DATABRICKS_WAREHOUSE_ID` or
`DATABRICKS_HTTP_PATH`, and `LAKEGATE_LOADER_DATABRICKS_*`); each test uses a fresh tenant, and its
catalog (or schemas) are dropped afterwards.
"""

from __future__ import annotations

import importlib.util
import os
import sys
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
from lakegate.common.names import LAYERS, tenant_catalog
from lakegate.loader.app import databricks_warehouse
from lakegate.loader.config import LoaderSettings
from lakegate.loader.warehouses.databricks import DatabricksWarehouse, Limits
from lakegate.loader.warehouses.databricks.client import Backoff, SqlClient
from lakegate.loader.warehouses.databricks.layout import TenantLayout
from lakegate.loader.warehouses.delta import LocalLakehouse, Timeouts

LIVE_VARIABLES = "DATABRICKS_HOST, DATABRICKS_TOKEN (or DATABRICKS_CLIENT_ID and DATABRICKS_CLIENT_SECRET) and " \
    "DATABRICKS_WAREHOUSE_ID (or DATABRICKS_HTTP_PATH)"  # fmt: skip


def _emulator() -> ModuleType:
    name = "lakegate_loader_tests_databricks_emulator"
    if name not in sys.modules:
        path = Path(__file__).parent.parent / "databricks" / "emulator.py"
        spec = importlib.util.spec_from_file_location(name, path)
        assert spec is not None
        assert spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        spec.loader.exec_module(module)
    return sys.modules[name]


def live_settings() -> LoaderSettings | None:
    """Loader settings for a real workspace, when the environment names one with credentials."""
    has_credentials = os.environ.get("DATABRICKS_TOKEN") or (
        os.environ.get("DATABRICKS_CLIENT_ID") and os.environ.get("DATABRICKS_CLIENT_SECRET")
    )
    if not (os.environ.get("DATABRICKS_HOST") and has_credentials):
        return None
    settings = LoaderSettings(warehouse="auto", query_timeout_seconds=120.0)
    return settings if settings.databricks.configured else None


@dataclass
class Subject:
    """A warehouse under test and the tenant catalog the test may use."""

    name: str
    warehouse: Any  # Warehouse and Builder
    catalog: str


@pytest.fixture(params=["local", "databricks-emulated", "databricks"])
async def subject(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Subject]:
    catalog = tenant_catalog(f"contract{uuid.uuid4().hex[:10]}")
    if request.param == "local":
        yield Subject("local", LocalLakehouse(tmp_path / "lakehouse", timeouts=Timeouts(query=30.0)), catalog)
        return
    if request.param == "databricks-emulated":
        workspace = _emulator().Workspace(tmp_path / "volumes")
        client = SqlClient(workspace.connect, connections=2, backoff=Backoff(retries=1, pauses=(0.0,)))
        warehouse = DatabricksWarehouse(client, _emulator().DirectoryVolume(workspace), TenantLayout(), Limits())
        yield Subject("databricks-emulated", warehouse, catalog)
        workspace.close()
        return
    settings = live_settings()
    if settings is None:
        pytest.skip(f"no Databricks workspace configured: set {LIVE_VARIABLES} to run the contract suite on it")
    live = databricks_warehouse(settings)
    try:
        yield Subject("databricks", live, catalog)
    finally:
        await _drop_tenant(live, settings, catalog)
        await live.close()


async def _drop_tenant(warehouse: DatabricksWarehouse, settings: LoaderSettings, catalog: str) -> None:
    layout = warehouse.layout
    if layout.kind == "catalog_per_tenant":
        statements = [f"DROP CATALOG IF EXISTS `{catalog}` CASCADE"]
    else:
        statements = [f"DROP SCHEMA IF EXISTS {layout.layer(catalog, layer).sql} CASCADE"
                      for layer in (*LAYERS, layout.staging_schema)]  # fmt: skip

    def drop(session: Any) -> None:
        for statement in statements:
            session.execute(statement, doing=f"dropping the test tenant {catalog}")

    await warehouse.client.run(drop, timeout=settings.query_timeout_seconds, doing=f"dropping {catalog}")
