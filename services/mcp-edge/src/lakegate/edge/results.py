"""What the tools return: pydantic models that become each tool's output schema.

They are the edge's own, shaped for a model reading them, and built from the message contracts
the other services answer with; contracts carry versions and tenant ids a tool caller needs not see.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from lakegate.common.contracts.runs import RunStatus, RunView, SyncMode
from lakegate.common.contracts.sources import ConnectionStatus, SourceInfo, SourceTables
from lakegate.common.contracts.warehouse import QueryResult, TableDescription, TableList
from pydantic import BaseModel, ConfigDict, Field


class ToolResult(BaseModel):
    model_config = ConfigDict(frozen=True)


class ConnectionResult(ToolResult):
    """A PostgreSQL source that was checked and registered."""

    connection_id: str = Field(description="Id of the source; pass it to the other tools.")
    name: str = Field(description="Short name of the source; bronze tables are named `<name>_<table>`.")
    host: str
    port: int
    database: str
    user: str
    server_version: str = Field(description="PostgreSQL server version, e.g. '16.4'.")
    read_only: bool = Field(description="True when the user cannot write to any table of the database.")
    warnings: list[str] = Field(default_factory=list, description="Things worth fixing, though nothing failed.")

    @classmethod
    def of(cls, source: SourceInfo, status: ConnectionStatus) -> ConnectionResult:
        warnings = (
            []
            if status.read_only
            else [
                f"user {source.address.user!r} can write to database {source.address.database!r}; lakegate "
                "only reads, but a user with read-only grants limits what a leaked password can do"
            ]
        )
        return cls(
            connection_id=source.connection_id,
            name=source.name,
            host=source.address.host,
            port=source.address.port,
            database=source.address.database,
            user=source.address.user,
            server_version=status.server_version,
            read_only=status.read_only,
            warnings=warnings,
        )


class ConnectionTestResult(ToolResult):
    """A registered source that lakegate reached with its stored credentials."""

    status: Literal["ok"] = "ok"
    connection_id: str
    name: str
    host: str
    port: int
    database: str
    user: str
    table_count: int = Field(description="Tables and views the user can read.")
    latency_ms: float = Field(
        description="Round trip from the edge through the extractor to the source and back, in milliseconds."
    )

    @classmethod
    def of(cls, source: SourceInfo, tables: SourceTables, latency_ms: float) -> ConnectionTestResult:
        return cls(
            connection_id=source.connection_id,
            name=source.name,
            host=source.address.host,
            port=source.address.port,
            database=source.address.database,
            user=source.address.user,
            table_count=len(tables.tables),
            latency_ms=round(latency_ms, 1),
        )


class SourceColumnInfo(ToolResult):
    name: str
    type: str = Field(description="PostgreSQL type, e.g. 'numeric(38,10)'.")
    nullable: bool
    synced_as: str = Field(description="The Arrow type the column is synced as.")
    mapped: bool = Field(description="False when the type has no explicit mapping and is synced as text.")


class SourceTableInfo(ToolResult):
    table_name: str = Field(description="`schema.table`; pass it to sync_table_to_bronze.")
    kind: str = Field(description="'table', 'view', 'materialized view' or 'partitioned table'.")
    row_estimate: int = Field(description="PostgreSQL's planner estimate; -1 when never analyzed.")
    columns: list[SourceColumnInfo]


class SourceTablesResult(ToolResult):
    """Tables of a source database the user can read."""

    connection_id: str
    tables: list[SourceTableInfo]

    @classmethod
    def of(cls, connection_id: str, tables: SourceTables) -> SourceTablesResult:
        return cls(
            connection_id=connection_id,
            tables=[
                SourceTableInfo(
                    table_name=f"{table.schema_name}.{table.name}",
                    kind=table.kind,
                    row_estimate=table.row_estimate,
                    columns=[
                        SourceColumnInfo(
                            name=column.name,
                            type=column.type,
                            nullable=column.nullable,
                            synced_as=column.arrow_type,
                            mapped=column.mapped,
                        )
                        for column in table.columns
                    ],
                )
                for table in tables.tables
            ],
        )


class SyncRunResult(ToolResult):
    """A sync run: finished, or still running with a handle to poll."""

    run_id: str = Field(description="Id of the run; pass it to get_sync_run.")
    status: RunStatus
    connection_id: str
    source_table: str = Field(description="`schema.table` in the source database.")
    bronze_table: str = Field(description="`<catalog>.bronze.<name>` in the lakehouse; query it with query_sql.")
    sync_mode: SyncMode
    row_count: int | None = None
    bytes: int | None = None
    error: str | None = Field(default=None, description="Why the run failed and what to do about it.")
    error_code: str | None = None
    created_at: datetime
    started_at: datetime | None = None
    finished_at: datetime | None = None
    duration_seconds: float | None = None
    hint: str | None = Field(default=None, description="What to do next.")

    @classmethod
    def of(cls, run: RunView) -> SyncRunResult:
        duration = None
        if run.finished_at is not None:
            duration = round((run.finished_at - (run.started_at or run.created_at)).total_seconds(), 3)
        return cls(
            run_id=run.run_id,
            status=run.status,
            connection_id=run.connection_id,
            source_table=run.source_table,
            bronze_table=str(run.target),
            sync_mode=run.sync_mode,
            row_count=run.row_count,
            bytes=run.bytes,
            error=run.error.message if run.error else None,
            error_code=run.error.code if run.error else None,
            created_at=run.created_at,
            started_at=run.started_at,
            finished_at=run.finished_at,
            duration_seconds=duration,
            hint=_next_step(run),
        )


def _next_step(run: RunView) -> str:
    if run.status == "succeeded":
        return f"query it with query_sql, e.g. SELECT * FROM {run.target} LIMIT 10"
    if run.status == "failed":
        return f"fix the cause, then call sync_table_to_bronze again; {run.target} is as it was before the run"
    return f"the run is still {run.status}; call get_sync_run with run_id {run.run_id!r} to follow it"


class ResultColumnInfo(ToolResult):
    name: str
    type: str = Field(description="Arrow type of the column, e.g. 'decimal128(38, 10)'.")


class SqlQueryResult(ToolResult):
    """Rows of a read-only query. Decimals and large integers are exact strings, timestamps ISO 8601."""

    columns: list[ResultColumnInfo]
    rows: list[list[Any]]
    row_count: int
    truncated: bool = Field(description="True when more rows existed than max_rows; narrow the query or add LIMIT.")

    @classmethod
    def of(cls, result: QueryResult) -> SqlQueryResult:
        return cls(
            columns=[ResultColumnInfo(name=c.name, type=c.type) for c in result.columns],
            rows=result.rows,
            row_count=result.row_count,
            truncated=result.truncated,
        )


class TableInfo(ToolResult):
    table_name: str = Field(description="`<catalog>.<layer>.<name>`, as written in SQL.")
    layer: str
    row_count: int
    size_bytes: int
    version: int | None = Field(default=None, description="Delta table version, when the warehouse has one.")


class TableListResult(ToolResult):
    """Tables of one layer of the caller's lakehouse catalog."""

    layer: str
    tables: list[TableInfo]

    @classmethod
    def of(cls, layer: str, listing: TableList) -> TableListResult:
        return cls(
            layer=layer,
            tables=[
                TableInfo(
                    table_name=str(t.ref),
                    layer=t.layer,
                    row_count=t.row_count,
                    size_bytes=t.size_bytes,
                    version=t.table_version,
                )
                for t in listing.tables
            ],
        )


class ColumnInfo(ToolResult):
    name: str
    type: str
    nullable: bool


class TableDescriptionResult(ToolResult):
    """Columns and statistics of one lakehouse table."""

    table_name: str = Field(description="`<catalog>.<layer>.<name>`, as written in SQL.")
    columns: list[ColumnInfo]
    row_count: int
    size_bytes: int
    version: int | None = None
    properties: dict[str, str] = Field(default_factory=dict)

    @classmethod
    def of(cls, description: TableDescription) -> TableDescriptionResult:
        return cls(
            table_name=str(description.ref),
            columns=[ColumnInfo(name=c.name, type=c.type, nullable=c.nullable) for c in description.columns],
            row_count=description.row_count,
            size_bytes=description.size_bytes,
            version=description.table_version,
            properties=description.properties,
        )
