"""What the catalog publishes: extract commands, public sync events, and cancel signals.

Every JetStream message carries a `Nats-Msg-Id`, so a publish retried within the stream's duplicate
window is stored once. A publish that JetStream does not acknowledge is `Unavailable` (transient).
The public events go out through publishers declared with their schema (`declare_sync_events`), so
the AsyncAPI document FastStream generates describes exactly what subscribers receive.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Literal

from faststream.nats import JStream, NatsBroker
from faststream.nats.publisher.usecase import LogicPublisher
from lakegate.common.contracts.events import SyncEvent
from lakegate.common.contracts.runs import CancelRun, ExtractTable
from lakegate.common.errors import Unavailable
from lakegate.common.subjects import StreamSpec, Topology
from pydantic import BaseModel

Outcome = Literal["completed", "failed"]
#: The tenant part of a public subject as the AsyncAPI document shows it.
TENANT_PARAMETER = "{tenant_id}"
_EVENTS: dict[Outcome, tuple[str, str]] = {
    "completed": (
        "sync.completed",
        "A sync run succeeded: its rows are committed to the target table. `data` says how many rows and bytes, "
        "how long it took, the columns, any schema changes and the new incremental cursor. Subject "
        "`<prefix>.events.<tenant_id>.sync.completed`; CloudEvents type `io.lakegate.sync.completed.v1`.",
    ),
    "failed": (
        "sync.failed",
        "A sync run failed (`data.status` 'failed', `data.error` says why and what to do) or was cancelled "
        "(`data.status` 'cancelled', error code 'cancelled'); the target table is as it was. Subject "
        "`<prefix>.events.<tenant_id>.sync.failed`; CloudEvents type `io.lakegate.sync.failed.v1`.",
    ),
}


def declare_sync_events(broker: NatsBroker, topology: Topology) -> dict[Outcome, LogicPublisher]:
    """Declare the public event publishers on `broker`, with their message schema and description."""
    stream = JStream(topology.events_stream.name, declare=False)
    return {
        outcome: broker.publisher(
            topology.sync_event(TENANT_PARAMETER, outcome),
            stream=stream,
            schema=SyncEvent,
            title=title,
            description=description,
        )
        for outcome, (title, description) in _EVENTS.items()
    }


class Publisher:
    """Publishes to JetStream and waits for the stream's acknowledgement; cancel signals go on core NATS."""

    def __init__(
        self,
        broker: NatsBroker,
        topology: Topology,
        timeout: float,
        events: Mapping[Outcome, LogicPublisher],
    ) -> None:
        self._broker, self._topology, self._timeout, self._events = broker, topology, timeout, events

    async def extract(self, command: ExtractTable) -> None:
        """Hand a run to the extractors."""
        await self._publish(command, self._topology.cmd_extract, self._topology.cmd_stream, command.run_id)

    async def sync_event(self, event: SyncEvent, outcome: Outcome) -> None:
        """Announce a finished run on the tenant's public subject."""
        subject = self._topology.sync_event(event.data.tenant_id, outcome)
        stream = self._topology.events_stream
        try:
            await self._events[outcome].publish(
                event, subject, headers={"Nats-Msg-Id": event.id}, stream=stream.name, timeout=self._timeout
            )
        except Exception as exc:
            raise _refused(event.id, stream, exc) from exc

    async def cancel(self, signal: CancelRun) -> None:
        """Tell whoever works on a run to stop (core NATS: the catalog's record is what counts)."""
        try:
            await self._broker.publish(signal, self._topology.cancel(signal.run_id))
        except Exception as exc:
            raise Unavailable(
                f"the cancel signal of run {signal.run_id} was not sent ({type(exc).__name__}: {exc}); the run is "
                "cancelled all the same; cancel it again to repeat the signal"
            ) from exc

    async def _publish(self, message: BaseModel, subject: str, stream: StreamSpec, msg_id: str) -> None:
        try:
            await self._broker.publish(
                message, subject, stream=stream.name, headers={"Nats-Msg-Id": msg_id}, timeout=self._timeout
            )
        except Exception as exc:
            raise _refused(msg_id, stream, exc) from exc


def _refused(msg_id: str, stream: StreamSpec, exc: Exception) -> Unavailable:
    # Whatever NATS raised (no stream, timeout, connection lost), the remedy is the same: retry.
    return Unavailable(
        f"JetStream did not accept {msg_id} on stream {stream.name} ({type(exc).__name__}: {exc}); "
        "check that NATS is running with JetStream enabled"
    )
