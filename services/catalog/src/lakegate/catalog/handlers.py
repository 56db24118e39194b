"""The catalog's FastStream subscribers: request handlers and the run-step consumer.

`app.py` registers each one on the broker; a handler is a few lines that call the domain.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from faststream.nats.annotations import NatsMessage
from lakegate.catalog.datasets import DatasetStore
from lakegate.catalog.launcher import RunLauncher
from lakegate.catalog.lifecycle import RunLifecycle, Step, parse_step, step_name
from lakegate.catalog.runs import RunStore
from lakegate.catalog.sources import SourceStore
from lakegate.common.contracts.catalog import DatasetList, ListDatasets
from lakegate.common.contracts.runs import ErrorInfo, RunRef, RunView, StartRun
from lakegate.common.contracts.sources import (
    ListSources,
    RegisterSource,
    SourceCredentials,
    SourceInfo,
    SourceList,
    SourceRef,
)
from lakegate.common.delivery import settle
from lakegate.common.errors import LakegateError
from lakegate.common.rpc import answers

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class CatalogHandlers:
    """Handlers bound to the catalog's stores."""

    sources: SourceStore
    runs: RunStore
    datasets: DatasetStore
    launcher: RunLauncher
    lifecycle: RunLifecycle

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
    async def get_run(self, request: RunRef) -> RunView:
        """`runs.get`: one run of the tenant."""
        return (await self.runs.get(request.tenant_id, request.run_id)).view()

    @answers
    async def list_datasets(self, request: ListDatasets) -> DatasetList:
        """`datasets.list`: the tenant's warehouse tables and where they came from."""
        return DatasetList(datasets=await self.datasets.of_tenant(request.tenant_id))

    async def on_run_step(self, msg: NatsMessage) -> None:
        """`run.<run_id>.<step>`: move the run's state machine, acknowledged through `settle`."""
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
