"""Spans are recorded where an exporter takes them; without one, trace context still travels."""

from __future__ import annotations

import json
from pathlib import Path

from lakegate.common.settings import TelemetrySettings
from lakegate.common.telemetry import setup_telemetry
from opentelemetry.trace import NonRecordingSpan, SpanContext, TraceFlags, set_span_in_context


def test_without_an_exporter_a_new_trace_records_nothing_but_has_ids_to_pass_on() -> None:
    tracer = setup_telemetry("quiet", TelemetrySettings(exporter="none")).get_tracer("t")

    with tracer.start_as_current_span("tools/call x") as span:
        context = span.get_span_context()
        recording = span.is_recording()

    assert not recording
    assert context.is_valid
    assert not context.trace_flags.sampled


def test_without_an_exporter_a_trace_the_caller_sampled_is_still_recorded_and_passed_on_sampled() -> None:
    tracer = setup_telemetry("quiet", TelemetrySettings(exporter="none")).get_tracer("t")
    parent = SpanContext(trace_id=0x1234, span_id=0x99, is_remote=True, trace_flags=TraceFlags(TraceFlags.SAMPLED))

    with tracer.start_as_current_span("tools/call x", context=set_span_in_context(NonRecordingSpan(parent))) as span:
        recording = span.is_recording()

    assert recording
    assert span.get_span_context().trace_id == 0x1234
    assert span.get_span_context().trace_flags.sampled


def test_with_an_exporter_every_new_trace_is_recorded_and_exported(tmp_path: Path) -> None:
    out = tmp_path / "{service}.jsonl"
    tracer = setup_telemetry("loud", TelemetrySettings(exporter="file", file=str(out))).get_tracer("t")

    with tracer.start_as_current_span("tools/call x"):
        pass

    [line] = (tmp_path / "loud.jsonl").read_text().splitlines()
    assert json.loads(line)["name"] == "tools/call x"


def test_with_an_exporter_a_trace_a_remote_caller_did_not_sample_is_recorded_in_the_callers_trace(
    tmp_path: Path,
) -> None:
    out = tmp_path / "{service}.jsonl"
    tracer = setup_telemetry("loud", TelemetrySettings(exporter="file", file=str(out))).get_tracer("t")
    parent = SpanContext(trace_id=0x5678, span_id=0x42, is_remote=True, trace_flags=TraceFlags(TraceFlags.DEFAULT))

    with tracer.start_as_current_span("tools/call x", context=set_span_in_context(NonRecordingSpan(parent))) as span:
        recording = span.is_recording()

    assert recording
    assert span.get_span_context().trace_id == 0x5678
    assert span.get_span_context().trace_flags.sampled
