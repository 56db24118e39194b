"""OpenTelemetry setup: a tracer and meter provider per service, trace context in NATS headers.

`NatsTelemetryMiddleware` (FastStream) puts the W3C trace context into the headers of every
published message and request and continues it in every subscriber, so one MCP tool call is one
trace across all services.
"""

from __future__ import annotations

from lakegate.common.settings import TelemetrySettings
from opentelemetry import metrics, trace
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import (
    ConsoleMetricExporter,
    MetricReader,
    PeriodicExportingMetricReader,
)
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, ConsoleSpanExporter, SpanExporter


def _exporters(settings: TelemetrySettings) -> tuple[SpanExporter | None, MetricReader | None]:
    if settings.exporter == "console":
        return ConsoleSpanExporter(), PeriodicExportingMetricReader(ConsoleMetricExporter(), 60_000)
    if settings.exporter == "otlp":
        # The OTLP exporter is an optional extra: `pip install opentelemetry-exporter-otlp-proto-http`.
        from opentelemetry.exporter.otlp.proto.http.metric_exporter import OTLPMetricExporter
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

        base = settings.endpoint.rstrip("/") if settings.endpoint else None
        spans = OTLPSpanExporter(endpoint=f"{base}/v1/traces" if base else None)
        reader = PeriodicExportingMetricReader(
            OTLPMetricExporter(endpoint=f"{base}/v1/metrics" if base else None), 30_000
        )
        return spans, reader
    return None, None


def setup_telemetry(service: str, settings: TelemetrySettings) -> tuple[TracerProvider, MeterProvider]:
    """Build the providers for one service."""
    resource = Resource.create({"service.name": f"lakegate-{service}", "service.namespace": "lakegate"})
    span_exporter, metric_reader = _exporters(settings)
    tracer_provider = TracerProvider(resource=resource)
    if span_exporter is not None:
        tracer_provider.add_span_processor(BatchSpanProcessor(span_exporter))
    meter_provider = MeterProvider(resource=resource, metric_readers=[metric_reader] if metric_reader else [])
    return tracer_provider, meter_provider


def make_global(tracer_provider: TracerProvider, meter_provider: MeterProvider) -> None:
    """Install the providers process-wide (once, in a service's `__main__`), for libraries that use them."""
    trace.set_tracer_provider(tracer_provider)
    metrics.set_meter_provider(meter_provider)
