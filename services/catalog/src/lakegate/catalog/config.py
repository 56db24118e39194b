"""`LAKEGATE_CATALOG_*`: the catalog's database, its secret key, its pool and its scheduler."""

from __future__ import annotations

from pathlib import Path

from lakegate.common.settings import ServiceSettings
from pydantic import Field, SecretStr
from pydantic_settings import SettingsConfigDict


class CatalogSettings(ServiceSettings):
    """Read once at start; `serve(settings)` refuses to start without a secret key."""

    model_config = SettingsConfigDict(env_prefix="LAKEGATE_CATALOG_", extra="ignore")

    database_url: SecretStr = Field(
        default=SecretStr("postgresql://postgres@127.0.0.1:5432/lakegate_catalog"),
        description="DSN of the catalog's own PostgreSQL database; it may carry a password, so it is a secret.",
    )
    secret_key: SecretStr | None = Field(
        default=None,
        description="Fernet key that encrypts source passwords. Several keys separated by commas rotate: "
        "the first encrypts, every one decrypts.",
    )
    secret_key_file: Path | None = Field(
        default=None, description="File holding the Fernet key(s), read at start; used when secret_key is unset."
    )
    pool_min_size: int = Field(default=1, ge=0, description="Connections the pool keeps open.")
    pool_max_size: int = Field(default=10, ge=1, description="Most connections the pool opens.")
    read_connections: int = Field(
        default=4,
        ge=1,
        description="Connections of the hot listings (sources, runs, datasets), apart from the pool; opened on use.",
    )
    publish_timeout: float = Field(default=5.0, gt=0, description="Seconds to wait for JetStream to accept a message.")
    scheduler_enabled: bool = Field(
        default=True,
        description="Run the scheduler loop: one replica at a time (the leader) starts the runs of due schedules.",
    )
    scheduler_tick: float = Field(
        default=5.0,
        gt=0,
        le=60,
        description="Seconds between two looks for due schedules; also how soon a replica notices that the "
        "scheduling leader is gone.",
    )
