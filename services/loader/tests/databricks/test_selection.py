"""Which warehouse the loader runs on: the local lakehouse unless Databricks is configured."""

from __future__ import annotations

from pathlib import Path

import pytest
from lakegate.common.settings import NatsSettings
from lakegate.loader.app import serve
from lakegate.loader.config import DatabricksSettings, LoaderSettings
from lakegate.loader.warehouses.databricks import DatabricksWarehouse
from lakegate.loader.warehouses.delta import LocalLakehouse
from pydantic import ValidationError


def test_without_databricks_settings_the_local_lakehouse_is_used() -> None:
    assert LoaderSettings(databricks=DatabricksSettings()).warehouse_kind == "local"


def test_a_workspace_and_a_sql_warehouse_select_databricks(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DATABRICKS_HOST", "https://dbc-1.cloud.databricks.com")
    monkeypatch.setenv("DATABRICKS_WAREHOUSE_ID", "abc123")

    settings = LoaderSettings()

    assert settings.warehouse_kind == "databricks"
    assert settings.databricks.sql_http_path == "/sql/1.0/warehouses/abc123"
    assert LoaderSettings(warehouse="local").warehouse_kind == "local"


def test_choosing_databricks_without_its_settings_names_what_to_set() -> None:
    with pytest.raises(ValidationError, match="DATABRICKS_HOST, DATABRICKS_WAREHOUSE_ID or DATABRICKS_HTTP_PATH"):
        LoaderSettings(warehouse="databricks", databricks=DatabricksSettings())
    with pytest.raises(ValidationError, match="LAKEGATE_LOADER_DATABRICKS_CATALOG"):
        LoaderSettings(
            databricks=DatabricksSettings(host="https://x", warehouse_id="w", layout="schema_per_tenant"),
        )


async def test_a_loader_configured_for_databricks_serves_with_it_and_connects_only_when_used(
    nats_settings: NatsSettings, lakegate_home: Path
) -> None:
    databricks = DatabricksSettings(host="https://dbc-1.cloud.databricks.com", warehouse_id="abc", token="secret")
    settings = LoaderSettings(nats=nats_settings, home=lakegate_home, databricks=databricks)

    async with serve(settings) as state:
        assert isinstance(state.warehouse, DatabricksWarehouse)
        assert state.warehouse.layout.volume_path("tenant_a") == "/Volumes/tenant_a/lakegate_staging/files"
    assert not (lakegate_home / "lakehouse").exists()

    async with serve(LoaderSettings(nats=nats_settings, home=lakegate_home, warehouse="local")) as state:
        assert isinstance(state.warehouse, LocalLakehouse)
