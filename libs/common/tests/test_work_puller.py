"""A consumer with several workers works on that many messages at once and takes no message it has no worker for."""

from __future__ import annotations

import asyncio

from lakegate.common.delivery import Delivery, Subscription, Work, parsed, subscribe
from lakegate.common.errors import LakegateError
from lakegate.common.service import runtime, started
from lakegate.common.settings import NatsSettings, ServiceSettings
from pydantic import BaseModel


class Job(BaseModel):
    name: str


async def test_two_workers_take_two_messages_at_once_and_leave_the_third_in_the_stream_until_one_is_free(
    nats_settings: NatsSettings,
) -> None:
    settings = ServiceSettings(nats=nats_settings)
    rt = runtime("probe", settings)
    topology = rt.topology
    running: list[str] = []
    done: list[str] = []
    two_running, release, all_done = asyncio.Event(), asyncio.Event(), asyncio.Event()

    async def run(job: Job, _: Delivery) -> None:
        running.append(job.name)
        if len(running) == 2:
            two_running.set()
        await release.wait()
        done.append(job.name)
        if len(done) == 3:
            all_done.set()

    async def fail(job: Job, error: LakegateError) -> None:
        raise AssertionError(f"{job.name} failed: {error}")

    work = Work(parse=parsed(Job), run=run, fail=fail, doing=lambda job: job.name)
    durable = topology.durable("probe")
    stream = topology.cmd_stream.name
    subscribe(rt, [Subscription(topology.cmd_extract, stream, durable, "probe", "jobs", work, workers=2)])

    async with started(rt, settings):
        js = rt.broker.connection.jetstream()
        for name in ("a", "b", "c"):
            await js.publish(topology.cmd_extract, Job(name=name).model_dump_json().encode(), stream=stream)

        await asyncio.wait_for(two_running.wait(), 20)
        info = await js.consumer_info(stream, durable)
        assert sorted(running) == ["a", "b"]
        assert (info.num_ack_pending, info.num_pending) == (2, 1)  # "c" waits in the stream, for any replica

        release.set()

        await asyncio.wait_for(all_done.wait(), 20)
        assert sorted(done) == ["a", "b", "c"]
