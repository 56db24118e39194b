"""Query results as JSON values that lose nothing and mean one thing.

    integers (any width)        JSON number (exact: Python ints are arbitrary precision)
    floating point              JSON number; NaN, Infinity and -Infinity as those strings
    decimal                     string in plain notation with every digit of the scale: "12.3400"
    boolean                     true / false
    string                      string
    binary                      base64 string
    date                        "YYYY-MM-DD"
    time                        "HH:MM:SS[.ffffff]"
    timestamp (naive)           ISO 8601 without offset: "2024-05-01T12:30:00.000001"
    timestamp (with time zone)  the UTC instant, ISO 8601 with offset: "2024-05-01T12:30:00+00:00"
    duration / interval         ISO 8601 duration: "P1M2DT3.5S"
    list                        JSON array of converted values
    struct                      JSON object of converted values
    map                         JSON array of [key, value] pairs (keys need not be strings)
    uuid                        canonical text "8-4-4-4-12"
    NULL                        null

Rows beyond `max_rows`, or beyond `max_bytes` of JSON, are cut and the result says `truncated`.
"""

from __future__ import annotations

import base64
import datetime as dt
import json
import math
import uuid
from collections.abc import Callable
from decimal import Decimal
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
from lakegate.common.contracts.warehouse import QueryResult, ResultColumn

Convert = Callable[[Any], Any]


def _identity(value: Any) -> Any:
    return value


def _float(value: float) -> float | str:
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "Infinity" if value > 0 else "-Infinity"
    return value


def _decimal(value: Decimal) -> str:
    return format(value, "f")


def _binary(value: bytes) -> str:
    return base64.b64encode(value).decode("ascii")


def _iso(value: dt.date | dt.time) -> str:
    return value.isoformat()


def _instant(value: dt.datetime) -> str:
    return value.astimezone(dt.UTC).isoformat()


def _seconds(seconds: int, nanoseconds: int) -> str:
    total = Decimal(seconds) + Decimal(nanoseconds).scaleb(-9)
    return format(total.normalize(), "f") if total else "0"


def _duration(value: dt.timedelta) -> str:
    sign = "-" if value < dt.timedelta(0) else ""
    value = abs(value)
    body = f"P{value.days}D" if value.days else "P"
    return f"{sign}{body}T{_seconds(value.seconds, value.microseconds * 1000)}S"


def _interval(value: Any) -> str:
    # pyarrow's MonthDayNano: months and days are calendar units, so they stay apart from seconds.
    seconds, nanos = divmod(value.nanoseconds, 1_000_000_000)
    return f"P{value.months}M{value.days}DT{_seconds(seconds, nanos)}S"


def _nullable(convert: Convert) -> Convert:
    def convert_or_null(value: Any) -> Any:
        return None if value is None else convert(value)

    return convert_or_null


def _converter(type_: pa.DataType) -> Convert:
    """How to turn one Python value of this Arrow type (from `to_pylist`) into a JSON value."""
    return _nullable(_bare_converter(type_))


def _bare_converter(type_: pa.DataType) -> Convert:
    if isinstance(type_, pa.UuidType):
        return lambda value: str(value) if isinstance(value, uuid.UUID) else str(uuid.UUID(bytes=value))
    if isinstance(type_, pa.BaseExtensionType):
        return _bare_converter(type_.storage_type)
    if pa.types.is_dictionary(type_):
        return _bare_converter(type_.value_type)
    if pa.types.is_floating(type_):
        return _float
    if pa.types.is_decimal(type_):
        return _decimal
    if pa.types.is_binary(type_) or pa.types.is_large_binary(type_) or pa.types.is_fixed_size_binary(type_):
        return _binary
    if pa.types.is_timestamp(type_):
        return _instant if type_.tz is not None else _iso
    if pa.types.is_date(type_) or pa.types.is_time(type_):
        return _iso
    if pa.types.is_duration(type_):
        return _duration
    if pa.types.is_interval(type_):
        return _interval
    if pa.types.is_list(type_) or pa.types.is_large_list(type_) or pa.types.is_fixed_size_list(type_):
        item = _converter(type_.value_type)
        return lambda values: [item(v) for v in values]
    if pa.types.is_struct(type_):
        fields = {field.name: _converter(field.type) for field in type_.fields}
        return lambda value: {name: fields[name](v) for name, v in value.items()}
    if pa.types.is_map(type_):
        key, item = _converter(type_.key_type), _converter(type_.item_type)
        return lambda pairs: [[key(k), item(v)] for k, v in pairs]
    if pa.types.is_integer(type_) or pa.types.is_boolean(type_) or pa.types.is_string(type_):
        return _identity
    if pa.types.is_large_string(type_) or pa.types.is_null(type_) or pa.types.is_string_view(type_):
        return _identity
    return str


def _nanosecond_timestamps(column: pa.ChunkedArray) -> list[Any]:
    # Python datetimes hold microseconds; keep the last three digits by formatting the integer ticks.
    tz = column.type.tz
    ticks = pc.cast(column, pa.int64()).to_pylist()
    epoch = dt.datetime(1970, 1, 1, tzinfo=dt.UTC if tz is not None else None)
    values: list[Any] = []
    for tick in ticks:
        if tick is None:
            values.append(None)
            continue
        micros, nanos = divmod(tick, 1000)
        stamp = (epoch + dt.timedelta(microseconds=micros)).isoformat(timespec="microseconds")
        offset = ""
        if tz is not None:
            stamp, offset = stamp[:-6], stamp[-6:]
        values.append(f"{stamp}{nanos:03d}{offset}")
    return values


def column_values(column: pa.ChunkedArray) -> list[Any]:
    """Every value of one result column as JSON."""
    if pa.types.is_timestamp(column.type) and column.type.unit == "ns":
        return _nanosecond_timestamps(column)
    convert = _converter(column.type)
    return [convert(value) for value in column.to_pylist()]


def query_result(table: pa.Table, max_rows: int, max_bytes: int, *, more: bool = False) -> QueryResult:
    """Rows as JSON values, at most `max_rows` of them and at most `max_bytes` of JSON.

    `more` says the reader stopped before the end, so the result is cut whatever `table` holds.
    """
    truncated = more or table.num_rows > max_rows
    table = table.slice(0, max_rows)
    columns = [column_values(column) for column in table.columns]
    rows: list[list[Any]] = []
    used = 0
    for row in zip(*columns, strict=True) if columns else ([] for _ in range(table.num_rows)):
        used += len(json.dumps(list(row), ensure_ascii=False).encode()) + 1
        if used > max_bytes:
            truncated = True
            break
        rows.append(list(row))
    return QueryResult(
        columns=[ResultColumn(name=field.name, type=str(field.type)) for field in table.schema],
        rows=rows,
        row_count=len(rows),
        truncated=truncated,
    )
