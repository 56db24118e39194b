"""`LAKEGATE_LOADER_*`: which warehouse the loader uses, where it lives, and how far a query may go.

The warehouse is the embedded local lakehouse unless Databricks is configured (`DATABRICKS_HOST` and a
SQL warehouse); `LAKEGATE_LOADER_WAREHOUSE` chooses explicitly.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from lakegate.common.settings import ServiceSettings
from lakegate.common.sqlsize import QuerySizeSettings
from lakegate.loader.sqlsize import SizeLimits
from lakegate.loader.warehouses.sqlengine import size_bytes
from pydantic import Field, SecretStr, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

WarehouseKind = Literal["local", "databricks"]


class DatabricksSettings(BaseSettings):
    """The Databricks workspace, its SQL warehouse, and how lakegate lays tenants out in Unity Catalog.

    Workspace and credentials use the variables the Databricks SDK and CLI read (`DATABRICKS_HOST`,
    `DATABRICKS_TOKEN`, or a service principal's `DATABRICKS_CLIENT_ID` and `DATABRICKS_CLIENT_SECRET`;
    unset ones are left to the SDK's own chain, e.g. `DATABRICKS_CONFIG_PROFILE`). lakegate's own
    choices are `LAKEGATE_LOADER_DATABRICKS_*`.
    """

    model_config = SettingsConfigDict(env_prefix="LAKEGATE_LOADER_DATABRICKS_", extra="ignore", populate_by_name=True)

    host: str | None = Field(
        default=None,
        validation_alias="DATABRICKS_HOST",
        description="Workspace URL, e.g. https://dbc-123.cloud.databricks.com.",
    )
    token: SecretStr | None = Field(
        default=None, validation_alias="DATABRICKS_TOKEN", description="A personal access token."
    )
    client_id: str | None = Field(
        default=None, validation_alias="DATABRICKS_CLIENT_ID", description="A service principal's OAuth client id."
    )
    client_secret: SecretStr | None = Field(
        default=None, validation_alias="DATABRICKS_CLIENT_SECRET", description="A service principal's OAuth secret."
    )
    warehouse_id: str | None = Field(
        default=None, validation_alias="DATABRICKS_WAREHOUSE_ID", description="The SQL warehouse to run statements on."
    )
    http_path: str | None = Field(
        default=None,
        validation_alias="DATABRICKS_HTTP_PATH",
        description="The SQL warehouse HTTP path, e.g. /sql/1.0/warehouses/abc; built from the warehouse id if unset.",
    )
    layout: Literal["catalog_per_tenant", "schema_per_tenant"] = Field(
        default="catalog_per_tenant",
        description="`catalog_per_tenant`: catalog tenant_<id> with schemas bronze, silver, gold. "
        "`schema_per_tenant`: schemas tenant_<id>_bronze, ... in one configured `catalog`, for principals "
        "that may not create catalogs.",
    )
    catalog: str | None = Field(
        default=None,
        pattern=r"^[A-Za-z_][A-Za-z0-9_]*$",
        description="The one catalog that holds every tenant's schemas (schema_per_tenant only).",
    )
    staging_schema: str = Field(
        default="lakegate_staging",
        pattern=r"^[a-z_][a-z0-9_]*$",
        description="Schema of each tenant holding the staging Volume and staging tables (prefixed with the tenant "
        "catalog's name under schema_per_tenant).",
    )
    staging_volume: str = Field(
        default="files", pattern=r"^[a-z_][a-z0-9_]*$", description="Volume in the staging schema for Parquet parts."
    )
    json_type: Literal["string", "variant"] = Field(
        default="string",
        description="How JSON columns (Arrow `arrow.json`) are stored: STRING, or VARIANT (DBR 15.3+).",
    )
    parquet_file_bytes: int = Field(
        default=32 * 1024 * 1024,
        ge=1024,
        description="Arrow bytes per staged Parquet file; keeps each upload a single Files API request.",
    )
    connections: int = Field(default=4, ge=1, description="Connections to the SQL warehouse kept open for reuse.")
    retries: int = Field(
        default=4,
        ge=0,
        description="Retries of a statement the warehouse refused for a passing reason (starting, throttled).",
    )

    @property
    def configured(self) -> bool:
        """True when a workspace and a SQL warehouse are named."""
        return bool(self.host and (self.warehouse_id or self.http_path))

    def missing(self) -> list[str]:
        """The variables still needed to use Databricks."""
        needed = [] if self.host else ["DATABRICKS_HOST"]
        if not (self.warehouse_id or self.http_path):
            needed.append("DATABRICKS_WAREHOUSE_ID or DATABRICKS_HTTP_PATH")
        if self.layout == "schema_per_tenant" and not self.catalog:
            needed.append("LAKEGATE_LOADER_DATABRICKS_CATALOG (the catalog that holds tenant schemas)")
        return needed

    @property
    def sql_http_path(self) -> str:
        """The HTTP path of the SQL warehouse."""
        return self.http_path or f"/sql/1.0/warehouses/{self.warehouse_id}"


class LoaderSettings(ServiceSettings, QuerySizeSettings):
    """Read once at start and passed to `serve(settings)`."""

    model_config = SettingsConfigDict(env_prefix="LAKEGATE_LOADER_", extra="ignore")

    warehouse: Literal["auto", "local", "databricks"] = Field(
        default="auto",
        description="`auto`: Databricks when DATABRICKS_HOST and a SQL warehouse are set, else the local lakehouse.",
    )
    databricks: DatabricksSettings = Field(default_factory=DatabricksSettings)

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
    upload_max_rows: int = Field(
        default=1_000_000, ge=1, description="Most rows an uploaded file may hold (Parquet: read from its footer)."
    )
    upload_max_columns: int = Field(
        default=1_000, ge=1, description="Most columns an uploaded file may have; wider ones are refused."
    )
    query_threads: int = Field(default=4, ge=1, description="DuckDB threads per query.")
    query_memory_limit: str = Field(
        default="512MB",
        description="DuckDB memory limit per query, e.g. '2GB'; a query that needs more fails saying so. Also what a "
        "merge's deduplication and Delta MERGE hold before spilling to disk.",
    )
    query_process_memory: str = Field(
        default="1GB",
        description="Memory a statement over the local lakehouse (a query, preview, transform, statistics, a view's "
        "count or check) may add to its own process, e.g. '1GB': each runs in a child process whose address space the "
        "OS caps (RLIMIT_AS) at what it holds once its tables are open plus this, so lists and strings DuckDB's memory "
        "limit does not see cannot grow the loader; DuckDB's limit there is at most half of this. A statement that "
        "needs more fails saying so. 'none' runs them in the loader's process, bounded by "
        "LAKEGATE_LOADER_QUERY_MEMORY_LIMIT alone.",
    )
    query_slots: int = Field(
        default=4,
        ge=1,
        description="Warehouse statements (queries, previews, listings, transforms, uploads) one replica runs at the "
        "same time, in arrival order; a tenant holds at most LAKEGATE_LOADER_LANE_PER_TENANT of them.",
    )
    max_concurrent_loads: int = Field(
        default=4,
        ge=1,
        le=64,
        description="Extracted runs one replica loads at the same time, each into its own table (two runs of one "
        "table commit one after the other).",
    )
    max_concurrent_writes: int = Field(
        default=1,
        ge=1,
        le=64,
        description="Of those, loads that write the rows themselves (Arrow parts into Parquet, appends, merges) at the "
        "same time; each holds up to LAKEGATE_LOADER_LOAD_QUEUE_DEPTH batches and a merge its memory limit. Commits of "
        "data files the extractor wrote do not count.",
    )
    query_cache_bytes: int = Field(
        default=64 * 1024 * 1024,
        ge=0,
        description="Bytes of query answers the local lakehouse keeps in memory (their JSON), least recently used out "
        "first: the same statement from the same tenant over the same table versions is answered without a statement "
        "process or a slot. Only statements whose every function is deterministic are kept; a commit to any table "
        "read is a miss. 0 keeps none. The Databricks warehouse has its own result cache and ignores this.",
    )
    load_queue_depth: int = Field(
        default=4, ge=1, description="Staged batches read ahead of the Delta writer; bounds a load's memory."
    )
    stream_idle_seconds: float = Field(
        default=300.0,
        gt=0,
        description="A run loaded while it is extracted (`streaming`) waits this long for its next part or its "
        "`extracted` step; then the load is retried from its first part (the extractor may have stopped unheard).",
    )
    fault_exit_while: Path | None = Field(
        default=None,
        description="For fault tests only: while this file exists, the loader process exits at the start of every "
        "load, as an out-of-memory kill would. Never set it in a deployment.",
    )

    @property
    def warehouse_kind(self) -> WarehouseKind:
        """The warehouse this loader uses."""
        if self.warehouse == "auto":
            return "databricks" if self.databricks.configured else "local"
        return self.warehouse

    @property
    def query_process_bytes(self) -> int | None:
        """`query_process_memory` in bytes; None when queries run in the loader's process."""
        return size_bytes(self.query_process_memory)

    @property
    def sql_limits(self) -> SizeLimits:
        """The largest statement the SQL guard reads (`lakegate.loader.sqlsize`)."""
        return self.size_limits(SizeLimits)

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
        if self.query_process_memory.strip().lower() != "none" and size_bytes(self.query_process_memory) is None:
            raise ValueError(
                f"query_process_memory {self.query_process_memory!r} is not a size: write e.g. '1GB' or '512MB' in "
                "LAKEGATE_LOADER_QUERY_PROCESS_MEMORY, or 'none'"
            )
        if self.warehouse_kind == "databricks" and self.databricks.missing():
            raise ValueError(
                "the Databricks warehouse is chosen but not configured: set "
                + ", ".join(self.databricks.missing())
                + " (or LAKEGATE_LOADER_WAREHOUSE=local for the local lakehouse)"
            )
        return self
