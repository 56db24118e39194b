"""What lakegate tells a model about the data: gathered fresh from the services when it is asked.

The AI-assisted tools send a briefing to the client's model; the prompts put one into the
conversation. Both use the same briefings, rendered the same way (`as_context`).
"""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime

from lakegate.common.contracts.sources import ConnectionStatus, SourceInfo, SourceRef
from lakegate.common.contracts.transforms import PreviewTable
from lakegate.common.contracts.warehouse import DescribeTable, QueryResult, TableDescription
from lakegate.common.errors import LakegateError
from lakegate.common.names import tenant_catalog
from lakegate.edge.backend import Backend
from lakegate.edge.diagnosis import next_steps
from lakegate.edge.metadata import lakehouse_metadata
from lakegate.edge.results.assist import LakehouseBriefing, SketchColumn, TableBriefing, TableSketch
from lakegate.edge.results.base import ToolResult
from lakegate.edge.results.sources import SourceStatusResult
from lakegate.edge.results.warehouse import SqlQueryResult, TableDescriptionResult

#: Rows of a table a briefing shows.
SAMPLE_ROWS = 10
#: Tables a lakehouse briefing describes at most; the rest are counted in `omitted`.
MAX_SKETCHED_TABLES = 40
#: A rendered context longer than this is cut, so a question stays well inside a model's window.
MAX_CONTEXT_CHARS = 60_000


async def describe(backend: Backend, table_name: str, *, with_stats: bool = True) -> TableDescription:
    """The loader's description of one of the caller's tables."""
    request = DescribeTable(tenant_id=backend.tenant(), table_name=table_name, with_stats=with_stats)
    return await backend.call(
        backend.topology.warehouse_tables_describe,
        request,
        TableDescription,
        timeout=backend.settings.query_timeout_seconds,
        cancels=True,
    )


async def preview(backend: Backend, table_name: str, limit: int) -> QueryResult:
    """The first rows of one of the caller's tables."""
    request = PreviewTable(tenant_id=backend.tenant(), table_name=table_name, limit=limit)
    return await backend.call(
        backend.topology.warehouse_tables_preview,
        request,
        QueryResult,
        timeout=backend.settings.query_timeout_seconds,
        cancels=True,
    )


async def table_briefing(backend: Backend, table_name: str) -> TableBriefing:
    """Columns with statistics, sample rows and lineage of one table."""
    description = await describe(backend, table_name)
    name = str(description.ref)
    rows, metadata = await asyncio.gather(preview(backend, name, SAMPLE_ROWS), lakehouse_metadata(backend))
    return TableBriefing(
        description=TableDescriptionResult.of(description),
        sample_rows=SqlQueryResult.of(rows),
        lineage=next((t for t in metadata.tables if t.table_name == name), None),
    )


async def lakehouse_briefing(backend: Backend, tables: list[str] | None = None) -> LakehouseBriefing:
    """The named tables, or every table of the lakehouse, as a query writer needs them."""
    catalog = tenant_catalog(backend.tenant())
    if tables:
        chosen = tables[:MAX_SKETCHED_TABLES]
        descriptions = await asyncio.gather(*(describe(backend, name, with_stats=False) for name in chosen))
        return LakehouseBriefing(
            catalog=catalog,
            tables=[_sketch_of_description(d) for d in descriptions],
            omitted=len(tables) - len(chosen),
        )
    metadata = await lakehouse_metadata(backend)
    present = [t for t in metadata.tables if t.in_lakehouse][:MAX_SKETCHED_TABLES]
    unknown = [t.table_name for t in present if not t.columns]
    described = {
        str(d.ref): d for d in await asyncio.gather(*(describe(backend, n, with_stats=False) for n in unknown))
    }
    sketches = [
        _sketch_of_description(described[t.table_name], kind=t.kind)
        if t.table_name in described
        else TableSketch(
            table_name=t.table_name,
            kind=t.kind,
            row_count=t.row_count,
            keys=t.keys,
            columns=[SketchColumn(name=c.name, type=c.type) for c in t.columns],
            upstream=t.upstream,
        )
        for t in present
    ]
    omitted = sum(1 for t in metadata.tables if t.in_lakehouse) - len(present)
    return LakehouseBriefing(catalog=catalog, tables=sketches, omitted=omitted)


def _sketch_of_description(description: TableDescription, kind: str = "table") -> TableSketch:
    return TableSketch(
        table_name=str(description.ref),
        kind=kind,
        row_count=description.row_count,
        columns=[SketchColumn(name=c.name, type=c.type) for c in description.columns],
    )


async def source_status(backend: Backend, connection_id: str) -> SourceStatusResult:
    """A registered source and the outcome of checking it now, with next steps; only an unknown id raises."""
    ref = SourceRef(tenant_id=backend.tenant(), connection_id=connection_id)
    source = await backend.call(backend.topology.sources_get, ref, SourceInfo)
    address = source.address
    fields = {
        "connection_id": source.connection_id,
        "name": source.name,
        "host": address.host,
        "port": address.port,
        "database": address.database,
        "user": address.user,
        "checked_at": datetime.now(UTC),
    }
    try:
        status = await backend.call(
            backend.topology.sources_check_registered,
            ref,
            ConnectionStatus,
            timeout=backend.settings.source_timeout_seconds,
        )
    except LakegateError as exc:
        steps = next_steps(exc.code, exc.message, None)
        return SourceStatusResult(reachable=False, error=exc.message, error_code=exc.code, next_steps=steps, **fields)
    if not status.ok:
        error = "the server did not accept the stored credentials"
        return SourceStatusResult(
            reachable=False, error=error, error_code="source_error", next_steps=next_steps(None, error, None), **fields
        )
    return SourceStatusResult(
        reachable=True,
        server_version=status.server_version,
        read_only=status.read_only,
        latency_ms=round(status.latency_ms, 1),
        next_steps=next_steps(None, None, status.read_only),
        **fields,
    )


def as_context(briefing: ToolResult) -> str:
    """A briefing as the JSON a model reads, cut at `MAX_CONTEXT_CHARS`."""
    text = json.dumps(briefing.model_dump(mode="json"), indent=1, ensure_ascii=False)
    if len(text) <= MAX_CONTEXT_CHARS:
        return text
    return f"{text[:MAX_CONTEXT_CHARS]}\n… (context cut at {MAX_CONTEXT_CHARS:,} of {len(text):,} characters)"
