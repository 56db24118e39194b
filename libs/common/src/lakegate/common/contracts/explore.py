"""Read-only exploration of a registered source before syncing it (answered by the extractor)."""

from __future__ import annotations

from typing import Any

from lakegate.common.contracts.base import Message, TenantScoped
from lakegate.common.contracts.rpc import CALL_ID_DESCRIPTION
from lakegate.common.contracts.sources import SourceTable
from pydantic import Field


class DescribeSourceTable(TenantScoped):
    connection_id: str
    table_name: str = Field(description="`table` or `schema.table` in the source.")
    sample_size: int = Field(default=5, ge=0, le=50, description="Distinct sample values to show per column.")


class ForeignKey(Message):
    name: str
    columns: list[str]
    references_table: str = Field(description="`schema.table` the key points to.")
    references_columns: list[str]


class IncomingForeignKey(Message):
    """A foreign key of another table that points at the described one."""

    name: str
    table: str = Field(description="`schema.table` that holds the key.")
    columns: list[str] = Field(description="The key's columns in that table.")
    references_columns: list[str] = Field(description="The described table's columns they point at.")


class SourceIndex(Message):
    name: str
    columns: list[str] = Field(description="Indexed columns; expressions appear as their SQL text.")
    unique: bool
    primary: bool
    definition: str = Field(description="`CREATE INDEX ...` as PostgreSQL prints it.")


class SourceTableDetail(Message):
    table: SourceTable
    primary_key: list[str]
    foreign_keys: list[ForeignKey]
    indexes: list[SourceIndex]
    samples: dict[str, list[Any]] = Field(
        description="A few distinct non-null values per column, as JSON values (same rules as query results)."
    )
    referenced_by: list[IncomingForeignKey] = Field(
        default_factory=list, description="Foreign keys of other tables that point at this one."
    )


class QuerySource(TenantScoped):
    """One read-only statement in PostgreSQL SQL, run in a READ ONLY transaction with a timeout."""

    connection_id: str
    sql: str
    max_rows: int = Field(default=100, ge=1, le=10_000)
    call_id: str | None = Field(default=None, description=CALL_ID_DESCRIPTION)
