"""`DatabricksWarehouse`: the `Warehouse` and `Builder` interfaces on a Databricks SQL warehouse.

Loads stage Parquet parts in the tenant's Volume and commit them with `COPY INTO` and one
replace / append / `MERGE` statement (see `loads`). Queries pass the same guard as everywhere
(`sqlguard`), are rendered in Databricks SQL with the tenant's real catalog and schema names
(`layout`), run with a deadline and read back as Arrow with the row and byte caps. Listings and
descriptions come from `information_schema`, `SHOW TBLPROPERTIES` and `DESCRIBE HISTORY`. Gold views
are Databricks views.
"""

from __future__ import annotations

import asyncio
import logging
import re
import uuid
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, field

import pyarrow as pa
from lakegate.common.contracts.runs import TableRef
from lakegate.common.contracts.warehouse import (
    QueryResult,
    TableDescription,
    TableList,
    TableSummary,
    WarehouseColumn,
)
from lakegate.common.errors import InvalidInput, LakegateError, NotFound, WarehouseError
from lakegate.common.names import warehouse_identifier
from lakegate.loader.metastatements import describe_columns, show_schemas, show_tables
from lakegate.loader.results import query_result
from lakegate.loader.sqlguard import (
    DescribeTarget,
    ReadQuery,
    ShowTables,
    check,
    render_databricks,
    unknown_table,
)
from lakegate.loader.sqlsize import SizeLimits
from lakegate.loader.sqltypes import quote
from lakegate.loader.tablenames import check_layer, parse_table_name
from lakegate.loader.tablestats import count_all, read_stats, select_all, stats_query
from lakegate.loader.warehouses.base import LoadPlan, LoadResult, Written
from lakegate.loader.warehouses.databricks import loads
from lakegate.loader.warehouses.databricks import statements as sql
from lakegate.loader.warehouses.databricks.client import Session, SqlClient
from lakegate.loader.warehouses.databricks.layout import Location, TenantLayout, literal
from lakegate.loader.warehouses.databricks.parts import stage_parts
from lakegate.loader.warehouses.databricks.typemap import JsonType, columns, staged_schema
from lakegate.loader.warehouses.databricks.volumes import VolumeFiles
from sqlglot import exp

log = logging.getLogger(__name__)
_STATISTICS = re.compile(r"(\d+)\s+bytes", re.IGNORECASE)


@dataclass(frozen=True)
class Limits:
    """Deadlines and caps: queries (and previews, statistics), transforms and views, loads."""

    query_seconds: float = 60.0
    transform_seconds: float = 600.0
    load_seconds: float = 3600.0
    max_result_bytes: int = 4 * 1024 * 1024
    parquet_file_bytes: int = 32 * 1024 * 1024
    json_type: JsonType = "string"
    sql: SizeLimits = field(default_factory=SizeLimits)


def _utc(table: pa.Table) -> pa.Table:
    """Zoned timestamps labelled UTC (Databricks says Etc/UTC), so results read the same on every warehouse."""
    fields = [
        pa.field(f.name, pa.timestamp(f.type.unit, tz="UTC"), f.nullable)
        if pa.types.is_timestamp(f.type) and f.type.tz is not None
        else f
        for f in table.schema
    ]
    return table.cast(pa.schema(fields)) if fields != list(table.schema) else table


def _limited(tree: exp.Expr, limit: int | None) -> exp.Select:
    wrapped = exp.select("*").from_(exp.Subquery(this=tree, alias=exp.TableAlias(this=exp.to_identifier("_lg_result"))))
    return wrapped.limit(limit) if limit is not None else wrapped


