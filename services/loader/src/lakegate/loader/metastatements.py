"""SHOW TABLES, SHOW SCHEMAS and DESCRIBE answered from the lakehouse's own metadata, as Databricks shapes them."""

from __future__ import annotations

import re
from collections.abc import Sequence

import pyarrow as pa
from lakegate.common.names import LAYERS
from lakegate.loader.sqltypes import databricks_type


def _matcher(pattern: str) -> re.Pattern[str]:
    # Databricks patterns: `*` is any text, `|` separates alternatives, case is ignored.
    alternatives = ["".join(".*" if ch == "*" else re.escape(ch) for ch in part.strip()) for part in pattern.split("|")]
    return re.compile(f"^(?:{'|'.join(alternatives)})$", re.IGNORECASE)


def show_tables(layer: str, names: Sequence[str], pattern: str | None) -> pa.Table:
    """`database`, `tableName`, `isTemporary` for every table of a layer matching the pattern."""
    matching = [n for n in names if pattern is None or _matcher(pattern).match(n)]
    return pa.table(
        {
            "database": pa.array([layer] * len(matching), pa.string()),
            "tableName": pa.array(matching, pa.string()),
            "isTemporary": pa.array([False] * len(matching), pa.bool_()),
        }
    )


def show_schemas() -> pa.Table:
    """`databaseName` for each layer."""
    return pa.table({"databaseName": pa.array(list(LAYERS), pa.string())})


def describe_columns(schema: pa.Schema) -> pa.Table:
    """`col_name`, `data_type` (Databricks spelling), `comment` for each column."""
    return pa.table(
        {
            "col_name": pa.array([f.name for f in schema], pa.string()),
            "data_type": pa.array([databricks_type(f.type) for f in schema], pa.string()),
            "comment": pa.array([None] * len(schema), pa.string()),
        }
    )
