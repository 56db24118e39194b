"""Prometheus metrics of one service, served as `/metrics` on its health port.

Every service has the same families (a family a service never touches stays empty), each with a
`service` label, so one dashboard (`docs/grafana/lakegate.json`) reads them all:

| metric | labels | who |
|---|---|---|
| `lakegate_runs_total` | status, mode | catalog: runs that reached a status |
| `lakegate_rows_total`, `lakegate_bytes_total` | step (extracted, loaded, synced), mode | extractor, loader, catalog |
| `lakegate_phase_seconds` | phase (extract, load, commit) | extractor, loader |
| `lakegate_deliveries_total` | consumer, outcome (done, retried, terminal, gave_up, ...) | every JetStream consumer |
| `lakegate_redeliveries_total` | consumer | deliveries after the first |
| `lakegate_delivery_seconds` | consumer | how long handling one delivery took, whatever its outcome |
| `lakegate_consumer_pending_messages`, `..._ack_pending_messages` | consumer | consumer lag, read at scrape |
| `lakegate_tool_call_seconds` | tool, outcome (ok, error) | edge |
| `lakegate_tool_errors_total` | tool, code | edge |
| `lakegate_query_seconds` | kind (warehouse, source) | loader, extractor |
| `lakegate_nats_reconnects_total`, `lakegate_nats_disconnects_total` | | every service |

A registry per service (not the process-wide default), so tests that run several services in one
process keep their figures apart.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

#: The Content-Type of `/metrics`.
CONTENT_TYPE = CONTENT_TYPE_LATEST

_SECONDS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 900.0)


class ServiceMetrics:
    """The metric families of one service, with helpers that fill in its `service` label."""

    def __init__(self, service: str) -> None:
        self.service = service
        self.registry = CollectorRegistry()
        r = self.registry

        def counter(name: str, doc: str, *labels: str) -> Counter:
            return Counter(name, doc, ["service", *labels], registry=r)

        def histogram(name: str, doc: str, *labels: str) -> Histogram:
            return Histogram(name, doc, ["service", *labels], buckets=_SECONDS, registry=r)

        def gauge(name: str, doc: str, *labels: str) -> Gauge:
            return Gauge(name, doc, ["service", *labels], registry=r)

        self._runs = counter("lakegate_runs", "Runs that reached each status.", "status", "mode")
        self._rows = counter("lakegate_rows", "Rows moved, by step.", "step", "mode")
        self._bytes = counter("lakegate_bytes", "Bytes moved, by step.", "step", "mode")
        self._phase = histogram("lakegate_phase_seconds", "How long each phase of a run took.", "phase")
        self._deliveries = counter("lakegate_deliveries", "JetStream deliveries settled.", "consumer", "outcome")
        self._redeliveries = counter("lakegate_redeliveries", "Deliveries after the first.", "consumer")
        self._delivery_seconds = histogram("lakegate_delivery_seconds", "Handling one delivery.", "consumer")
        self._pending = gauge("lakegate_consumer_pending_messages", "Messages not yet delivered.", "consumer")
        self._ack_pending = gauge("lakegate_consumer_ack_pending_messages", "Delivered, not acked.", "consumer")
        self._tool_calls = histogram("lakegate_tool_call_seconds", "MCP tool calls.", "tool", "outcome")
        self._tool_errors = counter("lakegate_tool_errors", "MCP tool calls that failed, by code.", "tool", "code")
        self._queries = histogram("lakegate_query_seconds", "SQL queries answered, by kind.", "kind")
        self._reconnects = counter("lakegate_nats_reconnects", "Reconnections to NATS.")
        self._disconnects = counter("lakegate_nats_disconnects", "Disconnections from NATS.")

    def run_reached(self, status: str, mode: str) -> None:
        self._runs.labels(self.service, status, mode).inc()

    def moved(self, step: str, mode: str, rows: int, size: int) -> None:
        """Rows and bytes a step moved (extracted, loaded, or a whole sync)."""
        self._rows.labels(self.service, step, mode).inc(rows)
        self._bytes.labels(self.service, step, mode).inc(size)

    @contextlib.contextmanager
    def phase(self, name: str) -> Iterator[None]:
        """Time the body as one phase of a run (observed whether or not it raised)."""
        began = time.monotonic()
        try:
            yield
        finally:
            self._phase.labels(self.service, name).observe(time.monotonic() - began)

    def delivered(self, consumer: str, outcome: str, attempt: int, seconds: float) -> None:
        self._deliveries.labels(self.service, consumer, outcome).inc()
        self._delivery_seconds.labels(self.service, consumer).observe(seconds)
        if attempt > 1:
            self._redeliveries.labels(self.service, consumer).inc()

    def lag(self, consumer: str, pending: int, ack_pending: int) -> None:
        self._pending.labels(self.service, consumer).set(pending)
        self._ack_pending.labels(self.service, consumer).set(ack_pending)

    def tool_call(self, tool: str, seconds: float, error_code: str | None) -> None:
        self._tool_calls.labels(self.service, tool, "ok" if error_code is None else "error").observe(seconds)
        if error_code is not None:
            self._tool_errors.labels(self.service, tool, error_code).inc()

    def query(self, kind: str, seconds: float) -> None:
        self._queries.labels(self.service, kind).observe(seconds)

    async def reconnected(self) -> None:
        self._reconnects.labels(self.service).inc()

    async def disconnected(self) -> None:
        self._disconnects.labels(self.service).inc()

    def render(self) -> bytes:
        """The registry in the Prometheus text format."""
        return generate_latest(self.registry)
