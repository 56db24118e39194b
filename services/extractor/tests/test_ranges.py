"""Range bounds: what a coordinator builds covers every row once, and a range worker runs nothing else."""

from __future__ import annotations

import pyarrow as pa
import pytest
from lakegate.common.errors import InvalidInput
from lakegate.extractor.query import TableQuery
from lakegate.extractor.ranges import RangeBounds, block_ranges, key_ranges
from lakegate.extractor.typemap import ColumnPlan

QUERY = TableQuery(
    "public",
    "events",
    (
        ColumnPlan("id", "bigint", False, pa.int64(), True, "{c}", base_type="int8"),
        ColumnPlan('odd "key"', "integer", False, pa.int32(), True, "{c}", base_type="int4"),
        ColumnPlan("pad", "text", True, pa.string(), True, "{c}", base_type="text"),
    ),
)


def covering(ranges: list[RangeBounds], value: int) -> list[int]:
    return [
        i
        for i, bounds in enumerate(ranges)
        if (bounds.lower is None or value >= bounds.lower) and (bounds.upper is None or value < bounds.upper)
    ]


@pytest.mark.parametrize(("pages", "count"), [(1000, 4), (7, 4), (3, 4), (2, 2), (10_000_019, 16)])
def test_block_ranges_put_every_block_in_exactly_one_range_open_at_both_ends(pages: int, count: int) -> None:
    ranges = block_ranges(pages, count)

    assert 2 <= len(ranges) <= count
    assert ranges[0].lower is None
    assert ranges[-1].upper is None
    for block in (0, 1, pages // 2, pages - 1, pages, pages * 10):
        assert len(covering(ranges, block)) == 1, block


def test_a_table_of_one_block_is_not_split() -> None:
    assert block_ranges(1, 4) == []


def test_key_ranges_drop_repeated_and_missing_sample_boundaries() -> None:
    ranges = key_ranges("id", [500, None, 100, 500, -7])

    assert [(b.lower, b.upper) for b in ranges] == [(None, -7), (-7, 100), (100, 500), (500, None)]
    assert [b.sql for b in ranges[:2]] == ['"id" < -7', '"id" >= -7 AND "id" < 100']


@pytest.mark.parametrize(
    "bounds",
    [
        RangeBounds(None, None, 10),
        RangeBounds(None, 10, 20),
        RangeBounds(None, 20, None),
        RangeBounds("id", -5, 9_000_000_000),
        RangeBounds('odd "key"', None, 3),
    ],
)
def test_a_range_worker_reads_back_exactly_the_bounds_the_coordinator_sent(bounds: RangeBounds) -> None:
    assert RangeBounds.parse(bounds.sql, QUERY) == bounds


@pytest.mark.parametrize(
    "predicate",
    [
        "",
        "true",
        "ctid < '(1,0)'::pg_catalog.tid; DROP TABLE events",
        "ctid < '(1,0)'::pg_catalog.tid OR true",
        "ctid < '(1,0)'::pg_catalog.tid AND ctid >= '(0,0)'::pg_catalog.tid",  # bounds the other way round
        "ctid >= '(1,0)'::pg_catalog.tid AND ctid >= '(2,0)'::pg_catalog.tid",
        "ctid >= '(1,0)'::pg_catalog.tid AND ctid < '(2,0)'::pg_catalog.tid AND ctid < '(3,0)'::pg_catalog.tid",
        "ctid < '(1,5)'::pg_catalog.tid",
        "ctid < 10",
        "\"id\" < '(1,0)'::pg_catalog.tid",
        "\"id\" >= 1 AND ctid < '(1,0)'::pg_catalog.tid",
        '"pad" < 5',  # not an integer column
        '"missing" < 5',
        '"id" < 5 --',
        '"id"<5',
        '"id" < 0x10',
        '"id" < 5 AND ',
    ],
)
def test_a_predicate_lakegate_did_not_build_is_refused(predicate: str) -> None:
    with pytest.raises(InvalidInput, match="is not one lakegate builds; refusing to run it"):
        RangeBounds.parse(predicate, QUERY)