class DatabricksWarehouse:
    """Tenants' bronze, silver and gold in Unity Catalog; implements `Warehouse` and `Builder`."""

    def __init__(self, client: SqlClient, volume: VolumeFiles, layout: TenantLayout, limits: Limits | None = None):
        self.client, self.volume, self.layout = client, volume, layout
        self.limits = limits or Limits()
        self._ready: set[str] = set()
        self._ready_lock = asyncio.Lock()

    async def close(self) -> None:
        """Close the pooled connections."""
        await asyncio.to_thread(self.client.close)

    # names and metadata (blocking: call in a worker thread)

    def _objects(self, session: Session, catalog: str, layer: str) -> dict[str, str]:
        """Tables and views of one layer: name → `table` or `view`."""
        namespace = self.layout.layer(catalog, check_layer(layer))
        statement = (
            f"SELECT table_name, table_type FROM {quote(namespace.catalog)}.`information_schema`.`tables` "
            f"WHERE table_schema = {literal(namespace.schema)} ORDER BY table_name"
        )
        try:
            rows = session.table(statement, doing=f"listing the {layer} layer of {catalog}").to_pylist()
        except NotFound:
            return {}  # the tenant's catalog does not exist yet
        return {str(r["table_name"]): "view" if str(r["table_type"]).upper() == "VIEW" else "table" for r in rows}

    def _existing(self, session: Session, catalog: str, table_name: str) -> tuple[TableRef, str]:
        ref = parse_table_name(catalog, table_name)
        objects = self._objects(session, catalog, ref.schema_name)
        if ref.name not in objects:
            raise NotFound(unknown_table(catalog, ref.schema_name, ref.name, sorted(objects)))
        return ref, objects[ref.name]

    def _render(self, query: ReadQuery, limit: int | None) -> str:
        return render_databricks(_limited(self.layout.physical(query.statement), limit))

    def _capped(self, session: Session, query: ReadQuery, max_rows: int, doing: str) -> QueryResult:
        statement = self._render(query, max_rows + 1)
        table, cut = session.capped(statement, doing=doing, rows=max_rows, arrow_bytes=4 * self.limits.max_result_bytes)
        return query_result(_utc(table), max_rows, self.limits.max_result_bytes, more=cut)

    def _schema(self, session: Session, ref: TableRef) -> pa.Schema:
        location = self.layout.table(ref)
        schema = loads.read_schema(session, location, f"reading the columns of {ref}")
        if schema is None:
            raise NotFound(f"table {ref} does not exist")
        return _utc(schema.empty_table()).schema

    def _count(self, session: Session, ref: TableRef) -> int:
        counted = session.table(self._render(count_all(ref), None), doing=f"counting the rows of {ref}")
        return int(counted.column("n")[0].as_py())

    def _size(self, session: Session, ref: TableRef) -> int:
        """Bytes of the table's files, when `DESCRIBE TABLE EXTENDED` reports them; 0 otherwise."""
        rows = session.table(sql.describe_extended(self.layout.table(ref)), doing=f"describing {ref}").to_pylist()
        for row in rows:
            if str(row.get("col_name") or "").strip().lower() == "statistics":
                found = _STATISTICS.search(str(row.get("data_type") or ""))
                return int(found[1]) if found else 0
        return 0

    def _version(self, session: Session, ref: TableRef) -> loads.HistoryEntry | None:
        entries = loads.read_history(session, self.layout.table(ref), f"reading the history of {ref}", limit=1)
        return entries[0] if entries else None

    async def _ensure_tenant(self, catalog: str) -> None:
        """Create the tenant's catalog (or schemas) and staging Volume once per process."""
        if catalog in self._ready:
            return
        async with self._ready_lock:
            if catalog in self._ready:
                return

            def create(session: Session) -> None:
                for statement in self.layout.setup_statements(catalog):
                    session.execute(statement, doing=f"preparing {catalog} ({statement.split(' IF ')[0].lower()})")

            await self.client.run(create, timeout=self.limits.query_seconds, doing=f"preparing {catalog}")
            self._ready.add(catalog)

    # Warehouse

    async def load(self, plan: LoadPlan, batches: AsyncIterator[pa.RecordBatch]) -> LoadResult:
        """Stage the batches as Parquet in the Volume, then commit them in one statement tagged with the run."""
        target = self.layout.table(plan.target)
        cols = columns(plan.schema, plan.target, self.limits.json_type)
        if plan.mode == "merge" and not plan.keys:
            raise InvalidInput(
                f"a merge sync upserts on the primary key, and the source of {plan.target} has none; add a primary "
                "key to the source table, or sync it in full or incremental mode"
            )
        if plan.source_keys is not None:
            raise InvalidInput(
                f"detect_deletes is not available on the Databricks warehouse yet, so run {plan.run_id} loaded "
                f"nothing into {plan.target}: sync without detect_deletes, or in full mode to drop deleted rows"
            )
        await self._ensure_tenant(plan.target.catalog)
        doing = f"loading run {plan.run_id} into {plan.target}"
        earlier = await self.client.run(
            lambda session: loads.already_committed(session, target, plan.run_id),
            timeout=self.limits.query_seconds,
            doing=doing,
        )
        if earlier is not None:
            return earlier
        folder = warehouse_identifier(plan.run_id)
        directory = self.layout.volume_path(plan.target.catalog, "runs", folder)
        staging = self.layout.staging(plan.target.catalog)
        commit = loads.Commit(
            ref=plan.target,
            target=target,
            stage=Location(staging.catalog, staging.schema, f"stage_{folder}"),
            cols=cols,
            mode=plan.mode,
            run_id=plan.run_id,
            keys=plan.keys,
            cursor=plan.cursor,
        )
        try:
            # A crashed earlier attempt may have left parts behind; this attempt writes them all again.
            await asyncio.to_thread(self.volume.remove_tree, directory)
            staged = await stage_parts(
                self.volume,
                directory,
                staged_schema(cols),
                batches,
                target=plan.target,
                file_bytes=self.limits.parquet_file_bytes,
            )
            return await self.client.run(
                lambda session: loads.commit(session, commit, staged), timeout=self.limits.load_seconds, doing=doing
            )
        finally:
            await self._clean(commit.stage, directory)

    async def _clean(self, stage: Location, directory: str) -> None:
        """Drop the staging table and the staged files; what cannot be removed now is removed by the next try."""
        try:
            await self.client.run(
                lambda session: session.execute(sql.drop_table(stage), doing=f"dropping {stage}"),
                timeout=self.limits.query_seconds,
                doing=f"dropping {stage}",
            )
            await asyncio.to_thread(self.volume.remove_tree, directory)
        except (LakegateError, OSError) as exc:
            log.warning("could not clean up after a load (%s); it is retried by the next load of the run", exc)

    async def query(self, catalog: str, sql_text: str, max_rows: int, timeout: float) -> QueryResult:
        """Guard the statement, run it over the tenant's catalog and return at most `max_rows` rows."""

        def run(session: Session) -> QueryResult:
            checked = check(
                sql_text, catalog, lambda layer: sorted(self._objects(session, catalog, layer)), self.limits.sql
            )
            if isinstance(checked, ReadQuery):
                return self._capped(session, checked, max_rows, "the query")
            if isinstance(checked, ShowTables):
                names = sorted(self._objects(session, catalog, checked.layer))
                table = show_tables(checked.layer, names, checked.pattern)
            elif isinstance(checked, DescribeTarget):
                table = describe_columns(self._schema(session, checked.ref))
            else:
                table = show_schemas()
            return query_result(table, max_rows, self.limits.max_result_bytes)

        return await self.client.run(run, timeout=timeout, doing="the query")

    async def preview(self, catalog: str, table_name: str, limit: int) -> QueryResult:
        """The first `limit` rows of one table or view."""

        def run(session: Session) -> QueryResult:
            ref, _ = self._existing(session, catalog, table_name)
            return self._capped(session, select_all(ref), limit, f"previewing {ref}")

        return await self.client.run(run, timeout=self.limits.query_seconds, doing=f"previewing {table_name}")

    async def list_tables(self, catalog: str, layer: str, *, offset: int = 0, limit: int = 100) -> TableList:
        """One page of a layer's tables and views, with row counts, sizes and versions."""
        layer = check_layer(layer)

        def run(session: Session) -> TableList:
            objects = self._objects(session, catalog, layer)
            names = sorted(objects)
            page = names[offset : offset + limit]
            found = []
            for name in page:
                ref = TableRef(catalog=catalog, schema_name=layer, name=name)
                found.append(self._summary(session, ref, objects[name]))
            more = offset + limit < len(names)
            return TableList(tables=found, next_offset=offset + limit if more else None)

        return await self.client.run(run, timeout=self.limits.query_seconds, doing=f"listing {catalog}.{layer}")

    def _summary(self, session: Session, ref: TableRef, kind: str) -> TableSummary:
        if kind == "view":
            return TableSummary(
                ref=ref, layer=ref.schema_name, row_count=self._view_rows(session, ref), size_bytes=0, kind="view"
            )
        latest = self._version(session, ref)
        return TableSummary(
            ref=ref,
            layer=ref.schema_name,
            row_count=self._count(session, ref),
            size_bytes=self._size(session, ref),
            table_version=latest.version if latest else None,
        )

    def _view_rows(self, session: Session, ref: TableRef) -> int:
        """A view's rows, counted now; -1 when counting fails."""
        try:
            return self._count(session, ref)
        except (WarehouseError, NotFound, InvalidInput):
            return -1

    async def describe(self, catalog: str, table_name: str, *, with_stats: bool = False) -> TableDescription:
        """Columns, row count, size, version and properties of one table or view; statistics when asked."""

        def run(session: Session) -> TableDescription:
            ref, kind = self._existing(session, catalog, table_name)
            schema = self._schema(session, ref)
            columns_ = [WarehouseColumn(name=f.name, type=str(f.type), nullable=f.nullable) for f in schema]
            row_count = -1
            if with_stats:
                stats = session.table(self._render(stats_query(ref, schema), None), doing=f"statistics of {ref}")
                row_count, columns_ = read_stats(schema, _utc(stats))
            if kind == "view":
                return TableDescription(
                    ref=ref,
                    columns=columns_,
                    row_count=row_count if with_stats else self._view_rows(session, ref),
                    size_bytes=0,
                    kind="view",
                    properties=self._view_properties(session, ref),
                )
            location = self.layout.table(ref)
            properties = loads.read_properties(session, location, f"describing {ref}") or {}
            latest = self._version(session, ref)
            if latest is not None:
                properties["delta.lastOperation"] = latest.operation
                if latest.timestamp is not None:
                    properties["delta.lastCommitTimestamp"] = str(latest.timestamp)
            return TableDescription(
                ref=ref,
                columns=columns_,
                row_count=row_count if with_stats else self._count(session, ref),
                size_bytes=self._size(session, ref),
                table_version=latest.version if latest else None,
                properties={k: v for k, v in properties.items() if k != sql.PENDING_KEY},
            )

        return await self.client.run(run, timeout=self.limits.query_seconds, doing=f"describing {table_name}")

    def _view_properties(self, session: Session, ref: TableRef) -> dict[str, str]:
        location = self.layout.table(ref)
        statement = (
            f"SELECT view_definition FROM {quote(location.catalog)}.`information_schema`.`views` "
            f"WHERE table_schema = {literal(location.schema)} AND table_name = {literal(location.name)}"
        )
        rows = session.table(statement, doing=f"reading the definition of {ref}").to_pylist()
        return {"view.definition": str(rows[0]["view_definition"])} if rows else {}

    # Builder

    def tables_in(self, catalog: str, layer: str) -> list[str]:
        """Names of the tables and views of one layer (blocks: one statement on the warehouse)."""
        return self.client.run_blocking(
            lambda session: sorted(self._objects(session, catalog, layer)),
            timeout=self.limits.query_seconds,
            doing=f"listing {catalog}.{layer}",
        )

    async def table_schema(self, ref: TableRef) -> tuple[pa.Schema, int]:
        """The schema and row count of an existing table; `NotFound` names the tables that exist."""

        def run(session: Session) -> tuple[pa.Schema, int]:
            objects = self._objects(session, ref.catalog, ref.schema_name)
            if ref.name not in objects:
                raise NotFound(unknown_table(ref.catalog, ref.schema_name, ref.name, sorted(objects)))
            return self._schema(session, ref), self._count(session, ref)

        return await self.client.run(run, timeout=self.limits.query_seconds, doing=f"reading {ref}")

    async def create_table_as(self, target: TableRef, query: ReadQuery, *, note: Mapping[str, str]) -> Written:
        """Replace `target` with the query's rows in one `CREATE OR REPLACE TABLE ... AS SELECT`."""
        await self._ensure_tenant(target.catalog)
        location = self.layout.table(target)

        def run(session: Session) -> Written:
            if self._objects(session, target.catalog, target.schema_name).get(target.name) == "view":
                raise InvalidInput(f"{target} is a view; choose another table name")
            body = render_databricks(self.layout.physical(query.statement))
            session.execute(
                f"CREATE OR REPLACE TABLE {location.sql} TBLPROPERTIES ({_note(note)}) AS {body}",
                doing=f"building {target}",
            )
            latest = self._version(session, target)
            return Written(
                self._schema(session, target), self._count(session, target), latest.version if latest else None
            )

        return await self.client.run(run, timeout=self.limits.transform_seconds, doing=f"building {target}")

    async def create_view(self, ref: TableRef, query: ReadQuery, *, definition: str) -> Written:
        """Check the view's query runs (no rows), then create or replace it as a Databricks view."""
        await self._ensure_tenant(ref.catalog)
        location = self.layout.table(ref)

        def run(session: Session) -> Written:
            if self._objects(session, ref.catalog, ref.schema_name).get(ref.name) == "table":
                raise InvalidInput(f"{ref} is a table, not a view; choose another view name")
            schema = session.table(self._render(query, 0), doing=f"checking view {ref}").schema
            body = render_databricks(self.layout.physical(query.statement))
            try:
                session.execute(f"CREATE OR REPLACE VIEW {location.sql} AS {body}", doing=f"creating view {ref}")
            except WarehouseError as exc:
                if "RECURSIVE_VIEW" in str(exc).upper():
                    raise InvalidInput(
                        f"gold views refer to each other in a cycle through {ref}; redefine one"
                    ) from exc
                raise
            return Written(_utc(schema.empty_table()).schema, None, None)

        return await self.client.run(run, timeout=self.limits.query_seconds, doing=f"creating view {ref}")

    async def replace_table(self, target: TableRef, data: pa.Table, *, note: Mapping[str, str]) -> Written:
        """Stage `data` as Parquet and replace `target` with it in one commit."""
        await self._ensure_tenant(target.catalog)
        cols = columns(data.schema, target, self.limits.json_type)
        folder = f"replace_{uuid.uuid4().hex}"
        directory = self.layout.volume_path(target.catalog, "replace", folder)
        staging = self.layout.staging(target.catalog)
        stage = Location(staging.catalog, staging.schema, f"stage_{folder}")
        location = self.layout.table(target)

        async def batches() -> AsyncIterator[pa.RecordBatch]:
            for batch in data.to_batches():
                yield batch

        try:
            staged = await stage_parts(
                self.volume,
                directory,
                staged_schema(cols),
                batches(),
                target=target,
                file_bytes=self.limits.parquet_file_bytes,
            )

            def run(session: Session) -> Written:
                if self._objects(session, target.catalog, target.schema_name).get(target.name) == "view":
                    raise InvalidInput(f"{target} is a view; choose another table name")
                doing = f"replacing {target}"
                session.execute(sql.create_stage(stage, cols), doing=doing)
                if staged.files:
                    session.execute(sql.copy_into(stage, staged.directory), doing=doing)
                session.execute(sql.replace_from(location, stage, cols, dict(note)), doing=doing)
                latest = self._version(session, target)
                return Written(self._schema(session, target), data.num_rows, latest.version if latest else None)

            return await self.client.run(run, timeout=self.limits.transform_seconds, doing=f"replacing {target}")
        finally:
            await self._clean(stage, directory)


def _note(note: Mapping[str, str]) -> str:
    return (
        ", ".join(f"{literal(k)} = {literal(v)}" for k, v in sorted(note.items())) or "'lakegate.operation' = 'build'"
    )
