"""Tools about PostgreSQL sources: register one, check it, list its tables."""

from __future__ import annotations

import time
from typing import Annotated

from lakegate.common.contracts.sources import (
    CheckSource,
    ConnectionStatus,
    RegisterSource,
    SourceAddress,
    SourceInfo,
    SourceLogin,
    SourceRef,
    SourceTables,
)
from lakegate.common.errors import LakegateError
from lakegate.edge.backend import Backend
from lakegate.edge.failures import tool_errors
from lakegate.edge.results import ConnectionResult, ConnectionTestResult, SourceTablesResult
from mcp.server.mcpserver import MCPServer
from mcp.server.mcpserver.exceptions import ToolError
from mcp.types import ToolAnnotations
from pydantic import Field, SecretStr

ConnectionId = Annotated[str, Field(description="Id of a registered source, as connect_postgres returned it.")]


def add_source_tools(server: MCPServer, backend: Backend) -> None:
    """Register connect_postgres, test_connection and list_source_tables."""
    rpc, topology, settings = backend.rpc, backend.topology, backend.settings

    @server.tool(
        annotations=ToolAnnotations(
            title="Connect a PostgreSQL database",
            read_only_hint=False,
            destructive_hint=False,
            idempotent_hint=False,
            open_world_hint=True,
        )
    )
    @tool_errors
    async def connect_postgres(
        name: Annotated[
            str,
            Field(
                description="Short name for the source, unique among yours; bronze tables are named `<name>_<table>`.",
                min_length=1,
                max_length=40,
            ),
        ],
        host: Annotated[str, Field(description="Host name or IP address of the PostgreSQL server.", min_length=1)],
        database: Annotated[str, Field(description="Database to read from.", min_length=1)],
        user: Annotated[
            str, Field(description="User to connect as; a user with read-only grants is best.", min_length=1)
        ],
        password: Annotated[SecretStr, Field(description="Password of the user; stored encrypted, never shown.")],
        port: Annotated[int, Field(description="TCP port of the PostgreSQL server.", ge=1, le=65535)] = 5432,
    ) -> ConnectionResult:
        """Register a PostgreSQL database as a source, after checking that lakegate can log in to it.

        Nothing is stored when the check fails. Returns the connection_id the other tools take.
        """
        tenant = backend.tenant()
        login = SourceLogin(
            address=SourceAddress(host=host, port=port, database=database, user=user), password=password
        )
        try:
            status = await rpc.call(
                topology.sources_check,
                CheckSource(tenant_id=tenant, login=login),
                ConnectionStatus,
                timeout=settings.source_timeout_seconds,
            )
        except LakegateError as exc:
            raise ToolError(f"{exc.message} Nothing was registered; call connect_postgres again once fixed.") from exc
        if not status.ok:
            raise ToolError(
                f"could not log in to {user}@{host}:{port}/{database}: check the host, port, database, user and "
                "password. Nothing was registered."
            )
        source = await rpc.call(
            topology.sources_register, RegisterSource(tenant_id=tenant, name=name, login=login), SourceInfo
        )
        return ConnectionResult.of(source, status)

    @server.tool(
        annotations=ToolAnnotations(
            title="Test a registered source", read_only_hint=True, idempotent_hint=True, open_world_hint=True
        )
    )
    @tool_errors
    async def test_connection(connection_id: ConnectionId) -> ConnectionTestResult:
        """Check that lakegate still reaches a registered source with its stored credentials."""
        ref = SourceRef(tenant_id=backend.tenant(), connection_id=connection_id)
        source = await rpc.call(topology.sources_get, ref, SourceInfo)
        began = time.perf_counter()
        tables = await rpc.call(topology.source_tables_list, ref, SourceTables, timeout=settings.source_timeout_seconds)
        return ConnectionTestResult.of(source, tables, (time.perf_counter() - began) * 1000)

    @server.tool(
        annotations=ToolAnnotations(
            title="List a source's tables", read_only_hint=True, idempotent_hint=True, open_world_hint=True
        )
    )
    @tool_errors
    async def list_source_tables(connection_id: ConnectionId) -> SourceTablesResult:
        """List the tables and views of a source database that its user can read, with their columns."""
        ref = SourceRef(tenant_id=backend.tenant(), connection_id=connection_id)
        tables = await rpc.call(topology.source_tables_list, ref, SourceTables, timeout=settings.source_timeout_seconds)
        return SourceTablesResult.of(connection_id, tables)
