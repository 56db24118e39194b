"""`LAKEGATE_EXTRACTOR_*`: how the extractor talks to source databases and how big its batches get."""

from __future__ import annotations

from pathlib import Path

from lakegate.common.broker import MAX_PART_BYTES
from lakegate.common.delivery import ACK_WAIT
from lakegate.common.settings import CommaList, ServiceSettings
from lakegate.common.sqlsize import QuerySizeSettings
from lakegate.extractor.sqlsize import SizeLimits
from pydantic import Field, SecretStr, field_validator
from pydantic_settings import SettingsConfigDict


class ExtractorSettings(ServiceSettings, QuerySizeSettings):
    """Read once at start and passed in."""

    model_config = SettingsConfigDict(env_prefix="LAKEGATE_EXTRACTOR_", extra="ignore")

    seal_keys: SecretStr | None = Field(
        default=None,
        description="Private key(s) that open source secrets sealed by the edge (`python -m lakegate.devstack "
        "seal-key` makes a pair). Several separated by commas rotate: the edge seals with the first one's public "
        "key, every one opens.",
    )
    seal_keys_file: Path | None = Field(
        default=None,
        description="File holding the sealing private key(s), read at start; used when seal_keys is unset.",
    )
    secret_env_prefix: str = Field(
        default="LAKEGATE_SECRET_",
        pattern=r"^[A-Z][A-Z0-9_]*_$",
        description="A password reference `env:NAME` may only name variables starting with this prefix and the "
        "tenant's id in capitals (`LAKEGATE_SECRET_<TENANT>_...`), so no caller has the extractor send its own "
        "settings (NATS password, ...) or another tenant's secrets to a server of theirs.",
    )
    secret_dirs: CommaList = Field(
        default_factory=list,
        description="Directories a password reference `file:/path` may read from, comma-separated; a tenant reads "
        "only below `<dir>/<tenant id>/`. Empty: file references are refused.",
    )
    lakehouse_dir: Path | None = Field(
        default=None,
        description="The local lakehouse's directory (the loader's `<home>/lakehouse`) when this extractor shares "
        "its filesystem: full syncs then stage their rows as the tables' own Parquet data files under "
        "`<it>/_staging/`, and the loader only commits them. Unset: every run is staged as Arrow parts in JetStream.",
    )
    adbc_driver: Path | None = Field(
        default=None,
        description="A build of ADBC's PostgreSQL driver (`libadbc_driver_postgresql.so`) to stream tables with, "
        "instead of the one the adbc-driver-postgresql wheel bundles, which is compiled without optimisation: a "
        "release build of the same source reads rows with about 40% of its CPU (docs/overlapping-phases.md).",
    )
    allow_private_sources: bool = Field(
        default=False,
        description="Let sources be on loopback, link-local or private addresses (this machine, a private network).",
    )
    infrastructure: CommaList = Field(
        default_factory=list,
        description="host:port of the deployment's own services (catalog database, the edge, ...), comma-separated: "
        "no source may point at them, whatever allow_private_sources says. The NATS servers are always included.",
    )
    connect_timeout: float = Field(
        default=5.0,
        gt=0,
        description="Seconds to wait for a source database to accept a connection (short: a host that never "
        "answers holds only its own lane, and only this long).",
    )
    statement_timeout: float = Field(
        default=60.0, gt=0, description="Seconds one introspection or check query may run on a source."
    )
    extract_timeout: float = Field(
        default=0.0,
        ge=0,
        description="Seconds the one statement that streams a table may run; 0 means no limit.",
    )
    batch_rows: int = Field(default=100_000, ge=1, description="Most rows in one Arrow record batch.")
    batch_bytes: int = Field(
        default=8 * 1024 * 1024,
        ge=64 * 1024,
        description="Target size of one Arrow record batch in memory; batches are cut to stay near it.",
    )
    max_part_bytes: int = Field(
        default=MAX_PART_BYTES,
        ge=64 * 1024,
        le=MAX_PART_BYTES,
        description="Largest staged part (compressed); must fit in one NATS message.",
    )
    queue_batches: int = Field(
        default=2,
        ge=1,
        description="Batches that may wait between the reading thread and staging; bounds memory.",
    )
    progress_interval: float = Field(default=1.0, gt=0, description="Seconds between progress messages.")
    announce_streaming: bool = Field(
        default=True,
        description="Announce `streaming` before a full or incremental run's first JetStream part, so the loader "
        "loads while the run is extracted. False: the loader starts on `extracted` (for comparisons).",
    )
    ack_wait_seconds: float = Field(
        default=ACK_WAIT,
        gt=0,
        description="Seconds JetStream waits for an extractor to acknowledge (or heartbeat) a command before it "
        "redelivers it to another replica; heartbeats go out three times as often.",
    )
    late_commit_seconds: float = Field(
        default=3600.0,
        ge=0,
        description="How far before the stored cursor (timestamp and date cursors) an incremental or merge run looks "
        "for rows that were committed after the previous run read the table; 0 turns the look-back off.",
    )
    late_commit_ids: int = Field(
        default=100_000,
        ge=0,
        description="The same look-back for integer cursors (e.g. a serial key), in values below the stored cursor.",
    )
    parallel_min_bytes: int = Field(
        default=512 * 1024 * 1024,
        ge=0,
        description="A table at least this big on disk (PostgreSQL's relpages estimate) is split into ranges that "
        "several extractor replicas read in parallel, in one snapshot.",
    )
    parallel_ranges: int = Field(default=4, ge=2, le=256, description="How many ranges a large table is split into.")
    parallel_min_readers: int = Field(
        default=2,
        ge=1,
        le=256,
        description="Split a large table only when at least this many replicas are ready to read its ranges (each "
        "keeps a pull request waiting on the ranges' consumer while it has a range slot free). One replica reads a "
        "table faster as one stream: its ranges would be read one after another, cost the source more CPU than one "
        "scan, and load only after the last. 1 splits every large table.",
    )
    max_concurrent_runs: int = Field(
        default=2,
        ge=1,
        le=64,
        description="Tables (`cmd.extract`) one replica extracts at the same time; fewer when the memory budget "
        "or a source's connection limit says so. Ranges of large tables (`cmd.extract_range`) are read one at a time "
        "per replica beside them.",
    )
    source_connections: int = Field(
        default=6,
        ge=3,
        le=1000,
        description="Most connections one replica opens to one source database for syncs at the same time. Each "
        "table or range being read holds two (its snapshot session and its reader); a coordinator waiting for its "
        "ranges holds one. At least 3, so a range can always be read beside a waiting coordinator.",
    )
    memory_budget_bytes: int = Field(
        default=192 * 1024 * 1024,
        ge=1024 * 1024,
        description="Memory one replica's extractions may hold in batches at once, beside the process's own "
        "(~250 MiB). Each table run and the range read count `(queue_batches + 2) * batch_bytes` (its queued "
        "batches, the one being read, the one being staged), twice that when runs are staged as data files "
        "(`lakehouse_dir`: a row group gathered and encoded); no more tables are extracted at once than fit "
        "(at least one).",
    )
    query_timeout: float = Field(
        default=30.0, gt=0, description="Seconds one source_query statement may run before the server cancels it."
    )
    query_lock_timeout: float = Field(
        default=5.0, gt=0, description="Seconds a source_query statement may wait for a lock another session holds."
    )
    query_max_bytes: int = Field(
        default=4 * 1024 * 1024,
        ge=1024,
        le=MAX_PART_BYTES,
        description="Most bytes of JSON rows one source_query answer carries; more rows are cut and flagged.",
    )
    sample_scan_rows: int = Field(
        default=10_000, ge=1, description="Rows of a table read to pick the sample values of a description."
    )
    sample_max_chars: int = Field(
        default=200, ge=8, description="Longest sample value shown, in characters; longer ones are cut short."
    )

    @field_validator("adbc_driver")
    @classmethod
    def _driver_is_a_file(cls, value: Path | None) -> Path | None:
        if value is not None and not value.is_file():
            raise ValueError(
                f"{value} is not a file: point LAKEGATE_EXTRACTOR_ADBC_DRIVER at a built libadbc_driver_postgresql.so, "
                "or unset it to use the driver the adbc-driver-postgresql wheel bundles"
            )
        return value

    @property
    def run_memory_bytes(self) -> int:
        """What one run holds in batches: the queue, the batch being read and the one being staged.

        Data files (`lakehouse_dir`) also hold a row group being gathered and its encoded columns:
        measured on the bench's mixed table, each run at once beyond the first added 40-60 MiB of
        peak RSS, so such a run counts twice.
        """
        batches = (self.queue_batches + 2) * self.batch_bytes
        return batches * 2 if self.lakehouse_dir is not None else batches

    @property
    def concurrent_runs(self) -> int:
        """Tables one replica extracts at once: `max_concurrent_runs`, fewer when their batches exceed the budget.

        The range consumer's one read counts against the budget too.
        """
        fit = self.memory_budget_bytes // self.run_memory_bytes - 1
        return max(1, min(self.max_concurrent_runs, fit))

    @property
    def query_limits(self) -> SizeLimits:
        """The largest source_query the guard reads (`lakegate.extractor.sqlsize`)."""
        return self.size_limits(SizeLimits)
