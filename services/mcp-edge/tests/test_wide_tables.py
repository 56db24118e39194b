"""Wide tables in listings: list_datasets, get_metadata and describe_table stay under a client's 1 MiB message."""

from __future__ import annotations

import datetime as dt

from lakegate.common.contracts.catalog import Dataset
from lakegate.common.contracts.runs import ColumnMapping, TableRef
from lakegate.common.contracts.warehouse import TableDescription, TableSummary, WarehouseColumn
from lakegate.edge.metadata import assemble
from lakegate.edge.results.catalog import LISTED_COLUMNS, DatasetInfo, DatasetListResult
from lakegate.edge.results.warehouse import TableDescriptionResult

MIB = 1024 * 1024
WIDE = 20_000
#: The widest file an upload takes (LAKEGATE_LOADER_UPLOAD_MAX_COLUMNS); a tenant may hold many.
UPLOAD_WIDE = 1_000
CATALOG = "tenant_wide"


def wide_dataset(name: str, columns: int = WIDE) -> Dataset:
    return Dataset(
        target=TableRef(catalog=CATALOG, schema_name="bronze", name=name),
        connection_id=None,
        source_table=None,
        row_count=1,
        columns=[
            ColumnMapping(name=f"column_{i:05d}", source_type="text", arrow_type="string", mapped=True)
            for i in range(columns)
        ],
        last_run_id=None,
        updated_at=dt.datetime.now(dt.UTC),
        kind="upload",
    )


def test_a_listing_of_wide_datasets_shows_the_first_columns_and_pages_the_rest_under_a_mebibyte() -> None:
    datasets = [DatasetInfo.of(wide_dataset("wide"))] + [
        DatasetInfo.of(wide_dataset(f"wide_{i}", UPLOAD_WIDE)) for i in range(200)
    ]

    page = DatasetListResult.page(datasets, offset=0, next_offset=None)

    assert len(page.model_dump_json()) < MIB
    first = page.datasets[0]
    assert (len(first.columns), first.column_count, first.columns_truncated) == (LISTED_COLUMNS, WIDE, True)
    assert page.truncated
    assert page.next_offset == len(page.datasets) < 201


def test_a_page_that_fits_is_returned_whole_with_the_next_offset_it_had() -> None:
    datasets = [DatasetInfo.of(wide_dataset(f"narrow_{i}", columns=3)) for i in range(5)]

    page = DatasetListResult.page(datasets, offset=10, next_offset=15)

    assert (len(page.datasets), page.next_offset, page.truncated) == (5, 15, False)
    assert page.datasets[0].columns_truncated is False


def test_get_metadata_of_many_wide_tables_leaves_columns_out_and_says_so() -> None:
    datasets = [wide_dataset(f"wide_{i}", UPLOAD_WIDE) for i in range(300)]
    tables = [TableSummary(ref=d.target, layer="bronze", row_count=1, size_bytes=10) for d in datasets]

    metadata = assemble(CATALOG, tables, datasets, []).within()

    assert len(metadata.model_dump_json()) < MIB
    assert metadata.truncated
    assert all(t.columns == [] and t.column_count == UPLOAD_WIDE and t.columns_truncated for t in metadata.tables)


def test_get_metadata_of_one_wide_table_shows_its_first_columns() -> None:
    dataset = wide_dataset("wide")
    table = TableSummary(ref=dataset.target, layer="bronze", row_count=1, size_bytes=10)

    metadata = assemble(CATALOG, [table], [dataset], []).within()

    assert not metadata.truncated
    assert (len(metadata.tables[0].columns), metadata.tables[0].columns_truncated) == (LISTED_COLUMNS, True)


def test_describe_table_of_twenty_thousand_columns_with_statistics_stays_under_a_mebibyte() -> None:
    description = TableDescription(
        ref=TableRef(catalog=CATALOG, schema_name="bronze", name="wide"),
        columns=[
            WarehouseColumn(
                name=f"column_{i:05d}",
                type="string",
                nullable=True,
                null_count=0,
                distinct_estimate=1,
                min="a",
                max="z",
            )
            for i in range(WIDE)
        ],
        row_count=1,
        size_bytes=10,
    )

    shown = TableDescriptionResult.of(description)

    assert len(shown.model_dump_json()) < MIB
    assert (shown.column_count, shown.columns_truncated) == (WIDE, True)
    assert shown.columns[0].name == "column_00000"
    assert 1000 < len(shown.columns) < WIDE
