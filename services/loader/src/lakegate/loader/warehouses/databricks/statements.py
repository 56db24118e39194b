"""The Databricks SQL a load sends, one function per statement, so each can be read (and reviewed) whole.

A full sync of `tenant_a.bronze.orders` (run `r1`, two Parquet parts) sends:

    CREATE OR REPLACE TABLE `tenant_a`.`lakegate_staging`.`stage_r1` (`id` BIGINT, ..., `_lakegate_seq` BIGINT)
    COPY INTO `tenant_a`.`lakegate_staging`.`stage_r1` FROM '/Volumes/tenant_a/lakegate_staging/files/runs/r1'
      FILEFORMAT = PARQUET FORMAT_OPTIONS ('mergeSchema' = 'false')
      COPY_OPTIONS ('force' = 'true', 'mergeSchema' = 'false')
    CREATE OR REPLACE TABLE `tenant_a`.`bronze`.`orders` TBLPROPERTIES ('lakegate.run_id' = 'r1')
      AS SELECT `id`, ... FROM `tenant_a`.`lakegate_staging`.`stage_r1`
    DROP TABLE IF EXISTS `tenant_a`.`lakegate_staging`.`stage_r1`

An incremental sync appends (`INSERT INTO ... SELECT ... FROM <stage>`) and a merge upserts
(`MERGE INTO ... USING (<stage, one row per key>) ... WHEN MATCHED AND <newer> THEN UPDATE ...
WHEN NOT MATCHED THEN INSERT ...`), each between `lakegate.pending_run` and `lakegate.run_id`
table properties (see `loads`). Never a row-by-row INSERT: rows only ever travel as Parquet files.
Identifiers are backtick-quoted and literals escaped here, nowhere else.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from lakegate.loader.sqltypes import quote
from lakegate.loader.warehouses.databricks.layout import Location, literal
from lakegate.loader.warehouses.databricks.typemap import SEQUENCE_COLUMN, Column, column_ddl

#: Table property naming the run whose load the table holds last.
RUN_ID_KEY = "lakegate.run_id"
#: Table property naming the run whose append or merge is about to commit (see `loads`).
PENDING_KEY = "lakegate.pending_run"


def _properties(values: Mapping[str, str]) -> str:
    return ", ".join(f"{literal(key)} = {literal(value)}" for key, value in sorted(values.items()))


def _definitions(cols: Sequence[Column], *, staged: bool) -> str:
    if staged:
        parts = [f"{quote(c.name)} {column_ddl(c.staged)}" for c in cols]
        return ", ".join([*parts, f"{quote(SEQUENCE_COLUMN)} BIGINT"])
    return ", ".join(f"{quote(c.name)} {c.ddl}" for c in cols)


def _value(column: Column, source: str = "") -> str:
    """The staged value as the target column takes it (JSON text becomes VARIANT)."""
    name = f"{source}{quote(column.name)}"
    return f"PARSE_JSON({name})" if column.parse_json else name


def _select(cols: Sequence[Column], stage: Location) -> str:
    projection = ", ".join(f"{_value(c)} AS {quote(c.name)}" if c.parse_json else quote(c.name) for c in cols)
    return f"SELECT {projection} FROM {stage.sql}"


def create_stage(stage: Location, cols: Sequence[Column]) -> str:
    """An empty staging table shaped like the Parquet parts."""
    return f"CREATE OR REPLACE TABLE {stage.sql} ({_definitions(cols, staged=True)})"


def copy_into(stage: Location, directory: str) -> str:
    """Load every Parquet part of a run's directory into its staging table."""
    return (
        f"COPY INTO {stage.sql} FROM {literal(directory)} FILEFORMAT = PARQUET "
        "FORMAT_OPTIONS ('mergeSchema' = 'false') COPY_OPTIONS ('force' = 'true', 'mergeSchema' = 'false')"
    )


def replace_from(target: Location, stage: Location, cols: Sequence[Column], properties: Mapping[str, str]) -> str:
    """Replace the target (data, schema and properties) with the staged rows in one commit."""
    return f"CREATE OR REPLACE TABLE {target.sql} TBLPROPERTIES ({_properties(properties)}) AS {_select(cols, stage)}"


def create_if_missing(target: Location, cols: Sequence[Column]) -> str:
    """The target, empty, when an incremental or merge sync meets it for the first time."""
    return f"CREATE TABLE IF NOT EXISTS {target.sql} ({_definitions(cols, staged=False)})"


def add_columns(target: Location, cols: Sequence[Column]) -> str:
    """Columns new at the source."""
    return f"ALTER TABLE {target.sql} ADD COLUMNS ({_definitions(cols, staged=False)})"


def set_properties(target: Location, properties: Mapping[str, str]) -> str:
    return f"ALTER TABLE {target.sql} SET TBLPROPERTIES ({_properties(properties)})"


def append_from(target: Location, stage: Location, cols: Sequence[Column]) -> str:
    """Append the staged rows; columns missing from the run are NULL in them."""
    names = ", ".join(quote(c.name) for c in cols)
    return f"INSERT INTO {target.sql} ({names}) {_select(cols, stage)}"


def merge_from(
    target: Location, stage: Location, cols: Sequence[Column], keys: Sequence[str], cursor: str | None
) -> str:
    """Upsert on the keys: one staged row per key (greatest cursor, then last staged), and a newer row wins."""
    order = [f"{quote(cursor)} DESC NULLS LAST"] if cursor else []
    order.append(f"{quote(SEQUENCE_COLUMN)} DESC")
    latest = (
        f"SELECT * FROM {stage.sql} QUALIFY ROW_NUMBER() OVER (PARTITION BY {', '.join(quote(k) for k in keys)} "
        f"ORDER BY {', '.join(order)}) = 1"
    )
    on = " AND ".join(f"t.{quote(k)} = s.{quote(k)}" for k in keys)
    newer = f" AND (t.{quote(cursor)} IS NULL OR s.{quote(cursor)} >= t.{quote(cursor)})" if cursor else ""
    updates = ", ".join(f"{quote(c.name)} = {_value(c, 's.')}" for c in cols if c.name not in keys)
    names = ", ".join(quote(c.name) for c in cols)
    values = ", ".join(_value(c, "s.") for c in cols)
    matched = f"WHEN MATCHED{newer} THEN UPDATE SET {updates} " if updates else ""
    return (
        f"MERGE INTO {target.sql} AS t USING ({latest}) AS s ON {on} "
        f"{matched}WHEN NOT MATCHED THEN INSERT ({names}) VALUES ({values})"
    )


def drop_table(location: Location) -> str:
    return f"DROP TABLE IF EXISTS {location.sql}"


def show_properties(location: Location) -> str:
    return f"SHOW TBLPROPERTIES {location.sql}"


def history(location: Location) -> str:
    """Commits newest first (read only the first few rows)."""
    return f"DESCRIBE HISTORY {location.sql}"


def probe(location: Location) -> str:
    """No rows, only the columns: the table's Arrow schema."""
    return f"SELECT * FROM {location.sql} LIMIT 0"


def describe_extended(location: Location) -> str:
    return f"DESCRIBE TABLE EXTENDED {location.sql}"
