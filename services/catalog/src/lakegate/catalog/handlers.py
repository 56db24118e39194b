"""The catalog's FastStream subscribers: request handlers, the run-step consumer and the command consumers.

`app.py` registers each one on the broker; a handler is a few lines that call the domain.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TypeVar

from faststream.nats.annotations import NatsMessage
from lakegate.catalog.audit import AuditLog
from lakegate.catalog.datasets import DatasetStore
from lakegate.catalog.launcher import RunLauncher
from lakegate.catalog.lifecycle import RunLifecycle, Step, parse_step, step_name, tracked
from lakegate.catalog.paging import Window
from lakegate.catalog.runs import RunStore
from lakegate.catalog.schedules import ScheduleStore
from lakegate.catalog.sources import SourceStore
from lakegate.common.contracts.audit import AuditList, AuditRecord, ListAudit
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
from lakegate.common.delivery import settle
from lakegate.common.errors import InvalidInput, LakegateError
from lakegate.common.rpc import answers
from pydantic import BaseModel, ValidationError

log = logging.getLogger(__name__)

C = TypeVar("C", bound=BaseModel)


def _command(model: type[C], msg: NatsMessage) -> C:
    try:
        return model.model_validate_json(msg.body)
    except ValidationError as exc:
        raise InvalidInput(
            f"message on {msg.raw_message.subject} is not a valid {model.__name__}: {exc}; the sender must be fixed"
        ) from None


async def _consume(msg: NatsMessage, model: type[C], apply: Callable[[C], Awaitable[object]]) -> None:
    """Apply one command through `settle`; a command that can never apply is logged and dropped."""

    async def work() -> None:
        await apply(_command(model, msg))

    async def on_terminal(error: LakegateError) -> None:
        # Nobody waits on a command's outcome, so the log is where a dropped one is seen.
        log.error("dropped %s on %s: %s", model.__name__, msg.raw_message.subject, error)

    await settle(msg, work, on_terminal=on_terminal)


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

    @answers
    async def register_source(self, request: RegisterSource) -> SourceInfo:
        """`sources.register`: store a source, its password encrypted."""
        return await self.sources.register(request)

    @answers
    async def get_source(self, request: SourceRef) -> SourceInfo:
        """`sources.get`: one source of the tenant, without its secret."""
        return await self.sources.get(request.tenant_id, request.connection_id)

    @answers
    async def list_sources(self, request: ListSources) -> SourceList:
        """`sources.list`: every source of the tenant."""
        return SourceList(sources=await self.sources.of_tenant(request.tenant_id))

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
    async def get_run(self, request: RunRef) -> RunView:
        """`runs.get`: one run of the tenant."""
        return (await self.runs.get(request.tenant_id, request.run_id)).view()

    @answers
    async def list_runs(self, request: ListRuns) -> RunList:
        """`runs.list`: a page of the tenant's runs, newest first, optionally of one source."""
        if request.connection_id is not None:
            # An unknown source is named as such, rather than looking like a source that never ran.
            await self.sources.get(request.tenant_id, request.connection_id)
        window = Window(request.offset, request.limit)
        runs, next_offset = await self.runs.newest(request.tenant_id, request.connection_id, window)
        return RunList(runs=[run.view() for run in runs], next_offset=next_offset)

    @answers
    async def list_datasets(self, request: ListDatasets) -> DatasetList:
        """`datasets.list`: a page of the tenant's warehouse tables and where they came from."""
        datasets, next_offset = await self.datasets.of_tenant(request.tenant_id, Window(request.offset, request.limit))
        return DatasetList(datasets=datasets, next_offset=next_offset)

    @answers
    async def list_audit(self, request: ListAudit) -> AuditList:
        """`audit.list`: a page of the tenant's tool calls, newest first."""
        records, next_offset = await self.audit.of_tenant(request.tenant_id, Window(request.offset, request.limit))
        return AuditList(records=records, next_offset=next_offset)

    async def on_dataset_record(self, msg: NatsMessage) -> None:
        """`cmd.datasets.record`: upsert a silver, gold or uploaded table with its lineage."""
        await _consume(msg, DatasetRecord, self.datasets.record)

    async def on_audit_record(self, msg: NatsMessage) -> None:
        """`cmd.audit.record`: store one tool call, once per record id."""
        await _consume(msg, AuditRecord, self.audit.record)

    async def on_run_step(self, msg: NatsMessage) -> None:
        """`run.<run_id>.<step>`: move the run's state machine, acknowledged through `settle`."""
        if not tracked(msg.raw_message.subject):
            await msg.ack()
            return
        step: Step | None = None

        async def work() -> None:
            nonlocal step
            step = parse_step(msg.raw_message.subject, msg.body)
            await self.lifecycle.apply(step)

        async def on_terminal(error: LakegateError) -> None:
            if step is None:  # not a step of any run we could name
                return
            reason = ErrorInfo(
                code=error.code,
                message=f"the catalog could not record the {step_name(step)} step of run {step.run_id}: {error}",
            )
            try:
                await self.lifecycle.fail(step.tenant_id, step.run_id, "catalog", reason)
            except LakegateError as exc:
                log.warning("run %s was not marked failed: %s", step.run_id, exc)
            except Exception:
                # Settling must go on (the message is rejected next); the run stays as it was.
                log.exception("run %s was not marked failed", step.run_id)

        await settle(msg, work, on_terminal=on_terminal)
