import pytest
from lakegate.common.errors import InvalidInput
from lakegate.common.names import SourceTableName, bronze_table_name, parse_source_table, tenant_catalog


def test_a_bare_table_name_lives_in_public() -> None:
    assert parse_source_table("orders") == SourceTableName("public", "orders")


def test_a_schema_qualified_name_is_split_once() -> None:
    assert parse_source_table("sales.Orders") == SourceTableName("sales", "Orders")


@pytest.mark.parametrize("bad", ['"orders"', "a.b.c", "orders;drop", "x.", ".x", "", "my table", "o'k"])
def test_names_that_cannot_name_one_table_are_refused_with_a_hint(bad: str) -> None:
    with pytest.raises(InvalidInput, match=r"schema\.table"):
        parse_source_table(bad)


def test_bronze_names_fold_to_warehouse_identifiers() -> None:
    assert bronze_table_name("Shop DB", SourceTableName("public", "Orders")) == "shop_db_orders"
    assert bronze_table_name("shop", SourceTableName("sales", "orders")) == "shop_sales_orders"


def test_tenant_ids_must_be_slugs() -> None:
    assert tenant_catalog("acme") == "tenant_acme"
    with pytest.raises(InvalidInput):
        tenant_catalog("Acme; drop")


@pytest.mark.parametrize("bad", ["/etc/passwd", "%2e%2e%2fetc", "~root/x", "s3://bucket/key", "\u202ex", "a" * 64])
def test_names_that_look_like_paths_or_run_past_postgres_limits_are_refused(bad: str) -> None:
    with pytest.raises(InvalidInput, match=r"table_name .*schema\.table"):
        parse_source_table(bad)


def test_names_in_any_script_with_dollars_and_dashes_still_name_a_table() -> None:
    assert parse_source_table("ventes.Été-2024$") == SourceTableName("ventes", "Été-2024$")
