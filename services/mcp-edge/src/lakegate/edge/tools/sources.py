"""Tools about PostgreSQL sources: register one, check it, list and explore its tables read-only."""

from __future__ import annotations

from typing import Annotated

from lakegate.common.contracts.explore import DescribeSourceTable, QuerySource, SourceTableDetail
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
from lakegate.common.contracts.warehouse import QueryResult
from lakegate.common.errors import LakegateError, SourceError
from lakegate.edge.backend import Backend
from lakegate.edge.results.base import Offset
from lakegate.edge.results.sources import (
    ConnectionResult,
    ConnectionTestResult,
    SourceTableDetailResult,
    SourceTablesResult,
)
from lakegate.edge.results.warehouse import SqlQueryResult
from mcp.server.mcpserver import MCPServer
from mcp.types import ToolAnnotations
from pydantic import Field, SecretStr

ConnectionId = Annotated[
    str, Field(description="Id of a registered source, as connect_postgres or list_sources returned it.", min_length=1)
]
SourceTableName = Annotated[
    str, Field(description="`table` or `schema.table` in the source; the schema defaults to public.", min_length=1)
]
#: Reads a source database: read-only, and outside lakegate (the database may change between calls).
READS_SOURCE = ToolAnnotations(read_only_hint=True, destructive_hint=False, idempotent_hint=True, open_world_hint=True)


def add_source_tools(server: MCPServer, backend: Backend) -> None:
    """Register connect_postgres, test_connection, list_source_tables, describe_source_table and query_source."""
    topology, settings, guard = backend.topology, backend.settings, backend.failures.tool_errors

    @server.tool(
        annotations=ToolAnnotations(
            title="Connect a PostgreSQL database",
            read_only_hint=False,
            destructive_hint=False,
            idempotent_hint=False,
            open_world_hint=True,
        )
    )
    @guard
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
            status = await backend.call(
                topology.sources_check,
                CheckSource(tenant_id=tenant, login=login),
                ConnectionStatus,
                timeout=settings.source_timeout_seconds,
            )
        except LakegateError as exc:
            raise type(exc)(f"{exc.message} Nothing was registered; call connect_postgres again once fixed.") from exc
        if not status.ok:
            raise SourceError(
                f"could not log in to {user}@{host}:{port}/{database}: check the host, port, database, user and "
                "password. Nothing was registered."
            )
        source = await backend.call(
            topology.sources_register, RegisterSource(tenant_id=tenant, name=name, login=login), SourceInfo
        )
        return ConnectionResult.of(source, status)

    @server.tool(annotations=READS_SOURCE.model_copy(update={"title": "Test a registered source"}))
    @guard
    async def test_connection(connection_id: ConnectionId) -> ConnectionTestResult:
        """Check that lakegate still logs in to a registered source with its stored credentials.

        Reports the server version, whether the user is read-only and how long the check took. A failed
        check is an error that says what to fix; the troubleshoot_connection prompt walks through it.
        """
        ref = SourceRef(tenant_id=backend.tenant(), connection_id=connection_id)
        source = await backend.call(topology.sources_get, ref, SourceInfo)
        status = await backend.call(
            topology.sources_check_registered, ref, ConnectionStatus, timeout=settings.source_timeout_seconds
        )
        if not status.ok:
            address = source.address
            raise SourceError(
                f"source {connection_id} ({address.user}@{address.host}:{address.port}/{address.database}) did not "
                "accept the stored credentials: check that the server is up and the password unchanged; to change "
                "them, register the source again with connect_postgres"
            )
        return ConnectionTestResult.of(source, status)

    @server.tool(annotations=READS_SOURCE.model_copy(update={"title": "List a source's tables"}))
    @guard
    async def list_source_tables(
        connection_id: ConnectionId,
        offset: Offset = 0,
        limit: Annotated[int, Field(description="Most tables to return.", ge=1, le=500)] = 100,
    ) -> SourceTablesResult:
        """List the tables and views of a source database that its user can read, with their columns.

        Sorted by schema and name; pass next_offset as offset for the next page.
        """
        ref = SourceRef(tenant_id=backend.tenant(), connection_id=connection_id)
        tables = await backend.call(
            topology.source_tables_list, ref, SourceTables, timeout=settings.source_timeout_seconds
        )
        return SourceTablesResult.of(connection_id, tables, offset, limit)

    @server.tool(annotations=READS_SOURCE.model_copy(update={"title": "Describe a source table"}))
    @guard
    async def describe_source_table(
        connection_id: ConnectionId,
        table_name: SourceTableName,
        sample_size: Annotated[
            int, Field(description="Distinct sample values to show per column (0 for none).", ge=0, le=50)
        ] = 5,
    ) -> SourceTableDetailResult:
        """Show one table of a source in depth, before syncing it: columns and types, primary and foreign keys,
        indexes, and a few distinct sample values per column. Reads the source only."""
        request = DescribeSourceTable(
            tenant_id=backend.tenant(), connection_id=connection_id, table_name=table_name, sample_size=sample_size
        )
        detail = await backend.call(
            topology.source_table_describe, request, SourceTableDetail, timeout=settings.source_timeout_seconds
        )
        return SourceTableDetailResult.of(connection_id, detail)

    @server.tool(annotations=READS_SOURCE.model_copy(update={"title": "Query a source database"}))
    @guard
    async def query_source(
        connection_id: ConnectionId,
        sql: Annotated[
            str,
            Field(
                description=(
                    "One read-only statement in PostgreSQL SQL, e.g. `SELECT status, count(*) FROM orders GROUP BY 1`. "
                    "It runs in a READ ONLY transaction with a timeout."
                ),
                min_length=1,
            ),
        ],
        max_rows: Annotated[int, Field(description="Most rows to return.", ge=1, le=10_000)] = 100,
    ) -> SqlQueryResult:
        """Run one read-only SQL query directly on a source database, to explore it before syncing.

        For analysis of synced data use query_sql on the lakehouse instead: it does not load the source.
        """
        request = QuerySource(tenant_id=backend.tenant(), connection_id=connection_id, sql=sql, max_rows=max_rows)
        result = await backend.call(
            topology.source_query, request, QueryResult, timeout=settings.source_timeout_seconds, cancels=True
        )
        return SqlQueryResult.of(result)
