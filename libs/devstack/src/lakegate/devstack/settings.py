"""`LAKEGATE_*` variables that shape the local stack: its home and every port it listens on."""

from __future__ import annotations

from pathlib import Path

from lakegate.devstack.layout import HOME_DIRECTORY, repo_root
from lakegate.devstack.stack import EDGE_PROCESSES, LOOPBACK, StackConfig, StackPorts
from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

_DEFAULTS = StackPorts()


class StackSettings(BaseSettings):
    """Read once by `python -m lakegate.devstack`; every field has a default that works on a fresh machine."""

    model_config = SettingsConfigDict(env_prefix="LAKEGATE_", extra="ignore")

    home: Path | None = Field(default=None, description="State directory; default `.lakegate/` in the repo root.")
    nats_port: int = Field(default=_DEFAULTS.nats, ge=1, le=65535)
    postgres_port: int = Field(default=_DEFAULTS.postgres, ge=1, le=65535)
    edge_port: int = Field(default=_DEFAULTS.edge, ge=1, le=65535, description="The MCP endpoint's port.")
    edge_host: str = Field(default=LOOPBACK, description="The MCP endpoint's address; loopback keeps it private.")
    edge_processes: int = Field(
        default=EDGE_PROCESSES,
        ge=1,
        le=64,
        description="The edge's HTTP serving processes (`LAKEGATE_EDGE_PROCESSES`).",
    )
    catalog_health_port: int = Field(default=_DEFAULTS.catalog_health, ge=1, le=65535)
    extractor_health_port: int = Field(default=_DEFAULTS.extractor_health, ge=1, le=65535)
    loader_health_port: int = Field(default=_DEFAULTS.loader_health, ge=1, le=65535)
    edge_health_port: int = Field(default=_DEFAULTS.edge_health, ge=1, le=65535)

    def config(self) -> StackConfig:
        """The stack these settings describe, rooted at the repo that holds the current directory."""
        repo = repo_root()
        return StackConfig(
            home=(self.home or repo / HOME_DIRECTORY).resolve(),
            repo=repo,
            ports=StackPorts(
                nats=self.nats_port,
                postgres=self.postgres_port,
                edge=self.edge_port,
                catalog_health=self.catalog_health_port,
                extractor_health=self.extractor_health_port,
                loader_health=self.loader_health_port,
                edge_health=self.edge_health_port,
            ),
            edge_host=self.edge_host,
            edge_processes=self.edge_processes,
        )
