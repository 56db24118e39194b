"""What the catalog publishes to JetStream: extract commands and public sync events.

Every message carries a `Nats-Msg-Id`, so a publish retried within the stream's duplicate window
is stored once. A publish that JetStream does not acknowledge is `Unavailable` (transient).
"""

from __future__ import annotations

from typing import Literal

from faststream.nats import NatsBroker
from lakegate.common.contracts.events import SyncEvent
from lakegate.common.contracts.runs import ExtractTable
from lakegate.common.errors import Unavailable
from lakegate.common.subjects import StreamSpec, Topology
from pydantic import BaseModel


class Publisher:
    """Publishes to JetStream and waits for the stream's acknowledgement."""

    def __init__(self, broker: NatsBroker, topology: Topology, timeout: float) -> None:
        self._broker, self._topology, self._timeout = broker, topology, timeout

    async def extract(self, command: ExtractTable) -> None:
        """Hand a run to the extractors."""
        await self._publish(command, self._topology.cmd_extract, self._topology.cmd_stream, command.run_id)

    async def sync_event(self, event: SyncEvent, outcome: Literal["completed", "failed"]) -> None:
        """Announce a finished run on the tenant's public subject."""
        subject = self._topology.sync_event(event.data.tenant_id, outcome)
        await self._publish(event, subject, self._topology.events_stream, event.id)

    async def _publish(self, message: BaseModel, subject: str, stream: StreamSpec, msg_id: str) -> None:
        try:
            await self._broker.publish(
                message, subject, stream=stream.name, headers={"Nats-Msg-Id": msg_id}, timeout=self._timeout
            )
        except Exception as exc:
            # Whatever NATS raised (no stream, timeout, connection lost), the remedy is the same: retry.
            raise Unavailable(
                f"JetStream did not accept {msg_id} on stream {stream.name} ({type(exc).__name__}: {exc}); "
                "check that NATS is running with JetStream enabled"
            ) from exc
