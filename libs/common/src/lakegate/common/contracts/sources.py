"""Sources: PostgreSQL databases a tenant registers, and what can be learned about them."""

from __future__ import annotations

from datetime import datetime

from lakegate.common.contracts.base import Message, TenantScoped
from pydantic import Field, SecretStr, field_serializer


class SourceAddress(Message):
    """Where a PostgreSQL source lives, without its secret."""

    host: str = Field(description="Host name or IP address of the PostgreSQL server.", min_length=1)
    port: int = Field(default=5432, description="TCP port of the PostgreSQL server.", ge=1, le=65535)
    database: str = Field(description="Database name.", min_length=1)
    user: str = Field(description="User to connect as; it should have read-only rights.", min_length=1)


class SourceLogin(Message):
    """An address and the password to use with it. The password is sent, never logged."""

    address: SourceAddress
    password: SecretStr = Field(description="Password of `user`.")

    @field_serializer("password", when_used="json")
    def _reveal(self, value: SecretStr) -> str:
        return value.get_secret_value()


class CheckSource(TenantScoped):
    """Extractor: try to connect with these credentials before anything is stored."""

    login: SourceLogin


class RegisterSource(TenantScoped):
    """Catalog: store a source with its password encrypted at rest."""

    name: str = Field(description="Short name of the source, unique per tenant; used in bronze table names.")
    login: SourceLogin


class SourceRef(TenantScoped):
    """Names one registered source of a tenant."""

    connection_id: str = Field(description="Id returned by connect_postgres.")


class SourceInfo(Message):
    """A registered source as anyone may see it: no secret."""

    connection_id: str
    tenant_id: str
    name: str
    address: SourceAddress
    created_at: datetime


class SourceList(Message):
    sources: list[SourceInfo]


class ListSources(TenantScoped):
    pass


class SourceCredentials(Message):
    """Catalog → extractor only: a source with its decrypted password."""

    source: SourceInfo
    login: SourceLogin


class ConnectionStatus(Message):
    """The outcome of a connection check."""

    ok: bool
    server_version: str = Field(description="PostgreSQL server version, e.g. '15.18'.")
    database: str
    user: str
    read_only: bool = Field(description="True when the user cannot write to any table of the database.")
    latency_ms: float


class SourceColumn(Message):
    name: str
    type: str = Field(description="PostgreSQL type as `format_type` prints it, e.g. 'numeric(38,10)'.")
    nullable: bool
    arrow_type: str = Field(description="The Arrow type lakegate syncs this column as.")
    mapped: bool = Field(description="False when the type has no explicit mapping and is synced as text.")


class SourceTable(Message):
    schema_name: str
    name: str
    kind: str = Field(description="'table', 'view', 'materialized view' or 'partitioned table'.")
    row_estimate: int = Field(description="PostgreSQL's planner estimate; -1 when never analyzed.")
    columns: list[SourceColumn]


class SourceTables(Message):
    tables: list[SourceTable]
