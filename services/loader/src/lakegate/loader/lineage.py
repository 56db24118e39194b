"""Telling the catalog what the loader built: `DatasetRecord` commands on the CMD work-queue stream."""

from __future__ import annotations

from dataclasses import dataclass

from faststream.nats import NatsBroker
from lakegate.common.contracts.transforms import DatasetRecord
from lakegate.common.errors import Unavailable
from lakegate.common.subjects import Topology


@dataclass(frozen=True)
class Lineage:
    """Publishes dataset records; the message id makes a repeated publish of one change count once."""

    broker: NatsBroker
    topology: Topology
    timeout: float = 10.0

    async def record(self, record: DatasetRecord, change: str) -> None:
        """Publish `record` for one change of its table (`change` names it, e.g. the Delta version)."""
        try:
            await self.broker.publish(
                record,
                self.topology.cmd_record_dataset,
                stream=self.topology.cmd_stream.name,
                headers={"Nats-Msg-Id": f"dataset.{record.target}.{change}"},
                timeout=self.timeout,
            )
        except Exception as exc:
            raise Unavailable(
                f"{record.target} was written, but the catalog could not be told ({exc}); "
                "run the same request again to record it"
            ) from exc
