"""Tools that read the catalog: your sources and your datasets with their lineage."""

from __future__ import annotations

from typing import Annotated

from lakegate.common.contracts.catalog import DatasetList, ListDatasets
from lakegate.edge.backend import Backend
from lakegate.edge.metadata import all_sources
from lakegate.edge.results.base import Offset
from lakegate.edge.results.catalog import DatasetInfo, DatasetListResult
from lakegate.edge.results.sources import SourceListResult
from lakegate.edge.tools.sync import READS_CATALOG
from mcp.server.mcpserver import MCPServer
from pydantic import Field


def add_catalog_tools(server: MCPServer, backend: Backend) -> None:
    """Register list_sources and list_datasets."""
    topology, guard = backend.topology, backend.failures.tool_errors

    @server.tool(annotations=READS_CATALOG.model_copy(update={"title": "List your sources"}))
    @guard
    async def list_sources(
        offset: Offset = 0,
        limit: Annotated[int, Field(description="Most sources to return.", ge=1, le=500)] = 100,
    ) -> SourceListResult:
        """List the PostgreSQL databases you registered with connect_postgres, with their connection_id.

        Never shows passwords. test_connection checks one; list_source_tables shows its tables.
        """
        return SourceListResult.of(await all_sources(backend, backend.tenant()), offset, limit)

    @server.tool(annotations=READS_CATALOG.model_copy(update={"title": "List your datasets"}))
    @guard
    async def list_datasets(
        offset: Offset = 0,
        limit: Annotated[int, Field(description="Most datasets to return.", ge=1, le=1000)] = 100,
    ) -> DatasetListResult:
        """List the lakehouse tables lakegate made for you, with lineage (source table or upstream tables),
        known keys, definitions and when each was last synced."""
        request = ListDatasets(tenant_id=backend.tenant(), offset=offset, limit=limit)
        listing = await backend.call(topology.datasets_list, request, DatasetList)
        return DatasetListResult.page([DatasetInfo.of(d) for d in listing.datasets], offset, listing.next_offset)
