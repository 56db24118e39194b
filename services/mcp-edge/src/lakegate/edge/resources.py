"""MCP resources: sources, tables, runs and schedules as JSON documents a client can attach to a conversation.

    datasource://{id}/status                      the source, checked now, with next steps
    datasource://{id}/tables                      the tables its user can read
    table://{catalog}/{schema}/{name}/schema      columns, types, statistics of a lakehouse table
    table://{catalog}/{schema}/{name}/preview     its first rows
    run://{id}                                    a sync run
    schedule://{id}                               a sync schedule

The templates are listed by `resources/templates/list`; `tenant_resources` lists the concrete
ones of the caller's tenant for `resources/list`. Every read acts for the caller's tenant.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from lakegate.common.contracts.catalog import ListRuns, RunList
from lakegate.common.contracts.runs import RunRef, RunView
from lakegate.common.contracts.sources import SourceRef, SourceTables
from lakegate.common.errors import NotFound
from lakegate.common.names import LAYERS, tenant_catalog
from lakegate.edge.backend import Backend
from lakegate.edge.briefings import describe, preview, source_status
from lakegate.edge.durations import spoken
from lakegate.edge.metadata import all_schedules, all_sources, all_tables
from lakegate.edge.results.base import ToolResult
from lakegate.edge.results.runs import SyncRunResult
from lakegate.edge.results.schedules import ScheduleResult
from lakegate.edge.results.sources import SourceTablesResult
from lakegate.edge.results.warehouse import PreviewResult, TableDescriptionResult
from mcp.server.mcpserver import MCPServer
from mcp_types import Annotations, Resource

log = logging.getLogger(__name__)

JSON = "application/json"
#: Concrete run resources listed: the latest runs only; older ones are still readable by id.
LISTED_RUNS = 20
PREVIEW_ROWS = 20
_FOR_THE_MODEL = Annotations(audience=["assistant", "user"])


def add_resources(server: MCPServer, backend: Backend) -> None:
    """Register the resource templates."""
    guard, topology, settings = backend.failures.resource_errors, backend.topology, backend.settings

    @server.resource(
        "datasource://{id}/status",
        name="datasource_status",
        title="Source status",
        description="A registered PostgreSQL source checked now: reachable, server version, read-only, latency, "
        "or the error with next steps.",
        mime_type=JSON,
        annotations=_FOR_THE_MODEL,
    )
    @guard
    async def datasource_status(id: str) -> str:
        return _json(await source_status(backend, id))

    @server.resource(
        "datasource://{id}/tables",
        name="datasource_tables",
        title="Source tables",
        description="The tables and views of a registered source its user can read, with columns.",
        mime_type=JSON,
        annotations=_FOR_THE_MODEL,
    )
    @guard
    async def datasource_tables(id: str) -> str:
        ref = SourceRef(tenant_id=backend.tenant(), connection_id=id)
        tables = await backend.call(
            topology.source_tables_list, ref, SourceTables, timeout=settings.source_timeout_seconds
        )
        return _json(SourceTablesResult.of(id, tables, 0, max(len(tables.tables), 1)))

    @server.resource(
        "table://{catalog}/{schema}/{name}/schema",
        name="table_schema",
        title="Table schema",
        description="Columns, types, nullability and per-column statistics of a lakehouse table.",
        mime_type=JSON,
        annotations=_FOR_THE_MODEL,
    )
    @guard
    async def table_schema(catalog: str, schema: str, name: str) -> str:
        return _json(TableDescriptionResult.of(await describe(backend, _own_table(backend, catalog, schema, name))))

    @server.resource(
        "table://{catalog}/{schema}/{name}/preview",
        name="table_preview",
        title="Table preview",
        description=f"The first {PREVIEW_ROWS} rows of a lakehouse table.",
        mime_type=JSON,
        annotations=_FOR_THE_MODEL,
    )
    @guard
    async def table_preview(catalog: str, schema: str, name: str) -> str:
        table_name = _own_table(backend, catalog, schema, name)
        return _json(PreviewResult.of_table(table_name, await preview(backend, table_name, PREVIEW_ROWS)))

    @server.resource(
        "run://{id}",
        name="sync_run",
        title="Sync run",
        description="A sync run: status, rows, columns, timings, and the error when it failed.",
        mime_type=JSON,
        annotations=_FOR_THE_MODEL,
    )
    @guard
    async def sync_run(id: str) -> str:
        run = await backend.call(topology.runs_get, RunRef(tenant_id=backend.tenant(), run_id=id), RunView)
        return _json(SyncRunResult.of(backend.failures.public_run(run)))

    @server.resource(
        "schedule://{id}",
        name="sync_schedule",
        title="Sync schedule",
        description="A sync schedule: what it syncs, how often, when it runs next and the run it started last.",
        mime_type=JSON,
        annotations=_FOR_THE_MODEL,
    )
    @guard
    async def sync_schedule(id: str) -> str:
        # The catalog answers schedules by listing only; a tenant has few of them.
        for schedule in await all_schedules(backend, backend.tenant()):
            if schedule.schedule_id == id:
                return _json(ScheduleResult.of(schedule))
        raise NotFound(f"schedule {id} does not exist for you: list_schedules shows your schedules")


async def tenant_resources(backend: Backend) -> list[Resource]:
    """The concrete resources of the caller's tenant; a part whose service does not answer is left out."""
    tenant = backend.tenant()
    parts: list[Any] = await asyncio.gather(
        _source_resources(backend, tenant),
        *(_table_resources(backend, tenant, layer) for layer in LAYERS),
        _run_resources(backend, tenant),
        _schedule_resources(backend, tenant),
        return_exceptions=True,
    )
    listed: list[Resource] = []
    for part in parts:
        if isinstance(part, BaseException):
            log.warning("resources/list leaves out a part that could not be read: %s", part)
            continue
        listed.extend(part)
    return listed


