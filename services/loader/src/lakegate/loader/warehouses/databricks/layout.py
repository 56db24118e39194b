"""Where a tenant's tables live in Unity Catalog, and the statements that create that place.

    layout               lakegate name                 Databricks name
    catalog_per_tenant   tenant_acme.bronze.orders     `tenant_acme`.`bronze`.`orders`
    schema_per_tenant    tenant_acme.bronze.orders     `<catalog>`.`tenant_acme_bronze`.`orders`

Each tenant also has a staging schema (`lakegate_staging`, or `tenant_acme_lakegate_staging`) holding
the Volume that Parquet parts are uploaded to and the per-run staging tables. Callers never see it:
the SQL guard lets queries name only bronze, silver and gold.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from lakegate.common.contracts.runs import TableRef
from lakegate.common.names import LAYERS
from lakegate.loader.sqlguard import READ_DIALECT
from lakegate.loader.sqltypes import quote
from sqlglot import exp


def literal(text: str) -> str:
    """A Databricks string literal."""
    return exp.Literal.string(text).sql(READ_DIALECT)


@dataclass(frozen=True)
class Location:
    """A table, view or volume by its Databricks name."""

    catalog: str
    schema: str
    name: str

    @property
    def sql(self) -> str:
        return f"{quote(self.catalog)}.{quote(self.schema)}.{quote(self.name)}"

    def __str__(self) -> str:
        return f"{self.catalog}.{self.schema}.{self.name}"


@dataclass(frozen=True)
class Namespace:
    """A schema by its Databricks name."""

    catalog: str
    schema: str

    @property
    def sql(self) -> str:
        return f"{quote(self.catalog)}.{quote(self.schema)}"

    def __str__(self) -> str:
        return f"{self.catalog}.{self.schema}"


@dataclass(frozen=True)
class TenantLayout:
    """Maps lakegate's `<tenant catalog>.<layer>.<table>` names to Unity Catalog names."""

    kind: Literal["catalog_per_tenant", "schema_per_tenant"] = "catalog_per_tenant"
    catalog: str | None = None
    staging_schema: str = "lakegate_staging"
    staging_volume: str = "files"

    def layer(self, tenant_catalog: str, layer: str) -> Namespace:
        """The schema that holds one layer of a tenant."""
        if self.kind == "catalog_per_tenant":
            return Namespace(tenant_catalog, layer)
        assert self.catalog is not None, "schema_per_tenant needs a catalog"
        return Namespace(self.catalog, f"{tenant_catalog}_{layer}")

    def staging(self, tenant_catalog: str) -> Namespace:
        """The tenant's staging schema."""
        return self.layer(tenant_catalog, self.staging_schema)

    def table(self, ref: TableRef) -> Location:
        """Where a lakegate table lives."""
        namespace = self.layer(ref.catalog, ref.schema_name)
        return Location(namespace.catalog, namespace.schema, ref.name)

    def volume(self, tenant_catalog: str) -> Location:
        """The tenant's staging Volume."""
        staging = self.staging(tenant_catalog)
        return Location(staging.catalog, staging.schema, self.staging_volume)

    def volume_path(self, tenant_catalog: str, *parts: str) -> str:
        """`/Volumes/<catalog>/<schema>/<volume>/<parts...>`."""
        volume = self.volume(tenant_catalog)
        return "/".join(["/Volumes", volume.catalog, volume.schema, volume.name, *parts])

    def setup_statements(self, tenant_catalog: str) -> list[str]:
        """Create the tenant's place on first use: catalog (per-tenant layout), schemas, staging Volume."""
        statements = []
        if self.kind == "catalog_per_tenant":
            statements.append(f"CREATE CATALOG IF NOT EXISTS {quote(tenant_catalog)}")
        for layer in (*LAYERS, self.staging_schema):
            statements.append(f"CREATE SCHEMA IF NOT EXISTS {self.layer(tenant_catalog, layer).sql}")
        statements.append(f"CREATE VOLUME IF NOT EXISTS {self.volume(tenant_catalog).sql}")
        return statements

    def physical(self, tree: exp.Expr) -> exp.Expr:
        """A copy of a guarded tree with every `<tenant catalog>.<layer>.<t>` written by its Databricks name."""
        copied = tree.copy()
        for table in copied.find_all(exp.Table):
            if not table.catalog:  # a CTE
                continue
            namespace = self.layer(table.catalog, table.db)
            table.set("catalog", exp.to_identifier(namespace.catalog, quoted=True))
            table.set("db", exp.to_identifier(namespace.schema, quoted=True))
        return copied
