"""Following a run while its extraction is still staging parts: what ends, or abandons, an overlapped load.

A load that starts on `Streaming` reads the attempt's parts as they arrive (`Follower.follow`) and
must learn two things it cannot know up front: how many parts the attempt staged (its `Extracted`)
and whether those parts still matter. `RunSteps` reads the run's steps stored after the attempt's
`Streaming`, on a consumer of the run stream of its own, and tells a `PartsEnd`:

    extracted, same location    → finish: the part count (the load commits once it has read them all)
    extracted, another location → abandon: another attempt's parts are the run's
    extracting / streaming of another attempt → abandon: the extraction started over
    failed                      → abandon: the run failed; nothing is committed
    loaded                      → abandon: an earlier delivery already committed the run
    loading of a load on `extracted` → abandon: no loader followed the parts in time, and one took the
                                  whole run on `extracted` instead (the message id tells the two apart)

An abandoned load commits nothing and publishes nothing: whoever took the run over reports it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass

from lakegate.common.contracts.runs import Extracted, Extracting, Streaming
from lakegate.common.errors import TerminalError, Unavailable
from lakegate.common.staging import PartsEnd, stop_pulling
from lakegate.common.subjects import STREAMING_STEP, RunStep, Topology
from nats.aio.msg import Msg
from nats.js import JetStreamContext
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy
from pydantic import ValidationError

log = logging.getLogger(__name__)


def loading_id(run_id: str, attempt: str = "") -> str:
    """The message id of a `loading` step: of a load on `extracted`, or of the load that follows `attempt`."""
    return f"{run_id}.{RunStep.LOADING}" + (f".{attempt}" if attempt else "")


class Abandoned(TerminalError):
    """The followed attempt's parts no longer matter; the load stops without a commit or a step."""

    code = "abandoned"


@dataclass
class RunSteps:
    """What the run's steps after one `Streaming` said: its `Extracted`, once it came."""

    streaming: Streaming
    end: PartsEnd
    extracted: Extracted | None = None

    def read(self, subject: str, data: bytes, message_id: str | None = None) -> None:
        """Apply one step of the run (with its `Nats-Msg-Id`) to the end of the followed attempt."""
        step, run, mine = subject.rsplit(".", 1)[-1], self.streaming.run_id, self.streaming.location
        if step == RunStep.LOADING and message_id == loading_id(run):
            self.end.abandon(Abandoned(f"run {run} is loaded on its `extracted` step instead"))
            return
        try:
            if step == RunStep.EXTRACTED:
                extracted = Extracted.model_validate_json(data)
                if extracted.staged.location != mine or extracted.ranges or extracted.staged.store != "jetstream":
                    self.end.abandon(Abandoned(f"run {run} was extracted at {extracted.staged.location}, not {mine}"))
                    return
                self.extracted = extracted
                self.end.finish(extracted.staged.parts)
            elif step == RunStep.EXTRACTING:
                attempt = Extracting.model_validate_json(data).attempt
                if attempt != self.streaming.attempt:
                    self.end.abandon(Abandoned(f"run {run} is extracted again as attempt {attempt}"))
            elif step == STREAMING_STEP:
                location = Streaming.model_validate_json(data).location
                if location != mine:
                    self.end.abandon(Abandoned(f"run {run} now stages its parts at {location}"))
            elif step == RunStep.FAILED:
                self.end.abandon(Abandoned(f"run {run} failed while its parts were being loaded"))
            elif step == RunStep.LOADED:
                self.end.abandon(Abandoned(f"run {run} was already loaded"))
        except ValidationError as exc:
            self.end.abandon(TerminalError(f"the {step} step of run {run} cannot be read ({exc.error_count()} errors)"))


@contextlib.asynccontextmanager
async def following(
    js: JetStreamContext, topology: Topology, streaming: Streaming, after: int, idle: float
) -> AsyncIterator[RunSteps]:
    """The run's steps stored after stream sequence `after` (the `Streaming`'s), read while the body runs;
    its parts are given up on (transiently) after `idle` seconds without a part or an end."""
    steps = RunSteps(streaming, PartsEnd(idle))
    sub = await js.pull_subscribe(
        f"{topology.prefix}.run.{streaming.run_id}.*",
        stream=topology.run_stream.name,
        config=ConsumerConfig(
            ack_policy=AckPolicy.NONE,
            deliver_policy=DeliverPolicy.BY_START_SEQUENCE,
            opt_start_seq=after + 1,
            inactive_threshold=60.0,
        ),
    )

    async def read() -> None:
        while True:
            try:
                messages: list[Msg] = await sub.fetch(16, timeout=5)
            except TimeoutError:
                continue
            except Exception as exc:  # NATS went away: the load is retried from its first part
                steps.end.abandon(Unavailable(f"the steps of run {streaming.run_id} cannot be read ({exc}); retrying"))
                return
            for message in messages:
                steps.read(message.subject, message.data, (message.headers or {}).get("Nats-Msg-Id"))

    reader = asyncio.create_task(read(), name=f"steps of run {streaming.run_id}")
    try:
        yield steps
    finally:
        await stop_pulling(reader, sub)
