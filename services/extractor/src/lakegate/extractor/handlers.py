"""The extractor's FastStream subscribers: two request handlers and the extraction worker.

No `from __future__ import annotations` here: FastStream reads the handlers' annotations at
runtime (through `answers`' wrapper), so they must be real classes.
"""

from faststream import AckPolicy
from faststream.nats import JStream, NatsMessage, PullSub
from lakegate.common.contracts.runs import ExtractTable
from lakegate.common.contracts.sources import (
    CheckSource,
    ConnectionStatus,
    SourceCredentials,
    SourceRef,
    SourceTables,
)
from lakegate.common.delivery import ACK_WAIT
from lakegate.common.rpc import answers
from lakegate.common.service import Runtime
from lakegate.extractor.config import ExtractorSettings
from lakegate.extractor.extraction import Extractor
from lakegate.extractor.introspection import check_source, source_tables
from nats.js.api import ConsumerConfig

#: Replicas share request subjects through this queue group, so one of them answers each request.
QUEUE = "extractor"


def register_handlers(rt: Runtime, settings: ExtractorSettings, extractor: Extractor) -> None:
    """Subscribe the extractor's handlers on the runtime's broker (before it starts)."""
    broker, topology = rt.broker, rt.topology

    @broker.subscriber(topology.sources_check, queue=QUEUE)
    @answers
    async def sources_check(request: CheckSource) -> ConnectionStatus:
        """Try a login before the catalog stores it: version, read-only or not, latency."""
        return await check_source(request.login, settings)

    @broker.subscriber(topology.source_tables_list, queue=QUEUE)
    @answers
    async def source_tables_list(request: SourceRef) -> SourceTables:
        """The tables and views of a registered source, with each column's mapping."""
        credentials = await rt.rpc.call(topology.sources_credentials, request, SourceCredentials)
        return await source_tables(credentials, settings)

    @broker.subscriber(
        topology.cmd_extract,
        stream=JStream(topology.cmd_stream.name, declare=False),
        durable=topology.durable("extractor"),
        config=ConsumerConfig(ack_wait=ACK_WAIT),
        pull_sub=PullSub(batch_size=1, timeout=5.0),
        ack_policy=AckPolicy.MANUAL,
    )
    async def extract(command: ExtractTable, msg: NatsMessage) -> None:
        """One table to stream to staging; replicas share the durable consumer."""
        await extractor.handle(command, msg)
