"""Request/reply through `RpcClient`: against a FastStream subscriber, as the services answer each other, and
against plain NATS subscribers that answer late, never, or only after a while."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path

import nats
import pytest
from faststream.nats import NatsBroker
from lakegate.common.broker import create_broker
from lakegate.common.contracts.explore import QuerySource
from lakegate.common.contracts.rpc import CancelCall, Reply
from lakegate.common.contracts.sources import SourceRef
from lakegate.common.errors import InvalidInput, Unavailable
from lakegate.common.rpc import RpcClient, answers
from lakegate.common.settings import NatsSettings
from lakegate.devstack.nats_server import NatsServer
from lakegate.devstack.ports import free_port
from nats.aio.client import Client as Nats
from nats.aio.msg import Msg
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


@pytest.fixture
async def nc(nats_settings: NatsSettings) -> AsyncIterator[Nats]:
    """A plain NATS connection, to answer (or not) the way a test needs."""
    connection = await nats.connect(nats_settings.url)
    try:
        yield connection
    finally:
        await connection.close()


def _echo(nc: Nats) -> Callable[[Msg], Awaitable[None]]:
    async def answer(msg: Msg) -> None:
        request = SourceRef.model_validate_json(msg.data)
        await nc.publish(msg.reply, Reply(result=request.model_dump(mode="json")).model_dump_json().encode())

    return answer


async def test_concurrent_calls_each_get_their_own_answer_with_the_callers_trace_context(
    nats_settings: NatsSettings, nc: Nats, rpc: RpcClient
) -> None:
    subject = f"{nats_settings.topology.prefix}.rpc.test.echo"
    parents: list[str] = []

    async def answer(msg: Msg) -> None:
        parents.append((msg.headers or {}).get("traceparent", ""))
        await _echo(nc)(msg)

    await nc.subscribe(subject, cb=answer)
    await nc.flush()
    caller = TracerProvider().get_tracer("caller")
    sent: list[str] = []

    async def ask(n: int) -> SourceRef:
        with caller.start_as_current_span(f"call {n}") as span:
            context = span.get_span_context()
            sent.append(f"00-{context.trace_id:032x}-{context.span_id:016x}-{context.trace_flags:02x}")
            return await rpc.call(subject, SourceRef(tenant_id="t1", connection_id=f"src_{n}"), SourceRef)

    answers_ = await asyncio.gather(*(ask(n) for n in range(50)))

    assert [a.connection_id for a in answers_] == [f"src_{n}" for n in range(50)]
    assert sorted(parents) == sorted(sent)
    assert len(set(sent)) == 50


async def test_a_call_nobody_answers_yet_waits_for_a_replica_that_starts_meanwhile(
    nats_settings: NatsSettings, nc: Nats, rpc: RpcClient
) -> None:
    subject = f"{nats_settings.topology.prefix}.rpc.test.late"
    call = asyncio.ensure_future(rpc.call(subject, SourceRef(tenant_id="t1", connection_id="src_a"), SourceRef))
    await asyncio.sleep(0.1)  # the first tries find no responder
    assert not call.done()
    await nc.subscribe(subject, cb=_echo(nc))

    assert (await asyncio.wait_for(call, 10)).connection_id == "src_a"


async def test_a_call_nobody_ever_answers_is_unavailable_naming_the_service(
    nats_settings: NatsSettings, rpc: RpcClient
) -> None:
    subject = f"{nats_settings.topology.prefix}.rpc.nothing.here"
    with pytest.raises(Unavailable, match=f"no nothing service is running to answer {subject}; start it"):
        await rpc.call(subject, SourceRef(tenant_id="t1", connection_id="src_a"), SourceRef)


async def test_a_call_answered_too_late_is_unavailable_and_the_late_answer_reaches_no_later_call(
    nats_settings: NatsSettings, nc: Nats, rpc: RpcClient
) -> None:
    subject = f"{nats_settings.topology.prefix}.rpc.slow.echo"
    held: list[Msg] = []
    first = asyncio.Event()

    async def answer(msg: Msg) -> None:
        if not held:
            held.append(msg)  # the first request is answered only after its caller gave up
            first.set()
            return
        await _echo(nc)(msg)

    await nc.subscribe(subject, cb=answer)
    await nc.flush()

    with pytest.raises(Unavailable, match=r"the slow service did not answer within 0\.3s; retry shortly"):
        await rpc.call(subject, SourceRef(tenant_id="t1", connection_id="src_late"), SourceRef, timeout=0.3)
    await first.wait()
    second = asyncio.ensure_future(rpc.call(subject, SourceRef(tenant_id="t1", connection_id="src_b"), SourceRef))
    await _echo(nc)(held[0])  # the late answer to the first call

    assert (await asyncio.wait_for(second, 10)).connection_id == "src_b"


async def test_a_cancelled_call_tells_the_service_to_stop_and_the_next_call_is_answered(
    nats_settings: NatsSettings, nc: Nats, rpc: RpcClient
) -> None:
    prefix = nats_settings.topology.prefix
    subject, cancels = f"{prefix}.rpc.test.stoppable", f"{prefix}.test.cancel"
    taken, cancelled = asyncio.Event(), asyncio.get_running_loop().create_future()
    held: list[Msg] = []

    async def answer(msg: Msg) -> None:
        if not held:
            held.append(msg)
            taken.set()
            return
        await _echo(nc)(msg)

    async def hear_cancel(msg: Msg) -> None:
        cancelled.set_result(CancelCall.model_validate_json(msg.data))

    await nc.subscribe(subject, cb=answer)
    await nc.subscribe(cancels, cb=hear_cancel)
    await nc.flush()
    request = QuerySource(tenant_id="t1", connection_id="src_a", sql="SELECT pg_sleep(60)", call_id="call-7")
    call = asyncio.ensure_future(rpc.call(subject, request, SourceRef, cancel_subject=cancels))
    await asyncio.wait_for(taken.wait(), 10)
    call.cancel()

    with pytest.raises(asyncio.CancelledError):
        await call
    assert (await asyncio.wait_for(cancelled, 10)).call_id == "call-7"
    answer_ = await rpc.call(subject, SourceRef(tenant_id="t1", connection_id="src_next"), SourceRef)
    assert answer_.connection_id == "src_next"


async def test_calls_are_answered_across_a_restart_of_the_nats_server_including_one_made_while_it_was_down(
    tmp_path: Path,
) -> None:
    server = NatsServer(tmp_path / "nats", free_port())
    server.start()
    subject = "trestart.rpc.test.echo"
    gone = asyncio.Event()

    async def disconnected() -> None:
        gone.set()

    # What `create_broker` makes, plus a way to know when the client has seen the server go.
    broker = NatsBroker(server.url, max_reconnect_attempts=-1, reconnect_time_wait=1, disconnected_cb=disconnected)
    answering = await nats.connect(server.url, max_reconnect_attempts=-1, reconnect_time_wait=0.2)
    try:
        await answering.subscribe(subject, cb=_echo(answering))
        await answering.flush()
        await broker.connect()
        rpc = RpcClient(broker, timeout=20.0)
        before = await rpc.call(subject, SourceRef(tenant_id="t1", connection_id="src_before"), SourceRef)
        server.kill()
        await asyncio.wait_for(gone.wait(), 20)
        # Asked while the client knows the server is away: nats-py holds the request until it is back.
        during = asyncio.ensure_future(
            rpc.call(subject, SourceRef(tenant_id="t1", connection_id="src_during"), SourceRef)
        )
        server.start()

        assert before.connection_id == "src_before"
        assert (await asyncio.wait_for(during, 20)).connection_id == "src_during"
        after = await rpc.call(subject, SourceRef(tenant_id="t1", connection_id="src_after"), SourceRef)
        assert after.connection_id == "src_after"
    finally:
        await broker.stop()
        await answering.close()
        server.stop()
