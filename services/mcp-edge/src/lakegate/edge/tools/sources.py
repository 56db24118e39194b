"""Tools about PostgreSQL sources: register one, check it, list and explore its tables read-only."""

from __future__ import annotations

from typing import Annotated

from lakegate.common.contracts.explore import DescribeSourceTable, QuerySource, SourceTableDetail
from lakegate.common.contracts.sources import (
    SECRET_REFERENCE_HELP,
    CheckSource,
    ConnectionStatus,
    RegisterSource,
    SourceAddress,
    SourceInfo,
    SourceLogin,
    SourceRef,
    SourceTables,
    check_secret_reference,
)
from lakegate.common.contracts.warehouse import QueryResult
from lakegate.common.errors import InvalidInput, LakegateError, SourceError
from lakegate.edge.backend import Backend
from lakegate.edge.password_pages import ask_password
from lakegate.edge.results.base import Offset
from lakegate.edge.results.sources import (
    ConnectionResult,
    ConnectionTestResult,
    SourceTableDetailResult,
    SourceTablesResult,
)
from lakegate.edge.results.warehouse import SqlQueryResult, rows_answer
from lakegate.edge.tools import SQL_MAX_CHARS
from mcp.server.mcpserver import Context, MCPServer
from mcp.types import CallToolResult, ToolAnnotations
from mcp_types import InputRequiredResult
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
        ctx: Context,
        name: Annotated[
            str,
            Field(
                description="Short name for the source, unique among yours; bronze tables are named `<name>_<table>`.",
                min_length=1,
                max_length=40,
            ),
        ],
        host: Annotated[
            str,
            # 253 characters is the longest DNS name; a longer host could never be reached.
            Field(description="Host name or IP address of the PostgreSQL server.", min_length=1, max_length=253),
        ],
        database: Annotated[str, Field(description="Database to read from.", min_length=1)],
        user: Annotated[
            str, Field(description="User to connect as; a user with read-only grants is best.", min_length=1)
        ],
        password: Annotated[
            SecretStr | None,
            Field(
                description="Password of the user; stored encrypted, never shown. Better left out: pass password_ref, "
                "or neither and the user types it into a one-time page of lakegate's, never into the conversation."
            ),
        ] = None,
        port: Annotated[int, Field(description="TCP port of the PostgreSQL server.", ge=1, le=65535)] = 5432,
        password_ref: Annotated[
            str | None,
            Field(
                description=f"Instead of password: where lakegate's extractor reads it, {SECRET_REFERENCE_HELP}, "
                "e.g. `env:LAKEGATE_SECRET_<TENANT>_SHOP` (your tenant id in capitals). Resolved on the server at "
                "every connection; only the reference is stored."
            ),
        ] = None,
    ) -> ConnectionResult | InputRequiredResult:
        """Register a PostgreSQL database as a source, after checking that lakegate can log in to it.

        Nothing is stored when the check fails. Returns the connection_id the other tools take. Without
        password and password_ref, the user gets a one-time page to type the password into (MCP URL
        elicitation), so it never passes through the conversation.
        """
        tenant = backend.tenant()
        address = SourceAddress(host=host, port=port, database=database, user=user)
        if password is None and password_ref is None:
            typed = await ask_password(
                ctx, backend.password_pages, tenant, address, timeout=settings.password_page_seconds
            )
            if isinstance(typed, InputRequiredResult):
                return typed
            password = typed
        login = source_login(backend, tenant, address, password, password_ref)
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
                max_length=SQL_MAX_CHARS,
            ),
        ],
        max_rows: Annotated[int, Field(description="Most rows to return.", ge=1, le=10_000)] = 100,
    ) -> Annotated[CallToolResult, SqlQueryResult]:
        """Run one read-only SQL query directly on a source database, to explore it before syncing.

        For analysis of synced data use query_sql on the lakehouse instead: it does not load the source.
        """
        request = QuerySource(tenant_id=backend.tenant(), connection_id=connection_id, sql=sql, max_rows=max_rows)
        result = await backend.call(
            topology.source_query, request, QueryResult, timeout=settings.source_timeout_seconds, cancels=True
        )
        return rows_answer(result, settings.answer_max_bytes, "query_source")


def source_login(
    backend: Backend, tenant: str, address: SourceAddress, password: SecretStr | None, password_ref: str | None
) -> SourceLogin:
    """The login of connect_postgres's arguments; one of password and password_ref, checked with clear errors."""
    if password is not None and password_ref is not None:
        raise InvalidInput("pass either password or password_ref to connect_postgres, not both")
    if password_ref is not None:
        try:
            return SourceLogin(address=address, password_ref=check_secret_reference(password_ref.strip()))
        except ValueError as exc:
            raise InvalidInput(f"password_ref: {exc}") from None
    if password is None:
        raise InvalidInput(
            "connect_postgres needs the password: pass password_ref "
            f"(e.g. `env:LAKEGATE_SECRET_{tenant.upper()}_SHOP`), or password"
        )
    # Sealed here, at the edge of lakegate: from now on only the extractor can read the password.
    return SourceLogin(
        address=address, sealed_password=backend.sealer().seal(password, tenant_id=tenant, address=address)
    )
