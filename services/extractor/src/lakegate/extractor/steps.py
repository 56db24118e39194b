"""What the extractor tells the rest of lakegate about a run: run steps, progress, and whether a run is done.

Run steps go to the RUN stream with a message id (`<run_id>.<step>[.<suffix>]`), so publishing one
twice (a retry after a lost acknowledgement) stores it once. Progress goes out on core NATS and is
lossy by design.
"""

from __future__ import annotations

import contextlib

from lakegate.common.contracts.runs import ErrorInfo, Failed, Progress, Streaming
from lakegate.common.errors import LakegateError
from lakegate.common.service import Runtime
from lakegate.common.subjects import STREAMING_STEP, RunStep
from nats.js.errors import NotFoundError
from pydantic import BaseModel


class RunSteps:
    """Publishes the extractor's run steps and progress, and reads back what the run stream holds."""

    def __init__(self, rt: Runtime) -> None:
        self._rt = rt

    async def publish(self, run_id: str, message: BaseModel, step: RunStep, *, suffix: str = "") -> None:
        """A run step on the RUN stream; a repeat with the same step and suffix is stored once."""
        message_id = f"{run_id}.{step.value}" + (f".{suffix}" if suffix else "")
        await self._rt.broker.publish(
            message,
            self._rt.topology.run_step(run_id, step),
            headers={"Nats-Msg-Id": message_id},
            stream=self._rt.topology.run_stream.name,
        )

    async def streaming(self, streaming: Streaming) -> None:
        """Tell the loader an attempt's parts are coming, before the first of them: it may load while they do."""
        await self._rt.broker.publish(
            streaming,
            self._rt.topology.run_streaming(streaming.run_id),
            headers={"Nats-Msg-Id": f"{streaming.run_id}.{STREAMING_STEP}.{streaming.attempt}"},
            stream=self._rt.topology.run_stream.name,
        )

    async def failed(self, tenant_id: str, run_id: str, error: LakegateError) -> None:
        """Fail the run's extraction: the catalog marks the run failed with this reason."""
        info = ErrorInfo(code=error.code, message=error.message, transient=False)
        failed = Failed(tenant_id=tenant_id, run_id=run_id, step="extract", error=info)
        await self.publish(run_id, failed, RunStep.FAILED)

    async def progress(self, run_id: str, rows: int, *, range_index: int | None = None) -> None:
        """Rows extracted so far, of the whole run or of one range of it."""
        # Progress is lossy by design: a lost message must not fail the extraction.
        with contextlib.suppress(Exception):
            await self._rt.broker.publish(
                Progress(run_id=run_id, step="extracting", rows=rows, range_index=range_index),
                self._rt.topology.progress(run_id),
            )

    async def finished(self, run_id: str) -> bool:
        """True when the run already reported its extraction or its failure (this is a redelivery)."""
        js = self._rt.broker.connection.jetstream()
        for step in (RunStep.EXTRACTED, RunStep.FAILED):
            try:
                await js.get_last_msg(self._rt.topology.run_stream.name, self._rt.topology.run_step(run_id, step))
            except NotFoundError:
                continue
            return True
        return False
