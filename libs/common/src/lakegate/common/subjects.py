"""Every NATS subject and JetStream stream lakegate uses; nobody writes a subject string inline.

All names hang off one prefix (`lakegate` by default) so that several stacks, or several tests,
can share one NATS server without seeing each other's messages.

- request/reply (core NATS):  `<prefix>.rpc.<service>.<verb>`
- commands (work queue):      `<prefix>.cmd.<verb>`                    stream `<PREFIX>_CMD`
- run steps (internal):       `<prefix>.run.<run_id>.<step>`           stream `<PREFIX>_RUN`
- staged parts:               `<prefix>.stage.<run_id>.<attempt>`      stream `<PREFIX>_STAGE`
- progress (core, lossy):     `<prefix>.progress.<run_id>`
- edge peers (core):          `<prefix>.edges.<edge instance>|all.<verb>`   one edge process asks or tells another
                              (password pages, tasks), or all (task listings, rate limits)
- public events:              `<prefix>.events.<tenant_id>.sync.completed|failed`   stream `<PREFIX>_EVENTS`
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Literal


class RunStep(StrEnum):
    """Steps a run reports on `<prefix>.run.<run_id>.<step>`."""

    EXTRACTING = "extracting"
    RANGE = "range"
    EXTRACTED = "extracted"
    LOADING = "loading"
    LOADED = "loaded"
    FAILED = "failed"


#: The step that opens an overlapped load (`Streaming`), on `<prefix>.run.<run_id>.streaming`. Not a `RunStep`:
#: only the loader acts on it, and whoever follows a run's progress by `RunStep` (the edge) needs nothing new.
STREAMING_STEP = "streaming"


@dataclass(frozen=True)
class StreamSpec:
    name: str
    subjects: tuple[str, ...]
    retention: Literal["limits", "workqueue"]
    max_age_seconds: float
    description: str


@dataclass(frozen=True)
class Topology:
    """Subjects and streams under one prefix."""

    prefix: str = "lakegate"

    # request/reply: catalog
    @property
    def sources_register(self) -> str:
        return f"{self.prefix}.rpc.catalog.sources.register"

    @property
    def sources_get(self) -> str:
        return f"{self.prefix}.rpc.catalog.sources.get"

    @property
    def sources_list(self) -> str:
        return f"{self.prefix}.rpc.catalog.sources.list"

    @property
    def sources_credentials(self) -> str:
        return f"{self.prefix}.rpc.catalog.sources.credentials"

    @property
    def runs_start(self) -> str:
        return f"{self.prefix}.rpc.catalog.runs.start"

    @property
    def runs_get(self) -> str:
        return f"{self.prefix}.rpc.catalog.runs.get"

    @property
    def datasets_list(self) -> str:
        return f"{self.prefix}.rpc.catalog.datasets.list"

    @property
    def runs_cancel(self) -> str:
        return f"{self.prefix}.rpc.catalog.runs.cancel"

    @property
    def schedules_create(self) -> str:
        return f"{self.prefix}.rpc.catalog.schedules.create"

    @property
    def schedules_list(self) -> str:
        return f"{self.prefix}.rpc.catalog.schedules.list"

    @property
    def schedules_delete(self) -> str:
        return f"{self.prefix}.rpc.catalog.schedules.delete"

    @property
    def runs_list(self) -> str:
        return f"{self.prefix}.rpc.catalog.runs.list"

    @property
    def audit_list(self) -> str:
        return f"{self.prefix}.rpc.catalog.audit.list"

    # request/reply: extractor
    @property
    def sources_check(self) -> str:
        return f"{self.prefix}.rpc.extractor.sources.check"

    @property
    def sources_check_registered(self) -> str:
        """Check a registered source; the extractor resolves its credentials itself."""
        return f"{self.prefix}.rpc.extractor.sources.check_registered"

    @property
    def source_tables_list(self) -> str:
        return f"{self.prefix}.rpc.extractor.tables.list"

    @property
    def source_table_describe(self) -> str:
        return f"{self.prefix}.rpc.extractor.tables.describe"

    @property
    def source_query(self) -> str:
        return f"{self.prefix}.rpc.extractor.query"

    # request/reply: loader
    @property
    def warehouse_query(self) -> str:
        return f"{self.prefix}.rpc.loader.query"

    @property
    def warehouse_tables_list(self) -> str:
        return f"{self.prefix}.rpc.loader.tables.list"

    @property
    def warehouse_tables_describe(self) -> str:
        return f"{self.prefix}.rpc.loader.tables.describe"

    @property
    def warehouse_tables_preview(self) -> str:
        return f"{self.prefix}.rpc.loader.tables.preview"

    @property
    def warehouse_transform(self) -> str:
        return f"{self.prefix}.rpc.loader.transform"

    @property
    def warehouse_gold_view(self) -> str:
        return f"{self.prefix}.rpc.loader.gold_view"

    @property
    def warehouse_upload(self) -> str:
        return f"{self.prefix}.rpc.loader.upload"

    # commands
    @property
    def cmd_extract(self) -> str:
        return f"{self.prefix}.cmd.extract"

    @property
    def cmd_extract_range(self) -> str:
        """Coordinator → extractor replicas: one range of a large table, in an exported snapshot."""
        return f"{self.prefix}.cmd.extract_range"

    @property
    def cmd_record_dataset(self) -> str:
        """Loader → catalog: a silver, gold or uploaded table was created or replaced."""
        return f"{self.prefix}.cmd.datasets.record"

    @property
    def cmd_audit(self) -> str:
        """Edge → catalog: one audit record per tool call."""
        return f"{self.prefix}.cmd.audit.record"

    # run steps
    def run_step(self, run_id: str, step: RunStep) -> str:
        return f"{self.prefix}.run.{run_id}.{step.value}"

    def run_steps(self, step: RunStep | None = None) -> str:
        """Wildcard over all runs, for one step or all of them."""
        return f"{self.prefix}.run.*.{step.value if step else '*'}"

    def run_streaming(self, run_id: str) -> str:
        """Where an extraction attempt says its parts are coming (`Streaming`)."""
        return f"{self.prefix}.run.{run_id}.{STREAMING_STEP}"

    def run_streamings(self) -> str:
        """`Streaming` of every run."""
        return f"{self.prefix}.run.*.{STREAMING_STEP}"

    # staging
    def stage(self, run_id: str, attempt: str) -> str:
        return f"{self.prefix}.stage.{run_id}.{attempt}"

    def stage_all(self, run_id: str) -> str:
        return f"{self.prefix}.stage.{run_id}.>"

    # progress
    def progress(self, run_id: str) -> str:
        return f"{self.prefix}.progress.{run_id}"

    # cancellation (core NATS: whoever works on the run stops; the catalog's state is the record)
    def cancel(self, run_id: str) -> str:
        return f"{self.prefix}.cancel.{run_id}"

    # a request the caller gave up on (core NATS: the service answering it stops its work)
    def call_cancel(self, call_id: str) -> str:
        return f"{self.prefix}.callcancel.{call_id}"

    # edge processes to each other: one (its instance id), or every one (`all`); `verb` is one token
    def edge_peer(self, instance: str, verb: str) -> str:
        return f"{self.prefix}.edges.{instance}.{verb}"

    # public events
    def sync_event(self, tenant_id: str, outcome: Literal["completed", "failed"]) -> str:
        return f"{self.prefix}.events.{tenant_id}.sync.{outcome}"

    def sync_events(self, tenant_id: str = "*") -> str:
        return f"{self.prefix}.events.{tenant_id}.sync.*"

    # streams
    @property
    def cmd_stream(self) -> StreamSpec:
        return StreamSpec(
            name=f"{self.prefix.upper()}_CMD",
            subjects=(f"{self.prefix}.cmd.>",),
            retention="workqueue",
            max_age_seconds=7 * 86400,
            description="Commands to the workers, each taken by exactly one consumer",
        )

    @property
    def run_stream(self) -> StreamSpec:
        return StreamSpec(
            name=f"{self.prefix.upper()}_RUN",
            subjects=(f"{self.prefix}.run.>",),
            retention="limits",
            max_age_seconds=7 * 86400,
            description="Internal steps of sync runs",
        )

    @property
    def stage_stream(self) -> StreamSpec:
        return StreamSpec(
            name=f"{self.prefix.upper()}_STAGE",
            subjects=(f"{self.prefix}.stage.>",),
            retention="limits",
            max_age_seconds=86400,
            description="Staged Arrow IPC parts of runs in flight; abandoned parts expire after a day",
        )

    @property
    def events_stream(self) -> StreamSpec:
        return StreamSpec(
            name=f"{self.prefix.upper()}_EVENTS",
            subjects=(f"{self.prefix}.events.>",),
            retention="limits",
            max_age_seconds=14 * 86400,
            description="Public sync events (CloudEvents 1.0 JSON), replayable for 14 days",
        )

    @property
    def streams(self) -> tuple[StreamSpec, ...]:
        return (self.cmd_stream, self.run_stream, self.stage_stream, self.events_stream)

    def durable(self, name: str) -> str:
        """A durable consumer name, unique per prefix."""
        return f"{self.prefix.replace('.', '_')}_{name}"