async def _source_resources(backend: Backend, tenant: str) -> list[Resource]:
    resources: list[Resource] = []
    for source in sorted(await all_sources(backend, tenant), key=lambda s: s.name):
        where = f"{source.address.user}@{source.address.host}/{source.address.database}"
        resources += [
            _resource(f"datasource://{source.connection_id}/status", f"{source.name} status", f"Check {where} now."),
            _resource(f"datasource://{source.connection_id}/tables", f"{source.name} tables", f"Tables of {where}."),
        ]
    return resources


async def _table_resources(backend: Backend, tenant: str, layer: str) -> list[Resource]:
    resources: list[Resource] = []
    for table in sorted(await all_tables(backend, tenant, layer), key=lambda t: t.ref.name):
        ref = table.ref
        base = f"table://{ref.catalog}/{ref.schema_name}/{ref.name}"
        rows = f"{table.row_count:,} rows"
        resources += [
            _resource(f"{base}/schema", f"{ref.schema_name}.{ref.name} schema", f"Columns and statistics; {rows}."),
            _resource(f"{base}/preview", f"{ref.schema_name}.{ref.name} preview", f"First {PREVIEW_ROWS} of {rows}."),
        ]
    return resources


async def _run_resources(backend: Backend, tenant: str) -> list[Resource]:
    listing = await backend.call(backend.topology.runs_list, ListRuns(tenant_id=tenant, limit=LISTED_RUNS), RunList)
    return [
        _resource(f"run://{run.run_id}", f"run {run.run_id}", f"{run.status}: {run.source_table} → {run.target}")
        for run in listing.runs
    ]


async def _schedule_resources(backend: Backend, tenant: str) -> list[Resource]:
    return [
        _resource(
            f"schedule://{schedule.schedule_id}",
            f"schedule {schedule.schedule_id}",
            f"{schedule.sync_mode} sync of {schedule.table_name} "
            + (f"every {spoken(schedule.every_seconds)}" if schedule.every_seconds else f"on cron {schedule.cron}"),
        )
        for schedule in await all_schedules(backend, tenant)
    ]


def _resource(uri: str, name: str, description: str) -> Resource:
    return Resource(uri=uri, name=name, description=description, mime_type=JSON, annotations=_FOR_THE_MODEL)


def _own_table(backend: Backend, catalog: str, schema: str, name: str) -> str:
    """`catalog.schema.name` once the catalog is the caller's own."""
    own = tenant_catalog(backend.tenant())
    if catalog != own:
        raise NotFound(f"catalog {catalog!r} is not yours: your tables are under table://{own}/<layer>/<name>")
    return f"{catalog}.{schema}.{name}"


def _json(result: ToolResult) -> str:
    return result.model_dump_json(indent=2)
