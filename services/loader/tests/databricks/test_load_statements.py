"""The statements a Databricks load sends, reviewed as text, for full, incremental and merge syncs.

Every statement goes through the recording connection of an emulated workspace (`emulator.py`):
it must parse as Databricks SQL, and the rows must land where a query finds them. No statement
carries row values: rows travel only as Parquet parts in the staging Volume.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import AsyncIterator, Callable, Sequence
from decimal import Decimal
from typing import Any

import pyarrow as pa
import pytest
import sqlglot
from lakegate.common.contracts.runs import SyncMode, TableRef
from lakegate.loader.warehouses.base import LoadPlan
from lakegate.loader.warehouses.databricks import DatabricksWarehouse
from sqlglot import exp

UTC = dt.UTC
TARGET = TableRef(catalog="tenant_a", schema_name="bronze", name="shop_orders")

#: One column of every type the warehouse maps (see `typemap`).
EVERY_TYPE = pa.schema(
    [
        pa.field("id", pa.int64(), nullable=False),
        pa.field("tiny", pa.int8()),
        pa.field("small", pa.int16()),
        pa.field("count", pa.int32()),
        pa.field("unsigned", pa.uint32()),
        pa.field("flag", pa.bool_()),
        pa.field("ratio", pa.float32()),
        pa.field("score", pa.float64()),
        pa.field("amount", pa.decimal128(38, 10)),
        pa.field("price", pa.decimal256(12, 2)),
        pa.field("label", pa.string()),
        pa.field("note", pa.large_string()),
        pa.field("doc", pa.json_()),
        pa.field("payload", pa.binary()),
        pa.field("born", pa.date32()),
        pa.field("seen_at", pa.timestamp("us")),
        pa.field("updated_at", pa.timestamp("us", tz="UTC")),
        pa.field("tags", pa.list_(pa.string())),
        pa.field("point", pa.struct([pa.field("x", pa.float64()), pa.field("y", pa.float64())])),
        pa.field("attrs", pa.map_(pa.string(), pa.int64())),
    ]
)

COLUMNS = (
    "`id`, `tiny`, `small`, `count`, `unsigned`, `flag`, `ratio`, `score`, `amount`, `price`, `label`, `note`, "
    "`doc`, `payload`, `born`, `seen_at`, `updated_at`, `tags`, `point`, `attrs`"
)
DDL = (
    "`id` BIGINT, `tiny` TINYINT, `small` SMALLINT, `count` INT, `unsigned` BIGINT, `flag` BOOLEAN, `ratio` FLOAT, "
    "`score` DOUBLE, `amount` DECIMAL(38,10), `price` DECIMAL(12,2), `label` STRING, `note` STRING, `doc` STRING, "
    "`payload` BINARY, `born` DATE, `seen_at` TIMESTAMP_NTZ, `updated_at` TIMESTAMP, `tags` ARRAY<STRING>, "
    "`point` STRUCT<`x`: DOUBLE, `y`: DOUBLE>, `attrs` MAP<STRING, BIGINT>"
)
SETUP = [
    "CREATE CATALOG IF NOT EXISTS `tenant_a`",
    "CREATE SCHEMA IF NOT EXISTS `tenant_a`.`bronze`",
    "CREATE SCHEMA IF NOT EXISTS `tenant_a`.`silver`",
    "CREATE SCHEMA IF NOT EXISTS `tenant_a`.`gold`",
    "CREATE SCHEMA IF NOT EXISTS `tenant_a`.`lakegate_staging`",
    "CREATE VOLUME IF NOT EXISTS `tenant_a`.`lakegate_staging`.`files`",
]


def row(key: int, updated_hour: int, label: str) -> dict[str, Any]:
    return {
        "id": key,
        "tiny": -8,
        "small": 300,
        "count": 70000,
        "unsigned": 4_000_000_000,
        "flag": True,
        "ratio": 0.5,
        "score": float("nan"),
        "amount": Decimal("1234567890123456789012345678.0123456789"),
        "price": Decimal("19.99"),
        "label": label,
        "note": "Zürich — 東京",
        "doc": '{"a": [1, 2]}',
        "payload": b"\x00\xff",
        "born": dt.date(1, 1, 1),
        "seen_at": dt.datetime(9999, 12, 31, 23, 59, 59, 999999),
        "updated_at": dt.datetime(2024, 5, 1, updated_hour, tzinfo=UTC),
        "tags": ["a", None],
        "point": {"x": 1.0, "y": -2.5},
        "attrs": [("k", 1)],
    }


def batch(rows: Sequence[dict[str, Any]]) -> pa.RecordBatch:
    return pa.RecordBatch.from_pylist(list(rows), schema=EVERY_TYPE)


async def stream(batches: Sequence[pa.RecordBatch]) -> AsyncIterator[pa.RecordBatch]:
    for item in batches:
        yield item


def plan(run_id: str, mode: SyncMode, schema: pa.Schema = EVERY_TYPE) -> LoadPlan:
    return LoadPlan(TARGET, schema, mode, run_id, keys=("id",), cursor="updated_at")


def sent_since(workspace: Any, mark: int) -> list[str]:
    return list(workspace.statements[mark:])


async def rows_of(
    warehouse: DatabricksWarehouse, sql: str = "SELECT id, label FROM shop_orders ORDER BY id"
) -> list[Any]:
    return (await warehouse.query("tenant_a", sql, 100, 20.0)).rows


async def test_a_full_sync_of_every_mapped_type_stages_parquet_and_replaces_the_table_in_one_statement(
    warehouse: DatabricksWarehouse, workspace: Any
) -> None:
    result = await warehouse.load(plan("r1", "full"), stream([batch([row(1, 1, "one")]), batch([row(2, 1, "two")])]))

    assert workspace.statements == [
        *SETUP,
        "SHOW TBLPROPERTIES `tenant_a`.`bronze`.`shop_orders`",
        "SELECT * FROM `tenant_a`.`bronze`.`shop_orders` LIMIT 0",
        f"CREATE OR REPLACE TABLE `tenant_a`.`lakegate_staging`.`stage_r1` ({DDL}, `_lakegate_seq` BIGINT)",
        "COPY INTO `tenant_a`.`lakegate_staging`.`stage_r1` FROM '/Volumes/tenant_a/lakegate_staging/files/runs/r1' "
        "FILEFORMAT = PARQUET FORMAT_OPTIONS ('mergeSchema' = 'false') "
        "COPY_OPTIONS ('force' = 'true', 'mergeSchema' = 'false')",
        "CREATE OR REPLACE TABLE `tenant_a`.`bronze`.`shop_orders` TBLPROPERTIES ('lakegate.run_id' = 'r1') "
        f"AS SELECT {COLUMNS} FROM `tenant_a`.`lakegate_staging`.`stage_r1`",
        "DESCRIBE HISTORY `tenant_a`.`bronze`.`shop_orders`",
        "DROP TABLE IF EXISTS `tenant_a`.`lakegate_staging`.`stage_r1`",
    ]
    assert (result.row_count, result.already_committed) == (2, False)
    assert await rows_of(warehouse) == [[1, "one"], [2, "two"]]
    values = await rows_of(warehouse, "SELECT * FROM shop_orders WHERE id = 1")
    assert values[0] == [
        1, -8, 300, 70000, 4000000000, True, 0.5, "NaN", "1234567890123456789012345678.0123456789", "19.99",
        "one", "Zürich — 東京", '{"a": [1, 2]}', "AP8=", "0001-01-01", "9999-12-31T23:59:59.999999",
        "2024-05-01T01:00:00+00:00", ["a", None], {"x": 1.0, "y": -2.5}, [["k", 1]],
    ]  # fmt: skip
    # The staged files were removed once the commit was made.
    assert not any(workspace.volume_directory("/Volumes/tenant_a/lakegate_staging/files/runs").rglob("*.parquet"))


async def test_an_incremental_sync_creates_the_table_once_and_appends_between_a_pending_mark_and_the_run_mark(
    warehouse: DatabricksWarehouse, workspace: Any
) -> None:
    await warehouse.load(plan("r1", "incremental"), stream([batch([row(1, 1, "one")])]))
    mark = len(workspace.statements)
    await warehouse.load(plan("r2", "incremental"), stream([batch([row(2, 2, "two")])]))

    assert sent_since(workspace, mark) == [
        "SHOW TBLPROPERTIES `tenant_a`.`bronze`.`shop_orders`",
        "SELECT * FROM `tenant_a`.`bronze`.`shop_orders` LIMIT 0",
        f"CREATE OR REPLACE TABLE `tenant_a`.`lakegate_staging`.`stage_r2` ({DDL}, `_lakegate_seq` BIGINT)",
        "COPY INTO `tenant_a`.`lakegate_staging`.`stage_r2` FROM '/Volumes/tenant_a/lakegate_staging/files/runs/r2' "
        "FILEFORMAT = PARQUET FORMAT_OPTIONS ('mergeSchema' = 'false') "
        "COPY_OPTIONS ('force' = 'true', 'mergeSchema' = 'false')",
        "ALTER TABLE `tenant_a`.`bronze`.`shop_orders` SET TBLPROPERTIES ('lakegate.pending_run' = 'r2')",
        f"INSERT INTO `tenant_a`.`bronze`.`shop_orders` ({COLUMNS}) "
        f"SELECT {COLUMNS} FROM `tenant_a`.`lakegate_staging`.`stage_r2`",
        "ALTER TABLE `tenant_a`.`bronze`.`shop_orders` SET TBLPROPERTIES ('lakegate.run_id' = 'r2')",
        "DESCRIBE HISTORY `tenant_a`.`bronze`.`shop_orders`",
        "DROP TABLE IF EXISTS `tenant_a`.`lakegate_staging`.`stage_r2`",
    ]
    assert f"CREATE TABLE IF NOT EXISTS `tenant_a`.`bronze`.`shop_orders` ({DDL})" in workspace.statements[:mark]
    assert await rows_of(warehouse) == [[1, "one"], [2, "two"]]


async def test_a_merge_upserts_on_the_key_with_the_latest_cursor_winning_and_ties_going_to_the_last_staged_row(
    warehouse: DatabricksWarehouse, workspace: Any
) -> None:
    await warehouse.load(plan("r1", "merge"), stream([batch([row(1, 5, "old one"), row(2, 5, "old two")])]))
    mark = len(workspace.statements)
    # Key 1 twice: the later cursor wins. Key 2: older than the table's row, so the table keeps its own.
    # Key 3 twice with equal cursors: the last one staged wins.
    rows = [row(1, 6, "new one"), row(1, 7, "newest one"), row(2, 4, "stale two"), row(3, 1, "first three")]
    await warehouse.load(plan("r2", "merge"), stream([batch(rows), batch([row(3, 1, "last three")])]))

    updates = ", ".join(f"{c} = s.{c}" for c in COLUMNS.split(", ")[1:])
    values = ", ".join(f"s.{c}" for c in COLUMNS.split(", "))
    assert sent_since(workspace, mark)[4:7] == [
        "ALTER TABLE `tenant_a`.`bronze`.`shop_orders` SET TBLPROPERTIES ('lakegate.pending_run' = 'r2')",
        "MERGE INTO `tenant_a`.`bronze`.`shop_orders` AS t USING (SELECT * FROM "
        "`tenant_a`.`lakegate_staging`.`stage_r2` QUALIFY ROW_NUMBER() OVER (PARTITION BY `id` "
        "ORDER BY `updated_at` DESC NULLS LAST, `_lakegate_seq` DESC) = 1) AS s ON t.`id` = s.`id` "
        "WHEN MATCHED AND (t.`updated_at` IS NULL OR s.`updated_at` >= t.`updated_at`) "
        f"THEN UPDATE SET {updates} WHEN NOT MATCHED THEN INSERT ({COLUMNS}) VALUES ({values})",
        "ALTER TABLE `tenant_a`.`bronze`.`shop_orders` SET TBLPROPERTIES ('lakegate.run_id' = 'r2')",
    ]
    assert await rows_of(warehouse) == [[1, "newest one"], [2, "old two"], [3, "last three"]]


@pytest.mark.parametrize("mode", ["full", "incremental", "merge"])
async def test_every_statement_parses_as_databricks_sql_and_none_carries_rows(
    warehouse: DatabricksWarehouse, workspace: Any, mode: SyncMode
) -> None:
    await warehouse.load(plan("small", mode), stream([batch([row(1, 1, "x")])]))
    small = len(workspace.statements)
    many = [batch([row(key, 1, f"row {key}") for key in range(start, start + 500)]) for start in range(2, 3002, 500)]
    await warehouse.load(plan("large", mode), stream(many))

    # Six thousand rows cost no more statements than one row: rows never travel in SQL.
    assert len(workspace.statements) - small <= small - len(SETUP)
    for statement in workspace.statements:
        tree = sqlglot.parse_one(statement, read="databricks")
        assert not list(tree.find_all(exp.Values)) or isinstance(tree, exp.Merge), statement
        assert "row 1" not in statement
    writes = [s for s in workspace.statements if s.startswith(("COPY", "INSERT", "MERGE", "CREATE OR REPLACE TABLE"))]
    for statement in writes:
        # Data statements are understood by sqlglot in full, not only as a command it passes through.
        assert not isinstance(sqlglot.parse_one(statement, read="databricks"), exp.Command), statement


async def test_parts_are_bounded_parquet_files_named_by_the_run(
    workspace: Any, make_warehouse: Callable[..., DatabricksWarehouse]
) -> None:
    warehouse = make_warehouse(parquet_file_bytes=4096)
    many = [batch([row(key, 1, "x" * 100) for key in range(start, start + 50)]) for start in range(0, 500, 50)]
    result = await warehouse.load(plan("r9", "full"), stream(many))

    uploads = warehouse.volume.uploads  # type: ignore[attr-defined]
    assert result.row_count == 500 == sum(rows for _, rows in uploads)
    assert len(uploads) == 10  # one 50-row batch is past 4 KiB of Arrow data: each fills a file
    assert [path for path, _ in uploads] == [
        f"/Volumes/tenant_a/lakegate_staging/files/runs/r9/part-{n:05d}.parquet" for n in range(10)
    ]
