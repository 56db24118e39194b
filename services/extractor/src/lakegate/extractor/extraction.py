"""One extraction: a source table read in one read-only snapshot and staged as bounded Arrow parts.

    cmd.extract ─▶ credentials from the catalog ─▶ run.<id>.extracting
                ─▶ asyncpg: BEGIN REPEATABLE READ READ ONLY, export the snapshot,
                   resolve the table and plan its columns in it
                ─▶ ADBC reads the table in that same snapshot (reader.py) ─▶ staged parts, progress
                ─▶ run.<id>.extracted, or run.<id>.failed when the error is terminal

Each delivery of a command is one attempt with parts of its own (`a<delivery>`), so a redelivered
command never mixes its parts with a crashed attempt's. A run that already reported `extracted` or
`failed` is not extracted again.
"""

from __future__ import annotations

import base64
import contextlib
import logging
import time
from collections.abc import Callable

import pyarrow as pa
from faststream.nats import NatsMessage
from lakegate.common.contracts.runs import (
    ErrorInfo,
    Extracted,
    Extracting,
    ExtractTable,
    Failed,
    Progress,
    StagedParts,
)
from lakegate.common.contracts.sources import SourceCredentials, SourceLogin, SourceRef
from lakegate.common.delivery import MAX_DELIVER, delivery_count, settle
from lakegate.common.errors import LakegateError, TerminalError
from lakegate.common.names import SourceTableName
from lakegate.common.service import Runtime
from lakegate.common.staging import StagingStore
from lakegate.common.subjects import RunStep
from lakegate.extractor.config import ExtractorSettings
from lakegate.extractor.connections import connect
from lakegate.extractor.details import primary_key
from lakegate.extractor.introspection import describe_source, resolve_table
from lakegate.extractor.query import TableQuery
from lakegate.extractor.reader import read_table
from nats.js.errors import NotFoundError
from pydantic import BaseModel

log = logging.getLogger(__name__)


def encode_schema(schema: pa.Schema) -> str:
    """An Arrow schema as base64 Arrow IPC, the way `Extracted.arrow_schema` carries it."""
    return base64.b64encode(schema.serialize().to_pybytes()).decode("ascii")


class Extractor:
    """Runs `ExtractTable` commands."""

    def __init__(self, rt: Runtime, settings: ExtractorSettings, staging: Callable[[], StagingStore]) -> None:
        self._rt, self._settings, self._staging = rt, settings, staging

    async def handle(self, command: ExtractTable, msg: NatsMessage) -> None:
        """Settle one delivery: ack when staged, retry a transient failure later, or fail the run."""
        attempt = delivery_count(msg)

        async def work() -> None:
            if attempt > MAX_DELIVER:
                # Earlier deliveries ended without settling: the process died while extracting.
                raise TerminalError(
                    f"the extractor stopped {attempt - 1} times while extracting "
                    f"{command.source_schema}.{command.source_table}; check its log and memory limit"
                )
            await self.extract(command, f"a{attempt}")

        async def fail(error: LakegateError) -> None:
            await self._publish_failed(command, error)

        await settle(msg, work, on_terminal=fail)

    async def extract(self, command: ExtractTable, attempt: str) -> Extracted | None:
        """Extract the command's table as attempt `attempt`; None when the run had already finished."""
        if await self._finished(command.run_id):
            log.info("run %s already reported its extraction; nothing to do", command.run_id)
            return None
        credentials = await self._rt.rpc.call(
            self._rt.topology.sources_credentials,
            SourceRef(tenant_id=command.tenant_id, connection_id=command.connection_id),
            SourceCredentials,
        )
        await self._publish(
            command.run_id,
            Extracting(tenant_id=command.tenant_id, run_id=command.run_id, attempt=attempt),
            RunStep.EXTRACTING,
            suffix=attempt,
        )
        started = time.monotonic()
        name = SourceTableName(command.source_schema, command.source_table)
        login = credentials.login
        async with (
            connect(login, self._settings, source=credentials.source.name) as conn,
            conn.transaction(isolation="repeatable_read", readonly=True),
        ):
            snapshot = await conn.fetchval("SELECT pg_catalog.pg_export_snapshot()")
            query = await resolve_table(conn, name, describe_source(credentials))
            key = await primary_key(conn, name)
            staged, rows = await self._stage(command, attempt, login, snapshot, query)
        extracted = Extracted(
            tenant_id=command.tenant_id,
            run_id=command.run_id,
            target=command.target,
            sync_mode=command.sync_mode,
            arrow_schema=encode_schema(query.schema),
            columns=[plan.as_mapping() for plan in query.plans],
            row_count=rows,
            staged=staged,
            primary_key=key,
        )
        await self._publish(command.run_id, extracted, RunStep.EXTRACTED)
        log.info(
            "run %s: extracted %d rows of %s in %d parts (%d bytes) in %.1fs",
            command.run_id,
            rows,
            name,
            staged.parts,
            staged.bytes,
            time.monotonic() - started,
        )
        return extracted

    async def _stage(
        self, command: ExtractTable, attempt: str, login: SourceLogin, snapshot: str, query: TableQuery
    ) -> tuple[StagedParts, int]:
        writer = await self._staging().writer(command.run_id, attempt)
        rows = 0
        reported = time.monotonic()
        async with contextlib.aclosing(read_table(login, snapshot, query, self._settings)) as batches:
            async for batch in batches:
                await writer.write(batch)
                rows += batch.num_rows
                if time.monotonic() - reported >= self._settings.progress_interval:
                    await self._progress(command.run_id, rows)
                    reported = time.monotonic()
        await self._progress(command.run_id, rows)
        return await writer.close(), rows

    async def _finished(self, run_id: str) -> bool:
        js = self._rt.broker.connection.jetstream()
        for step in (RunStep.EXTRACTED, RunStep.FAILED):
            try:
                await js.get_last_msg(self._rt.topology.run_stream.name, self._rt.topology.run_step(run_id, step))
            except NotFoundError:
                continue
            return True
        return False

    async def _publish(self, run_id: str, message: BaseModel, step: RunStep, *, suffix: str = "") -> None:
        """A run step on the RUN stream; its message id (`<run_id>.<step>`) makes a repeat a no-op."""
        message_id = f"{run_id}.{step.value}" + (f".{suffix}" if suffix else "")
        await self._rt.broker.publish(
            message,
            self._rt.topology.run_step(run_id, step),
            headers={"Nats-Msg-Id": message_id},
            stream=self._rt.topology.run_stream.name,
        )

    async def _publish_failed(self, command: ExtractTable, error: LakegateError) -> None:
        failed = Failed(
            tenant_id=command.tenant_id,
            run_id=command.run_id,
            step="extract",
            error=ErrorInfo(code=error.code, message=error.message, transient=False),
        )
        await self._publish(command.run_id, failed, RunStep.FAILED)

    async def _progress(self, run_id: str, rows: int) -> None:
        # Progress is lossy by design: a lost message must not fail the extraction.
        with contextlib.suppress(Exception):
            await self._rt.broker.publish(
                Progress(run_id=run_id, step="extracting", rows=rows), self._rt.topology.progress(run_id)
            )
