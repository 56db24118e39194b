"""Tools that build lakehouse tables: bronze → silver transforms, gold views, and file uploads."""

from __future__ import annotations

import base64
import binascii
from typing import Annotated

from lakegate.common.contracts.transforms import (
    CreateGoldView,
    GoldView,
    TransformResult,
    TransformToSilver,
    UploadFile,
    UploadResult,
)
from lakegate.common.errors import InvalidInput
from lakegate.edge.backend import Backend
from lakegate.edge.results.transforms import GoldViewResult, SilverTableResult, UploadedTableResult
from lakegate.edge.steps import TransformStep, to_spec
from lakegate.edge.tools import SQL_MAX_CHARS
from mcp.server.mcpserver import MCPServer
from mcp.types import ToolAnnotations
from pydantic import Field

#: Replaces a table of the same name; the same input builds the same table again.
BUILDS_TABLE = ToolAnnotations(read_only_hint=False, destructive_hint=True, idempotent_hint=True, open_world_hint=False)
#: Room left in a NATS message for the request around an upload's base64.
_ENVELOPE_BYTES = 64 * 1024


def add_transform_tools(server: MCPServer, backend: Backend) -> None:
    """Register transform_to_silver, create_gold_view and upload_file."""
    topology, settings, guard = backend.topology, backend.settings, backend.failures.tool_errors

    @server.tool(annotations=BUILDS_TABLE.model_copy(update={"title": "Clean a bronze table into silver"}))
    @guard
    async def transform_to_silver(
        bronze_table: Annotated[
            str, Field(description="`table`, `bronze.table` or `<catalog>.bronze.table`.", min_length=1)
        ],
        transformations: Annotated[
            list[TransformStep] | None,
            Field(
                description=(
                    "Steps applied in order, each chosen by `kind`: rename, cast, trim, fill_null, drop_null, "
                    "filter, dedupe. Omit to keep the columns as they are and only remove exact duplicate rows."
                )
            ),
        ] = None,
        target_name: Annotated[
            str | None, Field(description="Name of the silver table; the bronze table's name by default.")
        ] = None,
    ) -> SilverTableResult:
        """Build (or rebuild) a cleaned silver table from a bronze table, by declarative steps.

        Replaces a silver table of the same name atomically. Returns the rows in and out, the output
        columns and the SQL that built it. describe_table and preview_table help choose the steps.
        """
        request = TransformToSilver(
            tenant_id=backend.tenant(), bronze_table=bronze_table, spec=to_spec(transformations, target_name)
        )
        result = await backend.call(
            topology.warehouse_transform,
            request,
            TransformResult,
            timeout=settings.transform_timeout_seconds,
            cancels=True,
        )
        return SilverTableResult.of(result)

    @server.tool(annotations=BUILDS_TABLE.model_copy(update={"title": "Publish a gold view"}))
    @guard
    async def create_gold_view(
        name: Annotated[
            str,
            Field(description="View name in the gold layer: a-z, 0-9 and _, e.g. `revenue_by_month`.", min_length=1),
        ],
        sql: Annotated[
            str,
            Field(
                description="One SELECT over your silver and gold tables, in Databricks SQL, e.g. `SELECT "
                "date_trunc('month', ordered_at) AS month, sum(total) AS revenue FROM silver.orders GROUP BY 1`.",
                min_length=1,
                max_length=SQL_MAX_CHARS,
            ),
        ],
    ) -> GoldViewResult:
        """Create or replace a curated gold view defined by one SELECT over silver and gold tables.

        Returns its columns and the tables it reads; query it with query_sql like any table.
        """
        request = CreateGoldView(tenant_id=backend.tenant(), name=name, sql=sql)
        view = await backend.call(
            topology.warehouse_gold_view, request, GoldView, timeout=settings.transform_timeout_seconds, cancels=True
        )
        return GoldViewResult.of(view)

    @server.tool(annotations=BUILDS_TABLE.model_copy(update={"title": "Upload a file into bronze"}))
    @guard
    async def upload_file(
        file_content: Annotated[str, Field(description="The file's bytes, base64-encoded.", min_length=1)],
        file_name: Annotated[
            str,
            Field(
                description="Name with extension, which sets the format: .csv, .tsv, .json, .ndjson/.jsonl, "
                ".parquet or .xlsx.",
                min_length=1,
            ),
        ],
        dataset_name: Annotated[
            str, Field(description="Bronze table to create or replace, e.g. `budget_2025`.", min_length=1)
        ],
    ) -> UploadedTableResult:
        """Load a small file (CSV, TSV, JSON, NDJSON, Parquet or Excel) into a bronze table, inferring column types.

        Replaces a bronze table of the same name. For large data, sync it from PostgreSQL instead.
        """
        if backend.link is not None:
            await backend.link.ready()  # the NATS limit is known once connected
        limit = min(
            settings.max_upload_bytes, (backend.runtime.broker.connection.max_payload - _ENVELOPE_BYTES) * 3 // 4
        )
        content = _checked_base64(file_content, file_name, limit)
        request = UploadFile(
            tenant_id=backend.tenant(), file_name=file_name, dataset_name=dataset_name, content_base64=content
        )
        result = await backend.call(
            topology.warehouse_upload, request, UploadResult, timeout=settings.transform_timeout_seconds, cancels=True
        )
        return UploadedTableResult.of(result)


def _checked_base64(text: str, file_name: str, limit: int) -> str:
    """The file's base64 without whitespace (or a data-URL prefix), once it decodes and fits in `limit` bytes."""
    content = "".join(text.split())
    if content.startswith("data:") and ";base64," in content:
        content = content.split(";base64,", 1)[1]
    # Base64 is 4 characters per 3 bytes: a size check before decoding refuses a huge file cheaply.
    estimated = len(content) * 3 // 4
    if estimated > limit + 2:
        raise InvalidInput(_too_big(file_name, estimated, limit))
    try:
        size = len(base64.b64decode(content, validate=True))
    except (binascii.Error, ValueError) as exc:
        raise InvalidInput(
            f"file_content of {file_name!r} is not valid base64: encode the file's bytes with base64 "
            "(standard alphabet, with padding) and pass the result as file_content"
        ) from exc
    if size > limit:
        raise InvalidInput(_too_big(file_name, size, limit))
    return content


def _too_big(file_name: str, size: int, limit: int) -> str:
    return (
        f"file {file_name!r} is {size / 1_048_576:.1f} MiB; upload_file takes at most {limit / 1_048_576:.1f} MiB. "
        "Split it into smaller files, save it as compressed Parquet, or load the data into PostgreSQL and use "
        "sync_table_to_bronze"
    )
