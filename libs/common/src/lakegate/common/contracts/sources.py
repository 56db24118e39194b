"""Sources: PostgreSQL databases a tenant registers, and what can be learned about them."""

from __future__ import annotations

import re
from datetime import datetime

from lakegate.common.contracts.base import Message, TenantScoped
from pydantic import Field, model_validator

#: `env:NAME` (an environment variable) or `file:/absolute/path` (e.g. a mounted secret).
SECRET_REFERENCE = re.compile(r"env:[A-Za-z_][A-Za-z0-9_]*|file:/\S.*")
SECRET_REFERENCE_HELP = (
    "`env:NAME` (an environment variable of the extractor) or `file:/absolute/path` (a file the extractor can read, "
    "such as a mounted secret)"
)


class SourceAddress(Message):
    """Where a PostgreSQL source lives, without its secret."""

    host: str = Field(description="Host name or IP address of the PostgreSQL server.", min_length=1)
    port: int = Field(default=5432, description="TCP port of the PostgreSQL server.", ge=1, le=65535)
    database: str = Field(description="Database name.", min_length=1)
    user: str = Field(description="User to connect as; it should have read-only rights.", min_length=1)


def check_secret_reference(reference: str) -> str:
    """`reference` if it is `env:NAME` or `file:/path`; else an error that says the two forms."""
    if not SECRET_REFERENCE.fullmatch(reference):
        raise ValueError(f"{reference!r} is not a secret reference: write {SECRET_REFERENCE_HELP}")
    return reference


class SourceLogin(Message):
    """An address and how to log in to it: a password sealed for the extractor, or a secret reference.

    The password is never in clear on the wire: `lakegate.common.sealing` seals it with the extractor's
    public key, bound to the tenant and this address, so only the extractor can open it.
    """

    address: SourceAddress
    sealed_password: str | None = Field(
        default=None,
        description="The password, sealed with the extractor's public key for this tenant and address; only the "
        "extractor opens it.",
        min_length=1,
    )
    password_ref: str | None = Field(
        default=None, description=f"Instead of a password: where the extractor reads it, {SECRET_REFERENCE_HELP}."
    )

    @model_validator(mode="after")
    def _one_secret(self) -> SourceLogin:
        if (self.sealed_password is None) == (self.password_ref is None):
            raise ValueError("a source login carries either a sealed password or a password reference")
        return self


class CheckSource(TenantScoped):
    """Extractor: try to connect with these credentials before anything is stored."""

    login: SourceLogin


class RegisterSource(TenantScoped):
    """Catalog: store a source with its sealed secret, encrypted once more at rest."""

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
    password_ref: str | None = Field(
        default=None, description="The secret reference the password is read from; None when it is stored encrypted."
    )


class SourceList(Message):
    sources: list[SourceInfo]


class ListSources(TenantScoped):
    pass


class SourceCredentials(Message):
    """Catalog → extractor: a source with its sealed secret, which only the extractor can open."""

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
