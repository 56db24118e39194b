"""Results of the source tools: registered PostgreSQL databases, their checks, tables and rows."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal, Self

from lakegate.common.contracts.explore import SourceTableDetail
from lakegate.common.contracts.sources import ConnectionStatus, SourceInfo, SourceTable, SourceTables
from lakegate.edge.results.base import ToolResult, page
from pydantic import Field


def _read_only_warnings(source: SourceInfo, status: ConnectionStatus) -> list[str]:
    if status.read_only:
        return []
    return [
        f"user {source.address.user!r} can write to database {source.address.database!r}; lakegate only reads, "
        "but a user with read-only grants limits what a leaked password can do"
    ]


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
    def of(cls, source: SourceInfo, status: ConnectionStatus) -> Self:
        return cls(
            connection_id=source.connection_id,
            name=source.name,
            host=source.address.host,
            port=source.address.port,
            database=source.address.database,
            user=source.address.user,
            server_version=status.server_version,
            read_only=status.read_only,
            warnings=_read_only_warnings(source, status),
            **cls._extra(status),
        )

    @classmethod
    def _extra(cls, status: ConnectionStatus) -> dict[str, Any]:
        return {}


class ConnectionTestResult(ConnectionResult):
    """A registered source that lakegate reached with its stored credentials."""

    status: Literal["ok"] = "ok"
    latency_ms: float = Field(description="How long the extractor took to log in and ask, in milliseconds.")

    @classmethod
    def _extra(cls, status: ConnectionStatus) -> dict[str, Any]:
        return {"latency_ms": round(status.latency_ms, 1)}


class SourceSummary(ToolResult):
    connection_id: str = Field(description="Pass it to the source tools and sync_table_to_bronze.")
    name: str
    host: str
    port: int
    database: str
    user: str
    created_at: datetime

    @classmethod
    def of(cls, source: SourceInfo) -> SourceSummary:
        address = source.address
        return cls(
            connection_id=source.connection_id,
            name=source.name,
            host=address.host,
            port=address.port,
            database=address.database,
            user=address.user,
            created_at=source.created_at,
        )


class SourceListResult(ToolResult):
    """The PostgreSQL sources you registered."""

    sources: list[SourceSummary]
    total: int
    next_offset: int | None = Field(default=None, description="Pass as `offset` for the next page; None at the end.")

    @classmethod
    def of(cls, sources: list[SourceInfo], offset: int, limit: int) -> SourceListResult:
        chosen, next_offset = page(sorted(sources, key=lambda s: s.name), offset, limit)
        return cls(sources=[SourceSummary.of(s) for s in chosen], total=len(sources), next_offset=next_offset)


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

    @classmethod
    def of(cls, table: SourceTable) -> SourceTableInfo:
        return cls(
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


class SourceTablesResult(ToolResult):
    """Tables of a source database the user can read."""

    connection_id: str
    tables: list[SourceTableInfo]
    total: int = Field(description="Tables and views in all pages.")
    next_offset: int | None = Field(default=None, description="Pass as `offset` for the next page; None at the end.")

    @classmethod
    def of(cls, connection_id: str, tables: SourceTables, offset: int, limit: int) -> SourceTablesResult:
        ordered = sorted(tables.tables, key=lambda t: (t.schema_name, t.name))
        chosen, next_offset = page(ordered, offset, limit)
        return cls(
            connection_id=connection_id,
            tables=[SourceTableInfo.of(t) for t in chosen],
            total=len(ordered),
            next_offset=next_offset,
        )


class ForeignKeyInfo(ToolResult):
    name: str
    columns: list[str]
    references_table: str = Field(description="`schema.table` the key points to.")
    references_columns: list[str]


class IndexInfo(ToolResult):
    name: str
    columns: list[str]
    unique: bool
    primary: bool
    definition: str


class SourceTableDetailResult(ToolResult):
    """One source table in depth: columns, keys, indexes and a few sample values per column."""

    connection_id: str
    table_name: str = Field(description="`schema.table`; pass it to sync_table_to_bronze.")
    kind: str
    row_estimate: int = Field(description="PostgreSQL's planner estimate; -1 when never analyzed.")
    columns: list[SourceColumnInfo]
    primary_key: list[str] = Field(description="Empty when the table has none; merge syncs need one.")
    foreign_keys: list[ForeignKeyInfo]
    indexes: list[IndexInfo]
    samples: dict[str, list[Any]] = Field(description="A few distinct non-null values per column.")

    @classmethod
    def of(cls, connection_id: str, detail: SourceTableDetail) -> SourceTableDetailResult:
        table = SourceTableInfo.of(detail.table)
        return cls(
            connection_id=connection_id,
            table_name=table.table_name,
            kind=table.kind,
            row_estimate=table.row_estimate,
            columns=table.columns,
            primary_key=detail.primary_key,
            foreign_keys=[ForeignKeyInfo(**fk.model_dump(exclude={"version"})) for fk in detail.foreign_keys],
            indexes=[IndexInfo(**ix.model_dump(exclude={"version"})) for ix in detail.indexes],
            samples=detail.samples,
        )


class SourceStatusResult(ToolResult):
    """A registered source and the outcome of checking it now; a failed check is data here, not an error."""

    connection_id: str
    name: str
    host: str
    port: int
    database: str
    user: str
    reachable: bool = Field(description="True when lakegate logged in with the stored credentials just now.")
    server_version: str | None = None
    read_only: bool | None = None
    latency_ms: float | None = None
    error: str | None = Field(default=None, description="Why the check failed.")
    error_code: str | None = None
    checked_at: datetime
    next_steps: list[str] = Field(default_factory=list, description="What to do, first things first.")
