"""Per-tenant rate limits on tool calls, edge-wide: a token bucket per tenant, refused calls say when to retry.

Each tenant's bucket holds up to `LAKEGATE_EDGE_RATE_LIMIT_BURST` calls and refills at
`LAKEGATE_EDGE_RATE_LIMIT_PER_SECOND`; a tool call takes one token. A call that finds the bucket
empty is not run: it is a tool error result (`isError`) whose text and structured content carry
`retry_after`, the seconds until a token is back, and the audit records it as `rate_limited`.
One tenant's burst never takes from another's bucket.

The limit holds for the whole edge, however many processes (`LAKEGATE_EDGE_PROCESSES`) and replicas
serve it, without a NATS round trip per call: each process decides a call from its own buckets, as
cheaply as one process alone, and they keep each other's buckets in step (`AdmissionReports`):

    every process          reports, every `LAKEGATE_EDGE_RATE_LIMIT_REPORT_SECONDS` in which it
                           admitted any call, how many it admitted per tenant since its last report
                           (`Admitted`, at most `MAX_REPORTED_TENANTS` tenants, the rest next time), on
                           `Topology.edge_peer("all", "admitted")`, with its instance id
    on another's report    a process takes those calls from its own buckets of those tenants (it ignores
                           its own reports). A bucket may go below zero: it refuses until refilled, and
                           `retry_after` counts the whole debt
    a process that stops   just stops reporting; one that starts has full buckets, as after a quiet spell

So each process's bucket of a tenant counts every call the edge admitted for it but those of the last
report interval (and NATS latency) of the others: the sustained rate over the edge is the limit, and
the most the edge admits past it is what the other processes admitted within one interval before
their report arrived (each at most its bucket: a burst at once on every process may pass once, a
steady stream passes about `rate * interval` calls more per process). Without NATS the reports are
dropped and each process limits on its own.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import math
import threading
import time
from collections import OrderedDict
from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from lakegate.common.rpc import answers
from lakegate.common.service import Runtime
from lakegate.edge.audit import note_error_code
from lakegate.edge.nats_link import NatsLink
from lakegate.edge.tenancy import Tenancy
from mcp.server.context import CallNext, HandlerResult, ServerRequestContext
from mcp_types import CallToolResult, TextContent
from pydantic import BaseModel, Field, PositiveInt

log = logging.getLogger(__name__)

#: Buckets kept at once; the least recently used tenant's is dropped past this (it refills anyway).
MAX_BUCKETS = 10_000
#: Most tenants one report names; the others' admissions wait for the next report.
MAX_REPORTED_TENANTS = 1_000
RATE_LIMITED = "rate_limited"
#: The verb of the reports' subject, `Topology.edge_peer("all", ADMITTED)`.
ADMITTED = "admitted"


@dataclass
class _Bucket:
    tokens: float
    at: float


@dataclass
class TokenBuckets:
    """One token bucket per key: `burst` tokens at most, `rate` tokens back per second.

    It counts the tokens it hands out per key until `admitted()` takes the counts, and `spend` takes
    tokens others handed out: that is how the edge's processes share their buckets (`AdmissionReports`).
    """

    rate: float
    burst: int
    clock: Callable[[], float] = time.monotonic
    _buckets: OrderedDict[str, _Bucket] = field(default_factory=OrderedDict, init=False, repr=False)
    _admitted: dict[str, int] = field(default_factory=dict, init=False, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, init=False, repr=False)

    def take(self, key: str) -> float:
        """Take one token for `key`: 0.0 when it was there, else the seconds until one will be."""
        now = self.clock()
        with self._lock:
            bucket = self._refilled(key, now)
            if bucket.tokens >= 1.0:
                bucket.tokens -= 1.0
                self._admitted[key] = self._admitted.get(key, 0) + 1
                return 0.0
            return (1.0 - bucket.tokens) / self.rate

    def spend(self, taken: Mapping[str, int]) -> None:
        """Take tokens handed out elsewhere, `taken[key]` of each key's bucket, even below zero."""
        now = self.clock()
        with self._lock:
            for key, tokens in taken.items():
                self._refilled(key, now).tokens -= tokens

    def admitted(self, most: int = MAX_REPORTED_TENANTS) -> dict[str, int]:
        """The tokens handed out per key since the last time, for `most` keys at most (the rest stay counted)."""
        with self._lock:
            if len(self._admitted) <= most:
                admitted, self._admitted = self._admitted, {}
                return admitted
            keys = list(itertools.islice(self._admitted, most))
            return {key: self._admitted.pop(key) for key in keys}

    def _refilled(self, key: str, now: float) -> _Bucket:
        """`key`'s bucket refilled up to `now`, made the most recently used (the caller holds the lock)."""
        bucket = self._buckets.pop(key, None) or _Bucket(tokens=float(self.burst), at=now)
        bucket.tokens = min(float(self.burst), bucket.tokens + (now - bucket.at) * self.rate)
        bucket.at = now
        self._buckets[key] = bucket
        if len(self._buckets) > MAX_BUCKETS:
            self._buckets.popitem(last=False)
        return bucket


