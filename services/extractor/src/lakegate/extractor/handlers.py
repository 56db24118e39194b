"""The extractor's request handlers (its JetStream consumers are listed in `app.py`).

No `from __future__ import annotations` here: FastStream reads the handlers' annotations at
runtime (through `answers`' wrapper), so they must be real classes.
"""

import asyncio
import time

from lakegate.common.contracts.explore import DescribeSourceTable, QuerySource, SourceTableDetail
from lakegate.common.contracts.sources import (
    CheckSource,
    ConnectionStatus,
    SourceRef,
    SourceTables,
)
from lakegate.common.contracts.warehouse import QueryResult
from lakegate.common.lanes import RequestLanes
from lakegate.common.rpc import answers
from lakegate.common.service import Runtime
from lakegate.common.telemetry import tracer
from lakegate.extractor.config import ExtractorSettings
from lakegate.extractor.connections import where
from lakegate.extractor.details import describe_table
from lakegate.extractor.exploration import query_source
from lakegate.extractor.guard import calls_in, check_query
from lakegate.extractor.introspection import check_registered, check_source, source_tables
from lakegate.extractor.logins import Logins

#: Replicas share request subjects through this queue group, so one of them answers each request.
QUEUE = "extractor"


def register_handlers(rt: Runtime, settings: ExtractorSettings, logins: Logins) -> None:
    """Subscribe the extractor's request handlers on the runtime's broker (before it starts)."""
    broker, topology = rt.broker, rt.topology
    lanes = RequestLanes.from_settings(settings)  # a slow or hung source waits in its own lane
    workers = settings.request_workers

    @broker.subscriber(topology.sources_check, queue=QUEUE, max_workers=workers)
    @answers
    async def sources_check(request: CheckSource) -> ConnectionStatus:
        """Try a login before the catalog stores it: version, read-only or not, latency."""
        address = where(request.login.address)
        login = await logins.open(request.login, tenant_id=request.tenant_id, source=address)
        async with lanes.enter(request.tenant_id, address):
            return await check_source(login, settings)

    @broker.subscriber(topology.source_tables_list, queue=QUEUE, max_workers=workers)
    @answers
    async def source_tables_list(request: SourceRef) -> SourceTables:
        """The tables and views of a registered source, with each column's mapping."""
        credentials = await logins.credentials(rt, request)
        async with lanes.enter(request.tenant_id, request.connection_id):
            return await source_tables(credentials, settings)

    @broker.subscriber(topology.sources_check_registered, queue=QUEUE, max_workers=workers)
    @answers
    async def sources_check_registered(request: SourceRef) -> ConnectionStatus:
        """Check a registered source with the credentials the catalog holds for it."""
        credentials = await logins.credentials(rt, request)
        async with lanes.enter(request.tenant_id, request.connection_id):
            return await check_registered(credentials, settings)

    @broker.subscriber(topology.source_table_describe, queue=QUEUE, max_workers=workers)
    @answers
    async def source_table_describe(request: DescribeSourceTable) -> SourceTableDetail:
        """Columns, keys, indexes and sample values of one table of a registered source."""
        source = SourceRef(tenant_id=request.tenant_id, connection_id=request.connection_id)
        credentials = await logins.credentials(rt, source)
        async with lanes.enter(request.tenant_id, request.connection_id):
            return await describe_table(credentials, request, settings)

    @broker.subscriber(topology.source_query, queue=QUEUE, max_workers=workers)
    @answers
    async def source_query(request: QuerySource) -> QueryResult:
        """One read-only query on a registered source: the parser guard first, then the database's walls."""
        began = time.monotonic()
        # From the first line, so that a cancel that came before the request was taken up stops it at once.
        # A cancelled query_source cancels its statement at the server (asyncpg sends the same cancel
        # request as pg_cancel_backend) when `stoppable` cancels this task.
        async with rt.call_stops.stoppable(request.call_id, "the source query"):
            try:
                # Parsing a long statement takes a while; a thread keeps the other requests moving.
                sql = await asyncio.to_thread(check_query, request.sql, settings.query_limits)
                calls = await asyncio.to_thread(calls_in, sql)
                source = SourceRef(tenant_id=request.tenant_id, connection_id=request.connection_id)
                credentials = await logins.credentials(rt, source)
                with tracer(__name__).start_as_current_span("source query"):
                    async with lanes.enter(request.tenant_id, request.connection_id):
                        return await query_source(credentials, sql, request.max_rows, settings, calls=calls)
            finally:
                rt.metrics.query("source", time.monotonic() - began)
