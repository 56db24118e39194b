"""Gold views: a checked SELECT over silver and gold, stored as a definition, listed and queried like a table."""

from __future__ import annotations

import json
from collections.abc import Callable, Coroutine
from typing import TYPE_CHECKING, Any

import pyarrow as pa
import pytest
from lakegate.common.contracts.transforms import CreateGoldView, GoldView, PreviewTable
from lakegate.common.contracts.warehouse import DescribeTable, ListTables, QueryResult, TableDescription, TableList
from lakegate.common.errors import InvalidInput, NotFound
from lakegate.loader.app import LoaderState

if TYPE_CHECKING:
    from conftest import Extractor, LineageReader

Ask = Callable[..., Coroutine[Any, Any, Any]]
Query = Callable[..., Coroutine[Any, Any, QueryResult]]

ORDERS = pa.record_batch(
    {"id": pa.array([1, 2, 3, 4], pa.int64()), "customer": ["a", "b", "a", "c"], "total": [10.0, 5.0, 2.5, 1.0]}
)


async def define(ask: Ask, loader: LoaderState, tenant_id: str, name: str, sql: str) -> GoldView:
    view: GoldView = await ask(
        loader.runtime.topology.warehouse_gold_view, CreateGoldView(tenant_id=tenant_id, name=name, sql=sql), GoldView
    )
    return view


async def test_a_view_over_silver_is_stored_listed_and_queryable_as_gold(
    loader: LoaderState, extractor: Extractor, ask: Ask, query: Query, tenant_id: str
) -> None:
    await extractor.sync(extractor.target("orders", layer="silver"), [ORDERS])
    catalog = extractor.target("orders").catalog

    view = await define(
        ask, loader, tenant_id, "spend", "SELECT customer, sum(total) AS spent FROM silver.orders GROUP BY customer"
    )

    assert view.ref == extractor.target("spend", layer="gold")
    assert view.sql == (
        f"SELECT customer, SUM(total) AS spent FROM `{catalog}`.`silver`.`orders` AS orders GROUP BY customer"
    )
    assert [(c.name, c.arrow_type) for c in view.columns] == [("customer", "string"), ("spent", "double")]
    assert view.upstream == [extractor.target("orders", layer="silver")]
    stored = json.loads((loader.settings.lakehouse / catalog / "gold" / "_views" / "spend.json").read_text())
    assert stored["sql"] == view.sql
    listing = await ask(
        loader.runtime.topology.warehouse_tables_list, ListTables(tenant_id=tenant_id, layer="gold"), TableList
    )
    assert [(t.ref.name, t.kind, t.row_count, t.size_bytes) for t in listing.tables] == [("spend", "view", 3, 0)]
    rows = await query("SELECT * FROM gold.spend ORDER BY customer")
    assert rows.rows == [["a", 12.5], ["b", 5.0], ["c", 1.0]]
    preview = await ask(
        loader.runtime.topology.warehouse_tables_preview,
        PreviewTable(tenant_id=tenant_id, table_name="gold.spend", limit=2),
        QueryResult,
    )
    assert (preview.row_count, preview.truncated) == (2, True)
    described = await ask(
        loader.runtime.topology.warehouse_tables_describe,
        DescribeTable(tenant_id=tenant_id, table_name="gold.spend"),
        TableDescription,
    )
    assert (described.kind, described.row_count, described.table_version) == ("view", 3, None)
    assert described.properties["view.definition"] == view.sql
    assert [(c.name, c.null_count, c.min, c.max) for c in described.columns] == [
        ("customer", 0, "a", "c"),
        ("spent", 0, 1.0, 12.5),
    ]


async def test_views_may_read_other_views_and_see_their_tables_change(
    loader: LoaderState, extractor: Extractor, ask: Ask, query: Query, tenant_id: str
) -> None:
    await extractor.sync(extractor.target("orders", layer="silver"), [ORDERS])
    await define(ask, loader, tenant_id, "spend", "SELECT customer, sum(total) AS spent FROM silver.orders GROUP BY 1")
    await define(ask, loader, tenant_id, "big_spenders", "SELECT customer FROM gold.spend WHERE spent > 2")
    top = await define(
        ask, loader, tenant_id, "top", "WITH s AS (SELECT * FROM gold.big_spenders) SELECT count(*) AS n FROM s"
    )

    assert top.upstream == [extractor.target("big_spenders", layer="gold")]
    assert (await query("SELECT n FROM gold.top")).rows == [[2]]
    await extractor.sync(extractor.target("orders", layer="silver"), [ORDERS.slice(0, 1)])
    assert (await query("SELECT n FROM gold.top")).rows == [[1]]


async def test_a_view_that_would_reach_itself_is_refused_and_the_old_definition_kept(
    loader: LoaderState, extractor: Extractor, ask: Ask, query: Query, tenant_id: str
) -> None:
    await extractor.sync(extractor.target("orders", layer="silver"), [ORDERS])
    await define(ask, loader, tenant_id, "a", "SELECT id FROM silver.orders")
    await define(ask, loader, tenant_id, "b", "SELECT id FROM gold.a")

    with pytest.raises(InvalidInput, match=r"cycle: .*gold\.a → .*gold\.b → .*gold\.a"):
        await define(ask, loader, tenant_id, "a", "SELECT id FROM gold.b")
    with pytest.raises(InvalidInput, match="cycle"):
        await define(ask, loader, tenant_id, "a", "SELECT id FROM gold.a")

    assert (await query("SELECT count(*) FROM gold.b")).rows == [[4]]


