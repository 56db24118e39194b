"""The core-NATS responder: the caller's trace continues in the handler, workers are bounded, stopping drains.

Each behaviour holds on both ways of taking requests: straight from nats-py's parser (`direct`, the
default) and through its public subscription callbacks.
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import AsyncIterator

import nats
import pytest
from lakegate.common.contracts.rpc import Reply
from lakegate.common.contracts.sources import SourceRef
from lakegate.common.responder import Handler, Responder, parent_context
from lakegate.common.rpc import Encoded, answers
from lakegate.common.settings import NatsSettings
from nats.aio.client import Client as NatsClient
from nats.aio.msg import Msg
from nats.errors import NoRespondersError
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

TRACE_ID, PARENT_ID = 0x0AF7651916CD43DD8448EB211C80319C, 0xB7AD6B7169203331
TRACEPARENT = f"00-{TRACE_ID:032x}-{PARENT_ID:016x}-01"


@pytest.fixture(params=[True, False], ids=["direct", "callbacks"])
def direct(request: pytest.FixtureRequest) -> bool:
    return bool(request.param)


def _subject() -> str:
    return f"lakegate.test.{uuid.uuid4().hex}.rpc"


@contextlib.asynccontextmanager
async def _responding(
    nats_settings: NatsSettings, handler: Handler, *, direct: bool
) -> AsyncIterator[tuple[str, Responder, NatsClient]]:
    """A responder answering `handler` (2 workers) on a fresh connection: its subject, itself, the connection."""
    subject, responder = _subject(), Responder(TracerProvider().get_tracer("test"), direct=direct)
    responder.answer(subject, handler, queue="q", workers=2)
    nc = await nats.connect(nats_settings.url)
    try:
        await responder.start(nc)
        yield subject, responder, nc
    finally:
        await nc.close()


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
    nats_settings: NatsSettings, direct: bool
) -> None:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    seen: list[int] = []

    @answers
    async def echo(request: SourceRef) -> SourceRef:
        seen.append(trace.get_current_span().get_span_context().trace_id)
        return request

    subject, responder = _subject(), Responder(provider.get_tracer("test"), direct=direct)
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
    nats_settings: NatsSettings, direct: bool
) -> None:
    began, release = asyncio.Event(), asyncio.Event()

    @answers
    async def slow(request: SourceRef) -> SourceRef:
        began.set()
        await release.wait()
        return request

    async with _responding(nats_settings, slow, direct=direct) as (subject, responder, nc):
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

    assert Reply.model_validate_json(answer.data).result == request.model_dump(mode="json")


async def test_without_an_exporter_a_request_makes_no_span_but_its_handler_continues_the_callers_trace(
    nats_settings: NatsSettings, direct: bool
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

    subject, responder = _subject(), Responder(provider.get_tracer("test"), traced=False, direct=direct)
    responder.answer(subject, echo, queue="q", workers=4)
    request = SourceRef(tenant_id="t1", connection_id="src_1")
    answer = await _ask_once_with_traceparent(nats_settings, responder, subject, request)

    assert answer.data == b'{"result":' + request.model_dump_json().encode() + b',"error":null}'
    assert not answer.headers  # the request's headers are not sent back
    assert seen == [(TRACE_ID, PARENT_ID)]
    assert exporter.get_finished_spans() == ()
    assert trace.get_current_span().get_span_context().is_valid is False  # the caller's context was detached


async def test_no_more_than_workers_requests_of_a_subject_run_at_once_and_the_rest_are_answered_after(
    nats_settings: NatsSettings, direct: bool
) -> None:
    running, most, release, two = 0, 0, asyncio.Event(), asyncio.Event()

    @answers
    async def held(request: SourceRef) -> SourceRef:
        nonlocal running, most
        running += 1
        most = max(most, running)
        if running == 2:
            two.set()
        await release.wait()
        running -= 1
        return request

    subject, responder = _subject(), Responder(TracerProvider().get_tracer("test"), direct=direct)
    responder.answer(subject, held, queue="q", workers=2)
    asker, answerer = await nats.connect(nats_settings.url), await nats.connect(nats_settings.url)
    try:
        await responder.start(answerer)
        await answerer.flush()  # subscribed at the server before the other connection asks
        requests = [SourceRef(tenant_id="t1", connection_id=f"src_{index}") for index in range(6)]
        asks = [
            asyncio.create_task(asker.request(subject, request.model_dump_json().encode(), timeout=30))
            for request in requests
        ]
        await asyncio.wait_for(two.wait(), 10)
        # Both round trips done: the server has sent all six requests to the answering connection.
        await asker.flush()
        await answerer.flush()
        assert running == 2
        release.set()
        answers_ = await asyncio.gather(*asks)
        await responder.stop(timeout=10)
    finally:
        await asker.close()
        await answerer.close()

    assert most == 2
    assert [Reply.model_validate_json(answer.data).result for answer in answers_] == [
        request.model_dump(mode="json") for request in requests
    ]


async def test_stop_cancels_the_requests_that_outlast_its_timeout_and_returns_only_once_they_have_ended(
    nats_settings: NatsSettings, direct: bool
) -> None:
    began, never = asyncio.Event(), asyncio.Event()
    ended: list[str] = []

    @answers
    async def stuck(request: SourceRef) -> SourceRef:
        began.set()
        try:
            await never.wait()
        except asyncio.CancelledError:
            await asyncio.sleep(0)  # cleaning up takes a turn of the loop
            ended.append(request.connection_id)
            raise
        return request

    async with _responding(nats_settings, stuck, direct=direct) as (subject, responder, nc):
        request = SourceRef(tenant_id="t1", connection_id="src_stuck")
        await nc.publish(subject, request.model_dump_json().encode(), reply=nc.new_inbox())
        await asyncio.wait_for(began.wait(), 10)
        await responder.stop(timeout=0.1)
        assert ended == ["src_stuck"]


async def test_a_request_holding_an_escaped_nul_is_refused_naming_where_it_is(
    nats_settings: NatsSettings, direct: bool
) -> None:
    @answers
    async def echo(request: SourceRef) -> SourceRef:
        return request

    async with _responding(nats_settings, echo, direct=direct) as (subject, responder, nc):
        answer = await nc.request(subject, b'{"tenant_id":"t1","connection_id":"src_\\u0000"}', timeout=10)
        await responder.stop(timeout=10)

    reply = Reply.model_validate_json(answer.data)
    assert reply.error is not None
    assert reply.error.code == "invalid_input"
    assert "connection_id" in reply.error.message


@pytest.mark.parametrize(
    "traceparent",
    [
        TRACEPARENT,
        f"00-{TRACE_ID:032x}-{PARENT_ID:016x}-00",
        f"00-{0:032x}-{PARENT_ID:016x}-01",
        f"00-{TRACE_ID:032x}-{0:016x}-01",
        f"00-{TRACE_ID:032x}-{PARENT_ID:016x}-01-extra",
        f"01-{TRACE_ID:032x}-{PARENT_ID:016x}-01-extra",
        f"ff-{TRACE_ID:032x}-{PARENT_ID:016x}-01",
        f"00-{TRACE_ID:032X}-{PARENT_ID:016x}-01",
        f"00-+{TRACE_ID:031x}-{PARENT_ID:016x}-01",
        "00-not-a-traceparent",
        "",
    ],
)
@pytest.mark.parametrize("tracestate", [None, "vendor=value,other=1"])
def test_the_callers_context_is_read_from_its_headers_as_the_w3c_propagator_reads_it(
    traceparent: str, tracestate: str | None
) -> None:
    carrier = {"traceparent": traceparent} | ({} if tracestate is None else {"tracestate": tracestate})
    expected = trace.get_current_span(TraceContextTextMapPropagator().extract(carrier)).get_span_context()
    context = parent_context(traceparent, tracestate)
    assert context is not None
    assert trace.get_current_span(context).get_span_context() == expected
