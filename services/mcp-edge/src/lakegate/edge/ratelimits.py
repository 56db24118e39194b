"""Per-tenant rate limits on tool calls: a token bucket per tenant, refused calls say when to retry.

Each tenant's bucket holds up to `LAKEGATE_EDGE_RATE_LIMIT_BURST` calls and refills at
`LAKEGATE_EDGE_RATE_LIMIT_PER_SECOND`; a tool call takes one token. A call that finds the bucket
empty is not run: it is a tool error result (`isError`) whose text and structured content carry
`retry_after`, the seconds until a token is back, and the audit records it as `rate_limited`.
One tenant's burst never takes from another's bucket. The buckets live in one edge process (with
`LAKEGATE_EDGE_PROCESSES` > 1 or several replicas each has its own), which bounds what one caller
can push into the services behind it without any shared state.
"""

from __future__ import annotations

import math
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from lakegate.edge.audit import note_error_code
from lakegate.edge.tenancy import Tenancy
from mcp.server.context import CallNext, HandlerResult, ServerRequestContext
from mcp_types import CallToolResult, TextContent

#: Buckets kept at once; the least recently used tenant's is dropped past this (it refills anyway).
MAX_BUCKETS = 10_000
RATE_LIMITED = "rate_limited"


@dataclass
class _Bucket:
    tokens: float
    at: float


@dataclass
class TokenBuckets:
    """One token bucket per key: `burst` tokens at most, `rate` tokens back per second."""

    rate: float
    burst: int
    clock: Callable[[], float] = time.monotonic
    _buckets: OrderedDict[str, _Bucket] = field(default_factory=OrderedDict, init=False, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, init=False, repr=False)

    def take(self, key: str) -> float:
        """Take one token for `key`: 0.0 when it was there, else the seconds until one will be."""
        now = self.clock()
        with self._lock:
            bucket = self._buckets.pop(key, None) or _Bucket(tokens=float(self.burst), at=now)
            bucket.tokens = min(float(self.burst), bucket.tokens + (now - bucket.at) * self.rate)
            bucket.at = now
            self._buckets[key] = bucket
            if len(self._buckets) > MAX_BUCKETS:
                self._buckets.popitem(last=False)
            if bucket.tokens >= 1.0:
                bucket.tokens -= 1.0
                return 0.0
            return (1.0 - bucket.tokens) / self.rate


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
