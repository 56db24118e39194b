"""The audit trail: one `AuditRecord` per tool call, published without slowing the call down.

`AuditedCalls` is server middleware around every `tools/call`: it times the call, learns its
outcome (the error code is noted by `failures.tool_errors` through `note_error_code`) and hands
the record to `AuditTrail`, whose background task publishes it to `cmd.audit.record` on the CMD
stream. Records queued while a publish is under way go out together in one `AuditRecords`
message (one publish, and one catalog write, per batch, of up to `BATCH_RECORDS`), so the cost per
call falls as the load rises. A batch that is not full when its first record is taken waits
`LINGER_SECONDS` for company: one caller making a call after another would otherwise cost a
JetStream publish and its acknowledgement per call (~14% of the edge's CPU at one connection), and
a busy edge whose publishes took a millisecond or two published one small batch after another
(py-spy at 64 connections: ~7% of the edge's samples in those publishes and their
acknowledgements). So below `BATCH_RECORDS / LINGER_SECONDS` calls a second an edge publishes
about 20 batches a second, and a record is stored up to that much later; above it, batches go out
full, one after the other. On
shutdown the queue is drained before the edge stops. The caller has its result by then; a
record that cannot be published is logged, never raised into a tool call.

A batch goes to JetStream on the NATS client itself (JSON with the `content-type` the catalog's
subscriber decodes by), not through FastStream's `broker.publish`, whose middleware made two spans
per publish: a batch belongs to no one call's trace, so it carries none.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import time
from collections.abc import AsyncIterator
from contextvars import ContextVar
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal

from faststream.nats import NatsBroker
from lakegate.common.contracts.audit import AuditRecord, AuditRecords
from lakegate.common.errors import LakegateError
from lakegate.common.subjects import Topology
from lakegate.edge.redaction import redact_arguments
from lakegate.edge.tenancy import Tenancy
from mcp.server.context import CallNext, HandlerResult, ServerRequestContext
from mcp_types import CallToolResult, InputRequiredResult

log = logging.getLogger(__name__)

#: Tries per record; JetStream drops a repeated `Nats-Msg-Id`, so a retried publish is stored once.
PUBLISH_ATTEMPTS = 3
#: Most records, and about the most bytes, in one published batch (well below NATS's 1 MiB payload).
BATCH_RECORDS = 200
BATCH_BYTES = 256 * 1024
#: How long a batch short of `BATCH_RECORDS` waits for more records before it is published.
LINGER_SECONDS = 0.05
#: The code of a failed call whose body never ran: the SDK refused its name or arguments.
REFUSED_BEFORE_RUNNING = "invalid_input"


@dataclass
class _Outcome:
    code: str | None = None


_OUTCOME: ContextVar[_Outcome | None] = ContextVar("lakegate_edge_call_outcome", default=None)


def note_error_code(code: str) -> None:
    """Tell the audit of the current tool call why it failed."""
    outcome = _OUTCOME.get()
    if outcome is not None:
        outcome.code = code


def noted_error_code() -> str | None:
    """The error code noted for the current tool call so far (None: none, or no call)."""
    outcome = _OUTCOME.get()
    return outcome.code if outcome is not None else None


class AuditTrail:
    """Publishes audit records from a background task, so that no tool call waits for NATS."""

    def __init__(
        self,
        broker: NatsBroker,
        topology: Topology,
        *,
        capacity: int = 1000,
        publish_timeout: float = 5.0,
        batch_records: int = BATCH_RECORDS,
        batch_bytes: int = BATCH_BYTES,
        linger_seconds: float = LINGER_SECONDS,
    ) -> None:
        self._broker, self._topology = broker, topology
        self._queue: asyncio.Queue[AuditRecord] = asyncio.Queue(capacity)
        self._publish_timeout = publish_timeout
        self._batch_records, self._batch_bytes = batch_records, batch_bytes
        self._linger = linger_seconds

    @property
    def queued(self) -> int:
        """How many records wait for the publisher to take them right now."""
        return self._queue.qsize()

    def record(self, record: AuditRecord) -> None:
        """Queue one record; when the queue is full the record is dropped and the drop logged."""
        try:
            self._queue.put_nowait(record)
        except asyncio.QueueFull:
            log.warning(
                "audit queue is full (%d records): dropped record %s of %s by %s",
                self._queue.maxsize,
                record.id,
                record.tool,
                record.actor,
            )

    @contextlib.asynccontextmanager
    async def running(self, drain_seconds: float = 5.0) -> AsyncIterator[AuditTrail]:
        """Publish queued records while the body runs; on exit, publish what is left, for a while."""
        task = asyncio.create_task(self._publish_forever(), name="audit-trail")
        try:
            yield self
        finally:
            try:
                await asyncio.wait_for(self._queue.join(), drain_seconds)
            except TimeoutError:
                log.warning("stopping with %d audit records unpublished", self._queue.qsize())
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def _publish_forever(self) -> None:
        while True:
            batch = [await self._queue.get()]
            if self._linger > 0 and self._queue.qsize() < self._batch_records - 1:
                await asyncio.sleep(self._linger)  # a batch short of full waits for the next calls' records
            # Whatever else is queued goes in the same message: one publish (and one catalog write) per batch.
            size = _size(batch[0])
            while len(batch) < self._batch_records and size < self._batch_bytes and not self._queue.empty():
                record = self._queue.get_nowait()
                batch.append(record)
                size += _size(record)
            try:
                await self._publish(batch)
            finally:
                for _ in batch:
                    self._queue.task_done()

    async def _publish(self, batch: list[AuditRecord]) -> None:
        # The batch's id is its first record's: a republished batch is dropped by JetStream's duplicate window.
        msg_id = f"{batch[0].id}+{len(batch)}"
        payload = AuditRecords(records=batch).model_dump_json().encode()
        headers = {"content-type": "application/json", "Nats-Msg-Id": msg_id}
        for attempt in range(1, PUBLISH_ATTEMPTS + 1):
            try:
                await self._broker.connection.jetstream().publish(
                    self._topology.cmd_audit,
                    payload,
                    timeout=self._publish_timeout,
                    stream=self._topology.cmd_stream.name,
                    headers=headers,
                )
                return
            except Exception as exc:
                if attempt == PUBLISH_ATTEMPTS:
                    log.warning(
                        "a batch of %d audit records (first %s of %s) was not published: %r",
                        len(batch),
                        batch[0].id,
                        batch[0].tool,
                        exc,
                    )
                    return
                await asyncio.sleep(0.2 * 2**attempt)  # a backoff: NATS may be reconnecting


def _size(record: AuditRecord) -> int:
    """Roughly the bytes `record` takes in a message (its arguments are already shortened)."""
    return 256 + sum(len(name) + len(value) for name, value in record.arguments.items())


class RecordIds:
    """Random version-4 UUIDs as hex, cut from one `os.urandom` read per `BATCH` ids instead of one read each.

    The first read comes with the first id, so edge processes forked at start share no random bytes.
    """

    BATCH = 256

    def __init__(self) -> None:
        self._random = b""
        self._at = 0

    def next(self) -> str:
        """What `uuid.uuid4().hex` gives: 122 random bits, the version and variant bits set."""
        if self._at >= len(self._random):
            self._random, self._at = os.urandom(16 * self.BATCH), 0
        chunk = bytearray(self._random[self._at : self._at + 16])
        self._at += 16
        chunk[6] = (chunk[6] & 0x0F) | 0x40
        chunk[8] = (chunk[8] & 0x3F) | 0x80
        return chunk.hex()


@dataclass(frozen=True)
class AuditedCalls:
    """Server middleware: records every finished `tools/call` on the audit trail."""

    trail: AuditTrail
    tenancy: Tenancy
    _ids: RecordIds = field(default_factory=RecordIds, init=False, repr=False, compare=False)

    async def __call__(self, ctx: ServerRequestContext[Any, Any], call_next: CallNext) -> HandlerResult:
        if ctx.method != "tools/call":
            return await call_next(ctx)
        at, began = datetime.now(UTC), time.perf_counter()
        outcome = _Outcome()
        reset = _OUTCOME.set(outcome)
        try:
            result = await call_next(ctx)
        except asyncio.CancelledError:
            self._record(ctx, at, began, "cancelled")
            raise
        except Exception:
            self._record(ctx, at, began, outcome.code or REFUSED_BEFORE_RUNNING)
            raise
        finally:
            _OUTCOME.reset(reset)
        failed = call_failed(result)
        if failed is not None:  # None: the call waits for the client's input and is not over yet
            self._record(ctx, at, began, (outcome.code or REFUSED_BEFORE_RUNNING) if failed else None)
        return result

    def _record(self, ctx: ServerRequestContext[Any, Any], at: datetime, began: float, error_code: str | None) -> None:
        params = ctx.params or {}
        tool = str(params.get("name", ""))
        outcome: Literal["ok", "error"] = "ok" if error_code is None else "error"
        try:
            tenant = self.tenancy.current()
        except LakegateError as exc:
            log.info("tool call %s of an unidentified caller is not audited: %s", tool, exc)
            return
        self.trail.record(
            AuditRecord(
                id=f"aud_{self._ids.next()}",
                tenant_id=tenant,
                actor=self.tenancy.actor(),
                tool=tool,
                arguments=redact_arguments(params.get("arguments")),
                outcome=outcome,
                error_code=error_code,
                duration_ms=round((time.perf_counter() - began) * 1000, 3),
                at=at,
            )
        )


def call_failed(result: HandlerResult) -> bool | None:
    """Whether a finished call failed; None when it only asks the client for input first."""
    if isinstance(result, InputRequiredResult):
        return None
    if isinstance(result, CallToolResult):
        return bool(result.is_error)
    if isinstance(result, dict):
        if result.get("resultType") == "input_required":
            return None
        return bool(result.get("isError"))
    return False
