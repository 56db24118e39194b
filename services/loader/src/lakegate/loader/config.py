"""`LAKEGATE_LOADER_*`: where the local lakehouse lives and how far a query may go."""

from __future__ import annotations

from pathlib import Path

from lakegate.common.settings import ServiceSettings
from pydantic import Field, model_validator
from pydantic_settings import SettingsConfigDict


class LoaderSettings(ServiceSettings):
    """Read once at start and passed to `serve(settings)`."""

    model_config = SettingsConfigDict(env_prefix="LAKEGATE_LOADER_", extra="ignore")

    home: Path = Field(
        default=Path(".lakegate"),
        description="State directory; tables live under `<home>/lakehouse/<catalog>/<schema>/<table>`.",
    )
    default_max_rows: int = Field(default=1000, ge=1, description="Row cap of a query that names none.")
    max_rows_limit: int = Field(
        default=100_000, ge=1, description="Largest row cap a query may ask for; larger requests are lowered."
    )
    query_timeout_seconds: float = Field(
        default=60.0,
        gt=0,
        description="A query running longer is stopped. Keep it below the caller's request timeout "
        "(the edge waits LAKEGATE_EDGE_QUERY_TIMEOUT_SECONDS, 120 s by default).",
    )
    max_result_bytes: int = Field(
        default=4 * 1024 * 1024,
        ge=1024,
        description="Most bytes of JSON rows in one answer; rows beyond it are cut and `truncated` is set. "
        "Must stay below the NATS max_payload.",
    )
    transform_timeout_seconds: float = Field(
        default=600.0,
        gt=0,
        description="A transform to silver running longer is stopped and commits nothing. The caller's request "
        "timeout must be longer.",
    )
    upload_max_bytes: int = Field(
        default=5 * 1024 * 1024,
        ge=1024,
        le=6 * 1024 * 1024,
        description="Largest uploaded file (decoded). Its base64 travels in one NATS message, so 6 MiB is the "
        "most a 9 MB max_payload carries.",
    )
    query_threads: int = Field(default=4, ge=1, description="DuckDB threads per query.")
    query_memory_limit: str = Field(default="2GB", description="DuckDB memory limit per query, e.g. '2GB'.")
    request_workers: int = Field(
        default=4, ge=1, description="Requests (queries, listings) one replica answers at the same time."
    )
    load_queue_depth: int = Field(
        default=4, ge=1, description="Staged batches read ahead of the Delta writer; bounds a load's memory."
    )

    @property
    def lakehouse(self) -> Path:
        """The directory that holds every catalog."""
        return self.home / "lakehouse"

    @model_validator(mode="after")
    def _caps_agree(self) -> LoaderSettings:
        if self.default_max_rows > self.max_rows_limit:
            raise ValueError(
                f"default_max_rows ({self.default_max_rows}) is above max_rows_limit ({self.max_rows_limit}); "
                "lower LAKEGATE_LOADER_DEFAULT_MAX_ROWS or raise LAKEGATE_LOADER_MAX_ROWS_LIMIT"
            )
        return self
