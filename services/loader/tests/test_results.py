"""Result values as JSON: every Arrow type a query can return has one exact, documented spelling."""

from __future__ import annotations

import datetime as dt
import json
import uuid
from decimal import Decimal

import pyarrow as pa
from lakegate.loader.results import query_result


def one_value(array: pa.Array) -> object:
    result = query_result(pa.table({"v": array}), max_rows=10, max_bytes=1_000_000)
    json.dumps(result.rows, allow_nan=False)  # proves the rows are strict JSON
    return result.rows[0][0]


def test_each_arrow_type_becomes_the_documented_json_value() -> None:
    cases: list[tuple[pa.Array, object]] = [
        (pa.array([2**63 - 1], pa.int64()), 2**63 - 1),
        (pa.array([2**64 - 1], pa.uint64()), 2**64 - 1),
        (pa.array([Decimal("99999999999999999999999999999999999999")], pa.decimal128(38, 0)),
         "99999999999999999999999999999999999999"),
        (pa.array([Decimal("1.50")], pa.decimal128(5, 2)), "1.50"),
        (pa.array([float("nan")]), "NaN"),
        (pa.array([True]), True),
        (pa.array([dt.date(1, 1, 1)], pa.date32()), "0001-01-01"),
        (pa.array([dt.time(12, 30, 0, 5)], pa.time64("us")), "12:30:00.000005"),
        (pa.array([dt.datetime(2024, 1, 1, 10, tzinfo=dt.UTC)], pa.timestamp("us", "+02:00")),
         "2024-01-01T10:00:00+00:00"),
        (pa.array([1_700_000_000_123_456_789], pa.timestamp("ns")), "2023-11-14T22:13:20.123456789"),
        (pa.array([-1], pa.timestamp("ns", "UTC")), "1969-12-31T23:59:59.999999999+00:00"),
        (pa.array([dt.timedelta(days=1, seconds=3, microseconds=500_000)], pa.duration("us")), "P1DT3.5S"),
        (pa.array([pa.MonthDayNano([1, 2, 3_000_000_000])], pa.month_day_nano_interval()), "P1M2DT3S"),
        (pa.array([b"\x00\xff"], pa.binary(2)), "AP8="),
        (pa.array([{"a": 1, "b": Decimal("2.5")}], pa.struct([("a", pa.int32()), ("b", pa.decimal128(3, 1))])),
         {"a": 1, "b": "2.5"}),
        (pa.array([[("k", 1), ("j", None)]], pa.map_(pa.string(), pa.int64())), [["k", 1], ["j", None]]),
        (pa.array([[[1.0, float("inf")]]], pa.list_(pa.list_(pa.float64()))), [[1.0, "Infinity"]]),
        (pa.array(["x", "x"]).dictionary_encode(), "x"),
        (pa.ExtensionArray.from_storage(pa.uuid(), pa.array([uuid.UUID(int=1).bytes], pa.binary(16))),
         "00000000-0000-0000-0000-000000000001"),
        (pa.array([None], pa.int64()), None),
    ]  # fmt: skip
    for array, expected in cases:
        assert one_value(array) == expected, array.type


def test_a_result_reports_its_arrow_column_types() -> None:
    result = query_result(pa.table({"d": pa.array([Decimal("1.0")], pa.decimal128(38, 10))}), 10, 1000)

    assert [(c.name, c.type) for c in result.columns] == [("d", "decimal128(38, 10)")]
