"""Request/reply through `RpcClient` against a FastStream subscriber, as the services answer each other."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass

import pytest
from lakegate.common.broker import create_broker
from lakegate.common.contracts.sources import SourceRef
from lakegate.common.errors import InvalidInput
from lakegate.common.rpc import RpcClient, answers
from lakegate.common.settings import NatsSettings
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter


@dataclass
class Answering:
    """A service answering `lookup` and `refuse`, recording its spans."""

    lookup: str
    refuse: str
    spans: InMemorySpanExporter


@pytest.fixture
async def answering(nats_settings: NatsSettings) -> AsyncIterator[Answering]:
    spans = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(spans))
    broker = create_broker(nats_settings, "answering", tracer_provider=provider)
    prefix = nats_settings.topology.prefix
    lookup, refuse = f"{prefix}.rpc.test.lookup", f"{prefix}.rpc.test.refuse"

    @answers
    async def answer_lookup(request: SourceRef) -> SourceRef:
        return request.model_copy(update={"connection_id": f"{request.connection_id}-seen"})

    @answers
    async def answer_refuse(request: SourceRef) -> SourceRef:
        raise InvalidInput(f"connection {request.connection_id} is not known: register it first")

    broker.subscriber(lookup)(answer_lookup)
    broker.subscriber(refuse)(answer_refuse)
    await broker.start()
    try:
        yield Answering(lookup, refuse, spans)
    finally:
        await broker.stop()


@pytest.fixture
async def rpc(nats_settings: NatsSettings) -> AsyncIterator[RpcClient]:
    broker = create_broker(nats_settings, "asking")
    await broker.connect()
    try:
        yield RpcClient(broker, timeout=10.0)
    finally:
        await broker.stop()


async def test_an_answer_comes_back_as_the_answer_model_and_the_answering_span_joins_the_callers_trace(
    answering: Answering, rpc: RpcClient
) -> None:
    caller = TracerProvider().get_tracer("caller")

    with caller.start_as_current_span("tools/call lookup") as span:
        answer = await rpc.call(answering.lookup, SourceRef(tenant_id="t1", connection_id="src_a"), SourceRef)

    assert answer == SourceRef(tenant_id="t1", connection_id="src_a-seen")
    context = span.get_span_context()
    finished = answering.spans.get_finished_spans()
    assert finished, "the answering service made no span"
    assert {s.context.trace_id for s in finished} == {context.trace_id}
    assert context.span_id in {s.parent.span_id for s in finished if s.parent is not None}


async def test_a_refusal_comes_back_as_the_same_error_with_the_services_message(
    answering: Answering, rpc: RpcClient
) -> None:
    with pytest.raises(InvalidInput, match="connection src_b is not known: register it first"):
        await rpc.call(answering.refuse, SourceRef(tenant_id="t1", connection_id="src_b"), SourceRef)
