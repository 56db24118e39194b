"""The catalog's FastStream subscribers: request handlers, the run-step consumer and the command consumers.

`app.py` registers each one on the broker; a handler is a few lines that call the domain.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import TypeVar

from faststream.nats.annotations import NatsMessage
from lakegate.catalog.audit import AuditLog, refusal
from lakegate.catalog.datasets import DatasetListings, DatasetStore
from lakegate.catalog.launcher import RunLauncher
from lakegate.catalog.lifecycle import RunLifecycle, Step, parse_step, step_name, tracked
from lakegate.catalog.paging import Window
from lakegate.catalog.run_listings import RunListings
from lakegate.catalog.runs import RunStore
from lakegate.catalog.schedules import ScheduleStore
from lakegate.catalog.sources import SourceListings, SourceStore
from lakegate.common.contracts.audit import AuditList, AuditRecord, AuditRecords, ListAudit
from lakegate.common.contracts.catalog import DatasetList, ListDatasets, ListRuns, RunList
from lakegate.common.contracts.runs import CancelRun, ErrorInfo, RunRef, RunView, StartRun
from lakegate.common.contracts.schedules import CreateSchedule, ListSchedules, Schedule, ScheduleList, ScheduleRef
from lakegate.common.contracts.sources import (
    ListSources,
    RegisterSource,
    SourceCredentials,
    SourceInfo,
    SourceList,
    SourceRef,
)
from lakegate.common.contracts.transforms import DatasetRecord
from lakegate.common.delivery import Batched, Delivery, Work, parsed, parsed_body
from lakegate.common.errors import InvalidInput, LakegateError
from lakegate.common.rpc import Encoded, answers
from pydantic import BaseModel

log = logging.getLogger(__name__)

C = TypeVar("C", bound=BaseModel)

#: Audit messages stored together at most, and how long a fetch waits for them (records are durable meanwhile).
AUDIT_BATCH, AUDIT_LINGER = 500, 0.5


def _commands(model: type[C], apply: Callable[[C], Awaitable[object]]) -> Work[C]:
    """Apply each command; one that can never apply is logged and dropped."""

    async def run(command: C, _: Delivery) -> None:
        await apply(command)

    async def fail(command: C, error: LakegateError) -> None:
        # Nobody waits on a command's outcome, so the log is where a dropped one is seen.
        log.error("dropped %s: %s", model.__name__, error)

    return Work(parse=parsed(model), run=run, fail=fail, doing=lambda _: f"applying a {model.__name__} command")


@dataclass(frozen=True)
class CatalogHandlers:
    """Handlers bound to the catalog's stores."""

    sources: SourceStore
    runs: RunStore
    datasets: DatasetStore
    audit: AuditLog
    launcher: RunLauncher
    lifecycle: RunLifecycle
    schedules: ScheduleStore
    listings: SourceListings
    dataset_listings: DatasetListings
    run_listings: RunListings

    @answers
    async def register_source(self, request: RegisterSource) -> SourceInfo:
        """`sources.register`: store a source, its password encrypted."""
        return await self.sources.register(request)

    @answers
    async def get_source(self, request: SourceRef) -> SourceInfo:
        """`sources.get`: one source of the tenant, without its secret."""
        return await self.sources.get(request.tenant_id, request.connection_id)

    @answers
    async def list_sources(self, request: ListSources) -> Encoded[SourceList]:
        """`sources.list`: every source of the tenant, as the JSON PostgreSQL writes for it (one statement)."""
        return await self.listings.of_tenant(request.tenant_id)

    @answers
    async def source_credentials(self, request: SourceRef) -> SourceCredentials:
        """`sources.credentials`: the decrypted password, for the extractor only."""
        return await self.sources.credentials(request.tenant_id, request.connection_id)

    @answers
    async def start_run(self, request: StartRun) -> RunView:
        """`runs.start`: record a run and send it to the extractors."""
        return await self.launcher.start(request)

    @answers
    async def cancel_run(self, request: CancelRun) -> RunView:
        """`runs.cancel`: stop an unfinished run; the target keeps what it held."""
        return (await self.lifecycle.cancel(request.tenant_id, request.run_id)).view()

    @answers
    async def create_schedule(self, request: CreateSchedule) -> Schedule:
        """`schedules.create`: sync a source table every N seconds or on a cron expression."""
        return await self.schedules.create(request)

    @answers
    async def list_schedules(self, request: ListSchedules) -> ScheduleList:
        """`schedules.list`: a page of the tenant's schedules, oldest first."""
        schedules, next_offset = await self.schedules.of_tenant(
            request.tenant_id, Window(request.offset, request.limit)
        )
        return ScheduleList(schedules=schedules, next_offset=next_offset)

    @answers
    async def delete_schedule(self, request: ScheduleRef) -> Schedule:
        """`schedules.delete`: stop scheduling; returns the schedule as it was."""
        return await self.schedules.delete(request.tenant_id, request.schedule_id)

    @answers
    async def get_run(self, request: RunRef) -> Encoded[RunView]:
        """`runs.get`: one run of the tenant (its JSON written by PostgreSQL)."""
        return await self.run_listings.one(request.tenant_id, request.run_id)

    @answers
    async def list_runs(self, request: ListRuns) -> Encoded[RunList]:
        """`runs.list`: a page of the tenant's runs, newest first, optionally of one source (JSON by PostgreSQL)."""
        if request.connection_id is not None:
            # An unknown source is named as such, rather than looking like a source that never ran.
            await self.sources.get(request.tenant_id, request.connection_id)
        window = Window(request.offset, request.limit)
        return await self.run_listings.newest(request.tenant_id, request.connection_id, window)

    @answers
    async def list_datasets(self, request: ListDatasets) -> Encoded[DatasetList]:
        """`datasets.list`: a page of the tenant's warehouse tables and where they came from (JSON by PostgreSQL)."""
        return await self.dataset_listings.page(request.tenant_id, Window(request.offset, request.limit))

    @answers
    async def list_audit(self, request: ListAudit) -> AuditList:
        """`audit.list`: a page of the tenant's tool calls, newest first."""
        records, next_offset = await self.audit.of_tenant(request.tenant_id, Window(request.offset, request.limit))
        return AuditList(records=records, next_offset=next_offset)

    @property
    def dataset_records(self) -> Work[DatasetRecord]:
        """`cmd.datasets.record`: upsert a silver, gold or uploaded table with its lineage."""
        return _commands(DatasetRecord, self.datasets.record)

    @property
    def audit_records(self) -> Batched[AuditRecords]:
        """`cmd.audit.record`: store every record of the messages taken together in one write, each once per id.

        Taken in batches that wait up to `AUDIT_LINGER` seconds: one INSERT per batch whatever the
        rate of tool calls (an edge under light load sends one record a message).
        """
        batch, single = parsed_body(AuditRecords), parsed_body(AuditRecord)

        def parse(subject: str, body: bytes) -> AuditRecords:
            try:
                command = batch(subject, body)
            except InvalidInput:
                # One record a message: what edges before batching sent, and what may still be queued.
                command = AuditRecords(records=[single(subject, body)])
            if (refused := refusal(command.records)) is not None:
                raise refused  # nothing of the message can ever be stored (a mixed one keeps its valid records)
            return command

        async def run(commands: Sequence[AuditRecords]) -> None:
            await self.audit.record_many([record for command in commands for record in command.records])

        async def fail(commands: Sequence[AuditRecords], error: LakegateError) -> None:
            log.error("dropped %d audit records: %s", sum(len(c.records) for c in commands), error)

        def doing(commands: Sequence[AuditRecords]) -> str:
            return f"storing {sum(len(c.records) for c in commands)} audit records"

        return Batched(parse=parse, run=run, fail=fail, doing=doing, size=AUDIT_BATCH, linger=AUDIT_LINGER)

    @property
    def run_steps(self) -> Work[Step]:
        """`run.<run_id>.<step>`: move the run's state machine; `range` steps are acknowledged and skipped."""

        def parse(msg: NatsMessage) -> Step | None:
            subject = msg.raw_message.subject
            return parse_step(subject, msg.body) if tracked(subject) else None

        async def run(step: Step, _: Delivery) -> None:
            await self.lifecycle.apply(step)

        async def fail(step: Step, error: LakegateError) -> None:
            reason = ErrorInfo(
                code=error.code,
                message=f"the catalog could not record the {step_name(step)} step of run {step.run_id}: {error}",
            )
            try:
                await self.lifecycle.fail(step.tenant_id, step.run_id, "catalog", reason)
            except LakegateError as exc:
                log.warning("run %s was not marked failed: %s", step.run_id, exc)

        return Work(
            parse=parse,
            run=run,
            fail=fail,
            doing=lambda step: f"recording the {step_name(step)} step of run {step.run_id}",
        )
