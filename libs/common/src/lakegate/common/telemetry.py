"""OpenTelemetry setup: a tracer provider per service, trace context in NATS headers.

`NatsTelemetryMiddleware` (FastStream) puts the W3C trace context into the headers of every
published message and request and continues it in every subscriber, so one MCP tool call is one
trace across all services: the edge's `tools/call` span, the catalog's request span, the
extractor's consumer span with its source read and staging, the loader's with its warehouse
commit, and the catalog's again when the run is recorded.

The first runtime of a process also installs its provider process-wide, so domain code takes a
tracer with `tracer(__name__)` and needs no provider passed in. Nothing is exported unless an
exporter is configured (`TelemetrySettings`). Without one, a span that starts a trace is not
sampled (`ParentBased(ALWAYS_OFF)`): it still has ids, its context still travels in headers and
log lines, but it records nothing, which made a recorded span per tool call and per message
(~30 µs of CPU each, for nobody) the edge's largest single cost after the HTTP and NATS writes. A
trace a client sent sampled is still recorded and passed on. A service that exports records every
trace it takes part in, even one whose remote caller did not sample it
(`remote_parent_not_sampled=ALWAYS_ON`): an MCP client's own sampling choice, or an edge without an
exporter, does not switch off the deployment's traces. Give every service the same exporter
settings (the local stack, compose and k8s do), or spans arrive whose parents nobody recorded.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from threading import Lock

from lakegate.common.settings import TelemetrySettings
from opentelemetry import trace
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import (
    BatchSpanProcessor,
    ConsoleSpanExporter,
    SimpleSpanProcessor,
    SpanExporter,
    SpanExportResult,
)
from opentelemetry.sdk.trace.sampling import ALWAYS_OFF, ALWAYS_ON, ParentBased


class JsonLinesExporter(SpanExporter):
    """Appends one JSON object per finished span to a file (ids in hex, times in ns since the epoch)."""

    def __init__(self, path: Path, service: str) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self._path, self._service, self._lock = path, service, Lock()

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        lines = [json.dumps(self._line(span), default=str) + "\n" for span in spans]
        with self._lock, self._path.open("a", encoding="utf-8") as out:
            out.writelines(lines)
        return SpanExportResult.SUCCESS

    def _line(self, span: ReadableSpan) -> dict[str, object]:
        context = span.get_span_context()
        return {
            "service": self._service,
            "name": span.name,
            "kind": span.kind.name,
            "trace_id": f"{context.trace_id:032x}" if context else None,
            "span_id": f"{context.span_id:016x}" if context else None,
            "parent_id": f"{span.parent.span_id:016x}" if span.parent else None,
            "start": span.start_time,
            "end": span.end_time,
            "status": span.status.status_code.name,
            "attributes": dict(span.attributes or {}),
        }


def setup_telemetry(service: str, settings: TelemetrySettings) -> TracerProvider:
    """Build the tracer provider of one service, exporting where the settings say."""
    resource = Resource.create({"service.name": f"lakegate-{service}", "service.namespace": "lakegate"})
    chosen = settings.chosen
    # Without an exporter, new traces are not sampled: nothing would read what their spans record.
    # With one, every trace is recorded, also below a caller that did not sample it.
    sampler = (
        ParentBased(ALWAYS_OFF) if chosen == "none" else ParentBased(ALWAYS_ON, remote_parent_not_sampled=ALWAYS_ON)
    )
    provider = TracerProvider(resource=resource, sampler=sampler)
    if chosen == "console":
        provider.add_span_processor(BatchSpanProcessor(ConsoleSpanExporter()))
    elif chosen == "otlp":
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

        endpoint = f"{settings.endpoint.rstrip('/')}/v1/traces" if settings.endpoint else None
        provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter(endpoint=endpoint)))
    elif chosen == "file":
        if not settings.file:
            raise ValueError("LAKEGATE_OTEL_EXPORTER=file needs LAKEGATE_OTEL_FILE, the JSON-lines file to write")
        path = Path(settings.file.replace("{service}", service))
        # Written as each span ends, so a reader sees a finished call's spans at once.
        provider.add_span_processor(SimpleSpanProcessor(JsonLinesExporter(path, service)))
    if isinstance(trace.get_tracer_provider(), trace.ProxyTracerProvider):
        trace.set_tracer_provider(provider)
    return provider


def tracer(name: str) -> trace.Tracer:
    """A tracer of the process-wide provider (a no-op one until a runtime installed it)."""
    return trace.get_tracer(name)