async def test_views_that_would_multiply_past_the_node_limit_once_written_in_are_refused_naming_the_setting(
    loader: LoaderState, extractor: Extractor, ask: Ask, query: Query, tenant_id: str
) -> None:
    await extractor.sync(extractor.target("orders", layer="silver"), [ORDERS])
    hundred = " UNION ALL ".join(["SELECT id FROM gold.{0}"] * 100)
    await define(ask, loader, tenant_id, "v0", "SELECT id FROM silver.orders")
    await define(ask, loader, tenant_id, "v1", hundred.format("v0"))

    with pytest.raises(InvalidInput) as refused:
        await define(ask, loader, tenant_id, "v2", hundred.format("v1"))

    assert "would expand to more than 10000 parse-tree nodes" in refused.value.message
    assert "LAKEGATE_LOADER_QUERY_MAX_NODES" in refused.value.message
    assert (await query("SELECT count(*) FROM gold.v1")).rows == [[400]]
    with pytest.raises(InvalidInput, match="LAKEGATE_LOADER_QUERY_MAX_NODES"):
        await query(" UNION ALL ".join(["SELECT count(*) FROM gold.v1"] * 20))


async def test_a_view_too_deep_once_the_views_it_reads_are_written_in_is_refused_naming_the_setting(
    loader: LoaderState, extractor: Extractor, ask: Ask, tenant_id: str
) -> None:
    await extractor.sync(extractor.target("orders", layer="silver"), [ORDERS])

    def deep(table: str) -> str:
        return "SELECT id FROM " + "(SELECT id FROM " * 20 + table + ") t" * 20

    await define(ask, loader, tenant_id, "d0", deep("silver.orders"))
    with pytest.raises(InvalidInput) as refused:
        await define(ask, loader, tenant_id, "d1", deep("gold.d0"))

    assert "with the gold views it reads written in, the query is" in refused.value.message
    assert "LAKEGATE_LOADER_QUERY_MAX_DEPTH" in refused.value.message


@pytest.mark.parametrize(
    ("sql", "error", "message"),
    [
        ("SELECT * FROM bronze.orders", InvalidInput, "reads silver and gold tables only"),
        ("SELECT * FROM orders", InvalidInput, "transform it with transform_to_silver, then write silver.orders"),
        ("SELECT * FROM tenant_x.silver.orders", InvalidInput, "is not yours"),
        ("SELECT * FROM read_files('/etc')", InvalidInput, "read_files() is not allowed"),
        ("SELECT * FROM parquet.`/etc/passwd`", InvalidInput, "file paths"),
        ("DROP VIEW gold.x", InvalidInput, "DROP is not allowed"),
        ("SHOW TABLES", InvalidInput, "a view is defined by one SELECT"),
        ("SELECT 1; SELECT 2", InvalidInput, "2 statements"),
        ("SELECT * FROM silver.nothing", NotFound, "tables in silver: orders"),
        ("SELECT nope FROM silver.orders", Exception, "nope"),
    ],
)
async def test_a_view_must_be_one_select_over_own_silver_and_gold(
    sql: str, error: type[Exception], message: str, loader: LoaderState, extractor: Extractor, ask: Ask, tenant_id: str
) -> None:
    await extractor.sync(extractor.target("orders"), [ORDERS])
    await extractor.sync(extractor.target("orders", layer="silver"), [ORDERS])

    with pytest.raises(error) as refused:
        await define(ask, loader, tenant_id, "v", sql)

    assert message in str(refused.value)
    assert not (loader.settings.lakehouse / extractor.target("v").catalog / "gold").exists()


@pytest.mark.parametrize("name", ["", "Bad-Name", "1st", "../x", "a.b"])
async def test_a_view_name_must_be_a_plain_identifier(
    name: str, loader: LoaderState, extractor: Extractor, ask: Ask, tenant_id: str
) -> None:
    await extractor.sync(extractor.target("orders", layer="silver"), [ORDERS])

    with pytest.raises(InvalidInput, match="is not valid"):
        await define(ask, loader, tenant_id, name, "SELECT * FROM silver.orders")


async def test_defining_a_view_records_its_lineage(
    loader: LoaderState, extractor: Extractor, ask: Ask, lineage: LineageReader, tenant_id: str
) -> None:
    await extractor.sync(extractor.target("orders", layer="silver"), [ORDERS])
    await extractor.sync(extractor.target("customers", layer="silver"), [pa.record_batch({"customer": ["a"]})])

    view = await define(
        ask,
        loader,
        tenant_id,
        "joined",
        "SELECT o.id FROM silver.orders o JOIN silver.customers c ON o.customer = c.customer",
    )
    [(record, message_id)] = await lineage.records(1)

    assert record.kind == "gold"
    assert record.target == view.ref
    assert record.upstream == [extractor.target("customers", "silver"), extractor.target("orders", "silver")]
    assert record.definition == view.sql
    assert message_id.startswith(f"dataset.{view.ref}.")


async def test_a_stored_definition_edited_to_reach_another_catalog_is_refused_when_used(
    loader: LoaderState, extractor: Extractor, ask: Ask, query: Query, tenant_id: str
) -> None:
    await extractor.sync(extractor.target("orders", layer="silver"), [ORDERS])
    view = await define(ask, loader, tenant_id, "v", "SELECT id FROM silver.orders")
    stored = loader.settings.lakehouse / view.ref.catalog / "gold" / "_views" / "v.json"
    definition = json.loads(stored.read_text())
    definition["sql"] = "SELECT * FROM tenant_other.bronze.secret"
    stored.write_text(json.dumps(definition))

    with pytest.raises(InvalidInput, match="catalog `tenant_other` is not yours"):
        await query("SELECT * FROM gold.v")
