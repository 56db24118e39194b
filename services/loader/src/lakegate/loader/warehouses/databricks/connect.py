"""The real connections: `databricks-sql-connector` for SQL, the Databricks SDK for the Files API.

Credentials are resolved by the SDK's `Config` (a token, a service principal's OAuth client
credentials, or anything else in the SDK's chain such as a profile), and the SQL connector asks the
same `Config` for its headers, so both always authenticate the same way. Nothing reaches the
workspace until the first statement or upload: a loader starts even while the workspace is away.
"""

from __future__ import annotations

import functools
import threading
from typing import Any

from databricks import sql as databricks_sql
from databricks.sdk import WorkspaceClient
from databricks.sdk.core import Config
from lakegate.loader.config import DatabricksSettings
from lakegate.loader.warehouses.databricks.client import Connection

USER_AGENT = "lakegate-loader"


class _SdkCredentials:
    """The SQL connector's credentials provider, backed by the SDK's `Config`."""

    def __init__(self, config: Config) -> None:
        self._config = config

    def auth_type(self) -> str:
        return str(self._config.auth_type or "sdk")

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return self._config.authenticate


class Workspace:
    """One workspace's SDK configuration, built on first use, and connections to its SQL warehouse."""

    def __init__(self, settings: DatabricksSettings) -> None:
        self._settings = settings
        self._lock = threading.Lock()

    @functools.cached_property
    def config(self) -> Config:
        """The SDK configuration; unset fields are left to the SDK's own chain."""
        with self._lock:
            settings = self._settings
            given: dict[str, Any] = {"host": settings.host, "product": USER_AGENT, "product_version": "0.1"}
            if settings.token is not None:
                given["token"] = settings.token.get_secret_value()
            if settings.client_id is not None:
                given["client_id"] = settings.client_id
            if settings.client_secret is not None:
                given["client_secret"] = settings.client_secret.get_secret_value()
            return Config(**given)

    def client(self) -> WorkspaceClient:
        """A workspace client (used for the Files API)."""
        return WorkspaceClient(config=self.config)

    def connect(self) -> Connection:
        """A new connection to the SQL warehouse."""
        hostname = (self._settings.host or "").removeprefix("https://").removeprefix("http://").rstrip("/")
        connection: Connection = databricks_sql.connect(
            server_hostname=hostname,
            http_path=self._settings.sql_http_path,
            credentials_provider=_SdkCredentials(self.config),
            user_agent_entry=USER_AGENT,
        )
        return connection
