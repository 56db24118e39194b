"""The whole lakehouse of a tenant in one view: the loader's listings joined with the catalog's datasets.

The loader knows what tables exist (rows, sizes, versions); the catalog knows where each came
from (source table, upstream tables, keys, definition, last sync). A table only one of them knows
still appears: `unrecorded` when the catalog has no record, `in_lakehouse: false` when the
warehouse no longer has a table the catalog remembers.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import TypeVar

from lakegate.common.contracts.catalog import Dataset, DatasetList, ListDatasets
from lakegate.common.contracts.schedules import ListSchedules, Schedule, ScheduleList
from lakegate.common.contracts.sources import ListSources, SourceInfo, SourceList
from lakegate.common.contracts.warehouse import ListTables, TableList, TableSummary
from lakegate.common.names import LAYERS, tenant_catalog
from lakegate.edge.backend import Backend
from lakegate.edge.results.catalog import (
    LISTED_COLUMNS,
    DatasetColumn,
    LineageEdge,
    MetadataResult,
    TableMetadata,
    Via,
)
from lakegate.edge.results.sources import SourceSummary

T = TypeVar("T")

#: Page size when the edge walks a whole listing.
WALK_PAGE = 1000
#: A listing longer than this many pages is cut short rather than walked forever.
MAX_PAGES = 50
_VIA: dict[str, Via] = {"synced": "sync", "silver": "transform", "gold": "view", "upload": "upload"}


async def walk(fetch: Callable[[int], Awaitable[tuple[list[T], int | None]]]) -> list[T]:
    """Every item of a paginated listing, page after page."""
    items: list[T] = []
    offset: int | None = 0
    for _ in range(MAX_PAGES):
        if offset is None:
            break
        page, next_offset = await fetch(offset)
        items.extend(page)
        # A next offset that does not move forward would repeat the same page.
        offset = next_offset if next_offset is not None and next_offset > offset else None
    return items


async def all_tables(backend: Backend, tenant: str, layer: str) -> list[TableSummary]:
    """Every table of one layer, from the loader."""

    async def fetch(offset: int) -> tuple[list[TableSummary], int | None]:
        request = ListTables(tenant_id=tenant, layer=layer, limit=WALK_PAGE, offset=offset)
        listing = await backend.call(backend.topology.warehouse_tables_list, request, TableList)
        return listing.tables, listing.next_offset

    return await walk(fetch)


async def all_datasets(backend: Backend, tenant: str) -> list[Dataset]:
    """Every dataset the catalog records for the tenant."""

    async def fetch(offset: int) -> tuple[list[Dataset], int | None]:
        request = ListDatasets(tenant_id=tenant, limit=WALK_PAGE, offset=offset)
        listing = await backend.call(backend.topology.datasets_list, request, DatasetList)
        return listing.datasets, listing.next_offset

    return await walk(fetch)


async def all_sources(backend: Backend, tenant: str) -> list[SourceInfo]:
    """Every registered source of the tenant."""
    listing = await backend.call(backend.topology.sources_list, ListSources(tenant_id=tenant), SourceList)
    return listing.sources


async def all_schedules(backend: Backend, tenant: str) -> list[Schedule]:
    """Every sync schedule of the tenant."""

    async def fetch(offset: int) -> tuple[list[Schedule], int | None]:
        request = ListSchedules(tenant_id=tenant, limit=WALK_PAGE, offset=offset)
        listing = await backend.call(backend.topology.schedules_list, request, ScheduleList)
        return listing.schedules, listing.next_offset

    return await walk(fetch)


async def lakehouse_metadata(backend: Backend) -> MetadataResult:
    """Sources, tables of every layer, lineage and keys of the caller's tenant."""
    tenant = backend.tenant()
    listings, datasets, sources = await asyncio.gather(
        asyncio.gather(*(all_tables(backend, tenant, layer) for layer in LAYERS)),
        all_datasets(backend, tenant),
        all_sources(backend, tenant),
    )
    tables = [table for listing in listings for table in listing]
    return assemble(tenant_catalog(tenant), tables, datasets, sources).within()


def assemble(
    catalog: str, tables: list[TableSummary], datasets: list[Dataset], sources: list[SourceInfo]
) -> MetadataResult:
    """Join listings, datasets and sources into one view with its lineage edges."""
    names = {source.connection_id: source.name for source in sources}
    recorded = {str(dataset.target): dataset for dataset in datasets}
    listed = {str(table.ref): table for table in tables}
    edges: list[LineageEdge] = []
    for name, dataset in recorded.items():
        via = _VIA[dataset.kind]
        if dataset.kind == "synced" and dataset.source_table:
            edges.append(LineageEdge(upstream=_source_node(dataset, names), downstream=name, via="sync"))
        edges.extend(LineageEdge(upstream=str(ref), downstream=name, via=via) for ref in dataset.upstream)
    downstream: dict[str, list[str]] = {}
    for edge in edges:
        downstream.setdefault(edge.upstream, []).append(edge.downstream)
    entries = [
        _table_metadata(name, listed.get(name), recorded.get(name), names, downstream.get(name, []))
        for name in {*listed, *recorded}
    ]
    order = {layer: index for index, layer in enumerate(LAYERS)}
    entries.sort(key=lambda t: (order.get(t.layer, len(order)), t.name))
    return MetadataResult(
        catalog=catalog,
        sources=[SourceSummary.of(s) for s in sorted(sources, key=lambda s: s.name)],
        tables=entries,
        lineage=sorted(edges, key=lambda e: (e.downstream, e.upstream)),
        hint=(
            "query any table with query_sql using its table_name; describe_table adds column statistics, "
            "preview_table shows rows"
            if entries
            else "the lakehouse is empty: connect_postgres, then sync_table_to_bronze, or upload_file"
        ),
    )


def _source_node(dataset: Dataset, names: dict[str, str]) -> str:
    source = names.get(dataset.connection_id or "", dataset.connection_id or "unknown source")
    return f"{source}:{dataset.source_table}"


def _table_metadata(
    name: str, table: TableSummary | None, dataset: Dataset | None, names: dict[str, str], downstream: list[str]
) -> TableMetadata:
    ref = table.ref if table is not None else dataset.target if dataset is not None else None
    assert ref is not None  # every name came from a listing or a dataset
    upstream = [str(r) for r in dataset.upstream] if dataset is not None else []
    source = _source_node(dataset, names) if dataset is not None and dataset.source_table else None
    columns = dataset.columns if dataset is not None else []
    return TableMetadata(
        table_name=name,
        name=ref.name,
        layer=ref.schema_name,
        kind=dataset.kind if dataset is not None else "unrecorded",
        in_lakehouse=table is not None,
        row_count=table.row_count if table is not None else dataset.row_count if dataset is not None else None,
        size_bytes=table.size_bytes if table is not None else None,
        version=table.table_version if table is not None else None,
        source=source,
        connection_id=dataset.connection_id if dataset is not None else None,
        upstream=[source, *upstream] if source else upstream,
        downstream=sorted(downstream),
        keys=dataset.keys if dataset is not None else [],
        columns=[DatasetColumn.of(c) for c in columns[:LISTED_COLUMNS]],
        column_count=len(columns),
        columns_truncated=len(columns) > LISTED_COLUMNS,
        definition=dataset.definition if dataset is not None else None,
        last_synced_at=dataset.last_synced_at if dataset is not None else None,
        last_run_id=dataset.last_run_id if dataset is not None else None,
    )
