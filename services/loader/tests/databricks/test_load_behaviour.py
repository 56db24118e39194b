"""How Databricks loads behave under redelivery, crashes, schema drift and refusals (emulated workspace)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Sequence
from typing import Any

import pyarrow as pa
import pytest
from databricks.sql.exc import RequestError, ServerOperationError
from lakegate.common.contracts.runs import SchemaChange, SyncMode, TableRef
from lakegate.common.errors import InvalidInput, PermissionDenied, Unavailable, Unsupported, WarehouseError
from lakegate.loader.warehouses.base import LoadPlan
from lakegate.loader.warehouses.databricks import DatabricksWarehouse
from lakegate.loader.warehouses.databricks.layout import TenantLayout

TARGET = TableRef(catalog="tenant_a", schema_name="bronze", name="orders")
SCHEMA = pa.schema([pa.field("id", pa.int64(), nullable=False), pa.field("v", pa.int32())])


def rows(*pairs: tuple[int, int], schema: pa.Schema = SCHEMA) -> pa.RecordBatch:
    return pa.RecordBatch.from_pylist([dict(zip(schema.names, p, strict=True)) for p in pairs], schema=schema)


async def stream(*batches: pa.RecordBatch) -> AsyncIterator[pa.RecordBatch]:
    for item in batches:
        yield item


def plan(run_id: str, mode: SyncMode, schema: pa.Schema = SCHEMA, keys: Sequence[str] = ("id",)) -> LoadPlan:
    return LoadPlan(TARGET, schema, mode, run_id, keys=tuple(keys), cursor=None)


async def table(warehouse: DatabricksWarehouse, sql: str = "SELECT * FROM orders ORDER BY id") -> list[Any]:
    return (await warehouse.query("tenant_a", sql, 100, 20.0)).rows


@pytest.mark.parametrize("mode", ["full", "incremental", "merge"])
async def test_a_redelivered_load_commits_nothing_twice(warehouse: DatabricksWarehouse, mode: SyncMode) -> None:
    first = await warehouse.load(plan("r1", mode), stream(rows((1, 10), (2, 20))))
    again = await warehouse.load(plan("r1", mode), stream(rows((1, 10), (2, 20))))

    assert (first.already_committed, again.already_committed) == (False, True)
    assert (again.row_count, again.version) == (2, first.version)
    assert await table(warehouse) == [[1, 10], [2, 20]]


async def test_an_append_that_crashed_after_its_write_is_only_marked_when_the_run_comes_again(
    warehouse: DatabricksWarehouse, workspace: Any
) -> None:
    await warehouse.load(plan("r1", "incremental"), stream(rows((1, 10))))
    # The connection dies after the INSERT committed, before the run's mark, and stays down through the retries.
    workspace.failures.extend([("'lakegate.run_id' = 'r2'", RequestError("connection reset by peer"))] * 3)
    with pytest.raises(Unavailable):
        await warehouse.load(plan("r2", "incremental"), stream(rows((2, 20))))

    redelivered = await warehouse.load(plan("r2", "incremental"), stream(rows((2, 20))))

    assert redelivered.already_committed
    assert await table(warehouse) == [[1, 10], [2, 20]]
    assert workspace.properties["tenant_a.bronze.orders"]["lakegate.run_id"] == "r2"


async def test_an_append_that_crashed_before_its_write_writes_once_when_the_run_comes_again(
    warehouse: DatabricksWarehouse, workspace: Any
) -> None:
    await warehouse.load(plan("r1", "incremental"), stream(rows((1, 10))))
    workspace.failures.append(("INSERT INTO", RequestError("connection reset by peer")))
    with pytest.raises(Unavailable):
        await warehouse.load(plan("r2", "incremental"), stream(rows((2, 20))))

    redelivered = await warehouse.load(plan("r2", "incremental"), stream(rows((2, 20))))

    assert not redelivered.already_committed
    assert await table(warehouse) == [[1, 10], [2, 20]]


async def test_a_new_source_column_is_added_and_a_dropped_one_stays_with_nulls(
    warehouse: DatabricksWarehouse, workspace: Any
) -> None:
    await warehouse.load(plan("r1", "incremental"), stream(rows((1, 10))))
    wider = pa.schema([pa.field("id", pa.int64(), nullable=False), pa.field("note", pa.string())])
    result = await warehouse.load(plan("r2", "incremental", wider), stream(rows((2, "hi"), schema=wider)))

    assert "ALTER TABLE `tenant_a`.`bronze`.`orders` ADD COLUMNS (`note` STRING)" in workspace.statements
    assert set(result.schema_changes) == {
        SchemaChange(column="note", change="added", after="string"),
        SchemaChange(column="v", change="dropped", before="int32"),
    }
    assert await table(warehouse) == [[1, 10, None], [2, None, "hi"]]


async def test_an_incompatible_type_change_fails_naming_the_column_and_changes_nothing(
    warehouse: DatabricksWarehouse, workspace: Any
) -> None:
    await warehouse.load(plan("r1", "merge"), stream(rows((1, 10))))
    retyped = pa.schema([pa.field("id", pa.int64(), nullable=False), pa.field("v", pa.string())])
    mark = len(workspace.statements)

    refused = r"types of tenant_a.bronze.orders .* column 'v' was int32 and is now string"
    with pytest.raises(WarehouseError, match=refused):
        await warehouse.load(plan("r2", "merge", retyped), stream(rows((1, "x"), schema=retyped)))

    touched = [
        s for s in workspace.statements[mark:] if "`bronze`.`orders`" in s and not s.startswith(("SHOW", "SELECT"))
    ]
    assert touched == []
    assert await table(warehouse) == [[1, 10]]


async def test_a_wider_integer_at_the_source_needs_no_change_when_the_table_holds_it(
    warehouse: DatabricksWarehouse,
) -> None:
    await warehouse.load(plan("r1", "incremental"), stream(rows((1, 10))))
    narrower = pa.schema([pa.field("id", pa.int64(), nullable=False), pa.field("v", pa.int16())])

    result = await warehouse.load(plan("r2", "incremental", narrower), stream(rows((2, 7), schema=narrower)))

    assert result.schema_changes == ()
    assert await table(warehouse) == [[1, 10], [2, 7]]


async def test_a_decimal_wider_than_databricks_holds_is_refused_before_anything_is_staged(
    warehouse: DatabricksWarehouse, workspace: Any
) -> None:
    huge = pa.schema([pa.field("id", pa.int64()), pa.field("n", pa.decimal256(50, 2))])

    with pytest.raises(Unsupported, match=r"column 'n' .* 50 digits.*at most 38"):
        await warehouse.load(plan("r1", "full", huge), stream())

    assert workspace.statements == []


async def test_a_merge_without_a_primary_key_is_refused_with_what_to_do(warehouse: DatabricksWarehouse) -> None:
    with pytest.raises(InvalidInput, match="add a primary key to the source table, or sync it in full"):
        await warehouse.load(plan("r1", "merge", keys=()), stream(rows((1, 10))))


async def test_a_warehouse_that_is_starting_is_waited_for(warehouse: DatabricksWarehouse, workspace: Any) -> None:
    workspace.failures.append(
        ("CREATE SCHEMA", ServerOperationError("[TEMPORARILY_UNAVAILABLE] warehouse is starting"))
    )

    await warehouse.load(plan("r1", "full"), stream(rows((1, 10))))

    assert await table(warehouse) == [[1, 10]]


async def test_a_missing_grant_says_what_to_grant(warehouse: DatabricksWarehouse, workspace: Any) -> None:
    workspace.failures.append(
        ("CREATE CATALOG", ServerOperationError("[PERMISSION_DENIED] User does not have CREATE CATALOG on Metastore"))
    )

    with pytest.raises(PermissionDenied) as refused:
        await warehouse.load(plan("r1", "full"), stream(rows((1, 10))))

    assert "CREATE CATALOG on the metastore" in refused.value.message
    assert "LAKEGATE_LOADER_DATABRICKS_LAYOUT=schema_per_tenant" in refused.value.message


async def test_with_schema_per_tenant_every_name_is_written_inside_the_configured_catalog(
    workspace: Any, make_warehouse: Callable[..., DatabricksWarehouse]
) -> None:
    workspace.create_catalog("lakehouse")
    warehouse = make_warehouse(TenantLayout("schema_per_tenant", catalog="lakehouse"))
    await warehouse.load(plan("r1", "full"), stream(rows((1, 10))))
    mark = len(workspace.statements)

    result = await warehouse.query("tenant_a", "SELECT COUNT(*) AS n FROM bronze.orders", 10, 20.0)

    assert result.rows == [[1]]
    assert not any("CREATE CATALOG" in s for s in workspace.statements)
    assert "CREATE SCHEMA IF NOT EXISTS `lakehouse`.`tenant_a_lakegate_staging`" in workspace.statements
    assert workspace.statements[mark:][-1] == (
        "SELECT * FROM (SELECT COUNT(*) AS n FROM `lakehouse`.`tenant_a_bronze`.`orders` AS orders) "
        "AS _lg_result LIMIT 11"
    )


async def test_queries_pass_the_guard_and_honour_the_row_cap(warehouse: DatabricksWarehouse) -> None:
    await warehouse.load(plan("r1", "full"), stream(rows(*[(i, i) for i in range(30)])))

    capped = await warehouse.query("tenant_a", "SELECT id FROM orders ORDER BY id", 5, 20.0)
    assert (capped.row_count, capped.truncated, capped.rows[-1]) == (5, True, [4])
    with pytest.raises(InvalidInput, match="catalog `tenant_b` is not yours"):
        await warehouse.query("tenant_a", "SELECT * FROM tenant_b.bronze.orders", 5, 20.0)
    with pytest.raises(InvalidInput, match="not allowed"):
        await warehouse.query("tenant_a", "DROP TABLE orders", 5, 20.0)
