"""The core-NATS responder: the caller's trace continues in the handler, and stopping lets requests under way finish."""

from __future__ import annotations

import asyncio
import uuid

import nats
import pytest
from lakegate.common.contracts.rpc import Reply
from lakegate.common.contracts.sources import SourceRef
from lakegate.common.responder import Responder
from lakegate.common.rpc import Encoded, answers
from lakegate.common.settings import NatsSettings
from nats.aio.msg import Msg
from nats.errors import NoRespondersError
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

TRACE_ID, PARENT_ID = 0x0AF7651916CD43DD8448EB211C80319C, 0xB7AD6B7169203331
TRACEPARENT = f"00-{TRACE_ID:032x}-{PARENT_ID:016x}-01"


def _subject() -> str:
    return f"lakegate.test.{uuid.uuid4().hex}.rpc"


async def _ask_once_with_traceparent(
    nats_settings: NatsSettings, responder: Responder, subject: str, request: SourceRef
) -> Msg:
    """Start `responder`, send it `request` under the caller's trace `TRACEPARENT`, stop it, and return the answer."""
    nc = await nats.connect(nats_settings.url)
    try:
        await responder.start(nc)
        answer = await nc.request(
            subject, request.model_dump_json().encode(), timeout=10, headers={"traceparent": TRACEPARENT}
        )
        await responder.stop(timeout=10)
    finally:
        await nc.close()
    return answer


async def test_a_request_carrying_a_traceparent_is_handled_inside_a_span_of_that_trace(
    nats_settings: NatsSettings,
) -> None:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    seen: list[int] = []

    @answers
    async def echo(request: SourceRef) -> SourceRef:
        seen.append(trace.get_current_span().get_span_context().trace_id)
        return request

    subject, responder = _subject(), Responder(provider.get_tracer("test"))
    responder.answer(subject, echo, queue="q", workers=4)
    request = SourceRef(tenant_id="t1", connection_id="src_1")
    answer = await _ask_once_with_traceparent(nats_settings, responder, subject, request)

    assert Reply.model_validate_json(answer.data) == Reply(result=request.model_dump(mode="json"))
    assert seen == [TRACE_ID]
    [span] = exporter.get_finished_spans()
    assert span.name == f"{subject} process"
    assert span.kind == trace.SpanKind.CONSUMER
    assert span.parent is not None
    assert span.parent.span_id == PARENT_ID


async def test_a_request_under_way_when_the_responder_stops_is_answered_and_later_ones_find_no_responder(
    nats_settings: NatsSettings,
) -> None:
    began, release = asyncio.Event(), asyncio.Event()

    @answers
    async def slow(request: SourceRef) -> SourceRef:
        began.set()
        await release.wait()
        return request

    subject, responder = _subject(), Responder(TracerProvider().get_tracer("test"))
    responder.answer(subject, slow, queue="q", workers=2)
    nc = await nats.connect(nats_settings.url)
    try:
        await responder.start(nc)
        request = SourceRef(tenant_id="t1", connection_id="src_1")
        pending = asyncio.create_task(nc.request(subject, request.model_dump_json().encode(), timeout=30))
        await asyncio.wait_for(began.wait(), 10)
        stopping = asyncio.create_task(responder.stop(timeout=30))
        done, _ = await asyncio.wait({stopping}, timeout=0.5)
        assert not done, "stop returned while a request was still being handled"
        release.set()
        await asyncio.wait_for(stopping, 10)
        answer = await pending
        with pytest.raises(NoRespondersError):
            await nc.request(subject, request.model_dump_json().encode(), timeout=5)
    finally:
        await nc.close()

    assert Reply.model_validate_json(answer.data).result == request.model_dump(mode="json")


async def test_without_an_exporter_a_request_makes_no_span_but_its_handler_continues_the_callers_trace(
    nats_settings: NatsSettings,
) -> None:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    seen: list[tuple[int, int]] = []

    @answers
    async def echo(request: SourceRef) -> Encoded[SourceRef]:
        context = trace.get_current_span().get_span_context()
        seen.append((context.trace_id, context.span_id))
        return Encoded(request.model_dump_json().encode())

    subject, responder = _subject(), Responder(provider.get_tracer("test"), traced=False)
    responder.answer(subject, echo, queue="q", workers=4)
    request = SourceRef(tenant_id="t1", connection_id="src_1")
    answer = await _ask_once_with_traceparent(nats_settings, responder, subject, request)

    assert answer.data == b'{"result":' + request.model_dump_json().encode() + b',"error":null}'
    assert not answer.headers  # the request's headers are not sent back
    assert seen == [(TRACE_ID, PARENT_ID)]
    assert exporter.get_finished_spans() == ()
    assert trace.get_current_span().get_span_context().is_valid is False  # the caller's context was detached
