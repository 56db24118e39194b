"""Building on the lakehouse: bronze → silver transforms, gold views and file uploads, with lineage.

Each request is checked and planned by the warehouse-neutral modules (`silver`, `sqlguard`,
`uploads`), carried out by a warehouse's `Builder` in one atomic step, and then recorded for the
catalog as a `DatasetRecord`. A request refused on the way changes nothing.
"""

from __future__ import annotations

import functools
import hashlib
from dataclasses import dataclass, field

import pyarrow as pa
from lakegate.common.callstops import in_thread
from lakegate.common.contracts.runs import ColumnMapping, TableRef
from lakegate.common.contracts.transforms import (
    CreateGoldView,
    DatasetRecord,
    GoldView,
    TransformResult,
    TransformToSilver,
    UploadFile,
    UploadResult,
)
from lakegate.common.errors import InvalidInput
from lakegate.common.names import tenant_catalog
from lakegate.loader.lineage import Lineage
from lakegate.loader.silver import plan_silver, silver_target
from lakegate.loader.sqlguard import check_select, render_databricks
from lakegate.loader.sqlsize import SizeLimits
from lakegate.loader.sqltypes import databricks_type
from lakegate.loader.tablenames import check_new_name, parse_table_name
from lakegate.loader.uploads import UploadLimits, decode_content, file_format, parse_upload
from lakegate.loader.warehouses.base import OPERATION_NOTE, Builder

#: Layers a gold view may read.
VIEW_SOURCES = ("silver", "gold")


def _columns(schema: pa.Schema, source_types: list[str]) -> list[ColumnMapping]:
    return [
        ColumnMapping(name=field.name, source_type=source, arrow_type=str(field.type), mapped=True)
        for field, source in zip(schema, source_types, strict=True)
    ]


@dataclass(frozen=True)
class Curator:
    """Transforms, views and uploads over one warehouse, each recorded with the catalog."""

    warehouse: Builder
    lineage: Lineage
    upload_max_bytes: int
    upload_limits: UploadLimits = field(default_factory=UploadLimits)
    sql_limits: SizeLimits = field(default_factory=SizeLimits)

    async def transform_to_silver(self, request: TransformToSilver) -> TransformResult:
        """Clean one bronze table into silver by the request's spec (or just de-duplicate it)."""
        catalog = tenant_catalog(request.tenant_id)
        source = parse_table_name(catalog, request.bronze_table)
        if source.schema_name != "bronze":
            raise InvalidInput(
                f"transform_to_silver reads bronze tables; {source} is in {source.schema_name}: name a bronze table"
            )
        schema, rows_in = await self.warehouse.table_schema(source)
        plan = plan_silver(source, schema, request.spec)
        target = silver_target(source, request.spec)
        sql = render_databricks(plan.query.statement)
        note = {OPERATION_NOTE: "transform", "lakegate.source": str(source)}
        written = await self.warehouse.create_table_as(target, plan.query, note=note)
        columns = _columns(written.schema, [c.source_type for c in plan.columns])
        rows_out = written.row_count or 0
        record = DatasetRecord(
            tenant_id=request.tenant_id,
            target=target,
            kind="silver",
            upstream=[source],
            row_count=rows_out,
            columns=columns,
            definition=sql,
        )
        await self.lineage.record(record, change=f"v{written.version}")
        return TransformResult(
            source=source,
            target=target,
            rows_in=rows_in,
            rows_out=rows_out,
            columns=columns,
            sql=sql,
            table_version=written.version,
        )

    async def create_gold_view(self, request: CreateGoldView) -> GoldView:
        """Define (or redefine) a gold view over silver and gold tables."""
        catalog = tenant_catalog(request.tenant_id)
        name = check_new_name("name", request.name.strip())
        ref = TableRef(catalog=catalog, schema_name="gold", name=name)
        query = check_select(
            request.sql, catalog, functools.partial(self.warehouse.tables_in, catalog), self.sql_limits
        )
        for table in sorted(query.tables, key=str):
            if table.schema_name not in VIEW_SOURCES:
                raise InvalidInput(
                    f"a gold view reads silver and gold tables only, and {table} is in {table.schema_name}: "
                    f"transform it with transform_to_silver, then write silver.{table.name}"
                )
        definition = render_databricks(query.statement)
        written = await self.warehouse.create_view(ref, query, definition=definition)
        columns = _columns(written.schema, [databricks_type(f.type) for f in written.schema])
        upstream = sorted(query.tables, key=str)
        record = DatasetRecord(
            tenant_id=request.tenant_id,
            target=ref,
            kind="gold",
            upstream=upstream,
            columns=columns,
            definition=definition,
        )
        await self.lineage.record(record, change=hashlib.sha256(definition.encode()).hexdigest()[:16])
        return GoldView(ref=ref, sql=definition, columns=columns, upstream=upstream)

    async def upload(self, request: UploadFile) -> UploadResult:
        """Read a whole file, then replace one bronze table with it in one commit."""
        catalog = tenant_catalog(request.tenant_id)
        name = check_new_name("dataset_name", request.dataset_name)
        file_format(request.file_name)  # a bad name or extension is refused before the content is decoded
        target = TableRef(catalog=catalog, schema_name="bronze", name=name)
        data = decode_content(request.file_name, request.content_base64, self.upload_max_bytes)
        parsed = await in_thread(parse_upload, request.file_name, data, self.upload_max_bytes, self.upload_limits)
        note = {OPERATION_NOTE: "upload", "lakegate.file_name": request.file_name}
        written = await self.warehouse.replace_table(target, parsed.table, note=note)
        columns = _columns(written.schema, parsed.source_types)
        record = DatasetRecord(
            tenant_id=request.tenant_id,
            target=target,
            kind="upload",
            row_count=written.row_count,
            columns=columns,
            file_name=request.file_name,
        )
        await self.lineage.record(record, change=f"v{written.version}")
        return UploadResult(
            ref=target,
            format=parsed.format,
            row_count=parsed.table.num_rows,
            columns=columns,
            table_version=written.version,
        )