class Admitted(BaseModel):
    """One edge process's report of the tool calls it admitted since its last report, per tenant."""

    instance: str = Field(description="The reporting process's instance id (`NatsLink.instance`).")
    calls: dict[str, PositiveInt] = Field(
        description="Tool calls admitted per tenant since the last report; only tenants with some."
    )


class AdmissionReports:
    """Reports this process's admissions to the edge's other processes, and spends theirs from its buckets."""

    def __init__(self, rt: Runtime, link: NatsLink, buckets: TokenBuckets, interval: float) -> None:
        self.buckets = buckets
        self._rt, self._link, self._interval = rt, link, interval
        self._subject = rt.topology.edge_peer("all", ADMITTED)
        #: Calls of the other processes spent from this one's buckets so far (`heard` waits on it).
        self.spent = 0
        self._heard = asyncio.Condition()  # bound to a loop on first use, not here
        # A queue of its own: every process hears every report.
        rt.requests.answer(self._subject, self._hear, queue=f"{self._subject}.{link.instance}", workers=1)

    @contextlib.asynccontextmanager
    async def running(self) -> AsyncIterator[None]:
        """Report every interval while the body runs."""
        reporting = asyncio.create_task(self._report(), name="rate-limit-reports")
        try:
            yield
        finally:
            reporting.cancel()
            await asyncio.gather(reporting, return_exceptions=True)

    async def heard(self, calls: int) -> None:
        """Return once `calls` calls of the other processes have been spent here (what the tests wait on)."""
        async with self._heard:
            await self._heard.wait_for(lambda: self.spent >= calls)

    async def _report(self) -> None:
        while True:
            await asyncio.sleep(self._interval)
            calls = self.buckets.admitted()
            if not calls or not self._link.connected:
                continue  # without NATS each process limits on its own
            try:
                # On the client itself, as the audit's batches are: FastStream's publish costs many times more.
                report = Admitted(instance=self._link.instance, calls=calls).model_dump_json().encode()
                await self._rt.broker.connection.publish(self._subject, report)
            except Exception:  # the others miss these calls; the next report comes anyway
                log.warning("could not report admitted tool calls to the other edge processes", exc_info=True)

    @answers
    async def _hear(self, report: Admitted) -> Admitted:
        # A broadcast has no reply subject: what this answers is sent to nobody.
        if report.instance != self._link.instance:
            self.buckets.spend(report.calls)
            async with self._heard:
                self.spent += sum(report.calls.values())
                self._heard.notify_all()
        return report


def refusal(tenant: str, buckets: TokenBuckets, retry_after: float) -> str:
    """The text of a refused call."""
    return (
        f"rate limited: tenant {tenant} made more tool calls than its limit of {buckets.rate:g} per second "
        f"(bursts of {buckets.burst}); retry_after {retry_after:g} seconds. The limits are "
        "LAKEGATE_EDGE_RATE_LIMIT_PER_SECOND and LAKEGATE_EDGE_RATE_LIMIT_BURST."
    )


@dataclass(frozen=True)
class RateLimitedCalls:
    """Server middleware: a tool call of a tenant whose bucket is empty is refused with `retry_after`."""

    tenancy: Tenancy
    buckets: TokenBuckets

    async def __call__(self, ctx: ServerRequestContext[Any, Any], call_next: CallNext) -> HandlerResult:
        if ctx.method != "tools/call":
            return await call_next(ctx)
        tenant = self.tenancy.known()
        if tenant is None:  # the tool itself refuses a caller without a tenant
            return await call_next(ctx)
        wait = self.buckets.take(tenant)
        if wait <= 0:
            return await call_next(ctx)
        retry_after = math.ceil(wait * 10) / 10
        note_error_code(RATE_LIMITED)
        return CallToolResult(
            content=[TextContent(type="text", text=refusal(tenant, self.buckets, retry_after))],
            structured_content={"error": RATE_LIMITED, "retry_after": retry_after},
            is_error=True,
        )
