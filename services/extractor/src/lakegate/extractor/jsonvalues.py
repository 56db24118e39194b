"""Values read from a source as JSON values, by the rules of the loader's query results.

    integers                     JSON number (exact)
    real, double precision       JSON number; NaN, Infinity and -Infinity as those strings
    boolean                      true / false
    text and every type read as text (numeric, uuid, json, interval, time, enums, inet, ...)
                                 the string PostgreSQL prints: numeric in plain notation with its
                                 scale ("12.3400"), interval in ISO 8601 ("P1Y2M3DT4H5M6S")
    bytea                        base64 string
    date                         "YYYY-MM-DD"
    timestamp                    ISO 8601 without offset: "2024-05-01T12:30:00.000001"
    timestamptz                  the UTC instant with offset: "2024-05-01T12:30:00+00:00"
    ±infinity dates, timestamps  the largest / smallest value, as a sync stores them
    arrays                       JSON arrays of converted values (nested for more dimensions)
    composite values             JSON object of converted fields
    anonymous records, ROW(...)  JSON array of converted fields
    ranges                       PostgreSQL's range text built from converted bounds, e.g. "[1,5)"
    NULL                         null

The extractor reads through asyncpg, so the conversion starts from the Python values asyncpg
decodes; `exploration.py` and `details.py` make PostgreSQL send every type the sync reads as text
as text, so those values arrive as the exact strings a sync would store.
"""

from __future__ import annotations

import base64
import datetime as dt
import math
import uuid
from decimal import Decimal
from typing import Any

import asyncpg

#: Marks a sample value that was cut short.
ELLIPSIS = "…"

_INT32, _INT64 = 2**31 - 1, 2**63 - 1
_MICROS = {"H": 3_600_000_000, "M": 60_000_000, "S": 1_000_000}


def _float(value: float) -> float | str:
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "Infinity" if value > 0 else "-Infinity"
    return value


def _seconds(seconds: int, microseconds: int) -> str:
    total = Decimal(seconds) + Decimal(microseconds).scaleb(-6)
    return format(total.normalize(), "f") if total else "0"


def _duration(value: dt.timedelta) -> str:
    sign = "-" if value < dt.timedelta(0) else ""
    value = abs(value)
    body = f"P{value.days}D" if value.days else "P"
    return f"{sign}{body}T{_seconds(value.seconds, value.microseconds)}S"


def _toward_zero(value: int, unit: int) -> tuple[int, int]:
    """C's integer division: quotient rounded toward zero, and the remainder with the dividend's sign."""
    quotient = abs(value) // unit * (1 if value >= 0 else -1)
    return quotient, value - quotient * unit


def iso_interval(parts: tuple[int, int, int]) -> str:
    """The text PostgreSQL prints with `IntervalStyle=iso_8601`, for an interval as (months, days, microseconds).

    A sync reads intervals as that text; asyncpg's binary form is decoded here so that the same text
    also comes out of a composite value, where asyncpg cannot take a field as text.
    """
    months, days, micros = parts
    if (months, days, micros) == (_INT32, _INT32, _INT64):
        return "infinity"
    if (months, days, micros) == (-_INT32 - 1, -_INT32 - 1, -_INT64 - 1):
        return "-infinity"
    years, months = _toward_zero(months, 12)
    hours, rest = _toward_zero(micros, _MICROS["H"])
    minutes, rest = _toward_zero(rest, _MICROS["M"])
    seconds, fraction = _toward_zero(rest, _MICROS["S"])
    if not any((years, months, days, hours, minutes, seconds, fraction)):
        return "PT0S"

    def part(value: int, unit: str) -> str:
        return f"{value}{unit}" if value else ""

    text = "P" + part(years, "Y") + part(months, "M") + part(days, "D")
    if hours or minutes or seconds or fraction:
        text += "T" + part(hours, "H") + part(minutes, "M")
    if seconds or fraction:
        sign = "-" if seconds < 0 or fraction < 0 else ""
        digits = f".{abs(fraction):06d}".rstrip("0") if fraction else ""
        text += f"{sign}{abs(seconds)}{digits}S"
    return text


def _bound(value: Any) -> str:
    converted = json_value(value)
    return converted if isinstance(converted, str) else str(converted).lower()


def _range(value: asyncpg.Range[Any]) -> str:
    if value.isempty:
        return "empty"
    lower = "" if value.lower_inf else _bound(value.lower)
    upper = "" if value.upper_inf else _bound(value.upper)
    return f"{'[' if value.lower_inc else '('}{lower},{upper}{']' if value.upper_inc else ')'}"


def json_value(value: Any, *, instants: bool = False) -> Any:
    """One value asyncpg decoded, as a JSON value that loses nothing.

    `instants`: the value comes from a timestamptz column (or an array of them). asyncpg hands
    ±infinity over as a naive `datetime.max` / `datetime.min` even there; they are UTC instants.
    """
    if value is None or isinstance(value, bool | int | str):
        return value
    if isinstance(value, float):
        return _float(value)
    if isinstance(value, Decimal):
        return format(value, "f")
    if isinstance(value, bytes | bytearray | memoryview):
        return base64.b64encode(bytes(value)).decode("ascii")
    if isinstance(value, dt.datetime):
        if value.tzinfo is None and instants:
            value = value.replace(tzinfo=dt.UTC)
        return value.astimezone(dt.UTC).isoformat() if value.tzinfo is not None else value.isoformat()
    if isinstance(value, dt.date | dt.time):
        return value.isoformat()
    if isinstance(value, dt.timedelta):
        return _duration(value)
    if isinstance(value, uuid.UUID):
        return str(value)
    if isinstance(value, list | tuple):
        return [json_value(item, instants=instants) for item in value]
    if isinstance(value, asyncpg.Record):
        return {key: json_value(item) for key, item in value.items()}
    if isinstance(value, asyncpg.Range):
        return _range(value)
    return str(value)


def holds_instants(arrow_type: str) -> bool:
    """True for an Arrow type (as text) of UTC instants, or lists of them."""
    return "tz=UTC" in arrow_type


def clipped(value: Any, max_chars: int) -> Any:
    """A JSON value with strings longer than `max_chars` characters, and lists longer than `max_chars`
    items, cut short and ended with `ELLIPSIS`."""
    if isinstance(value, str) and len(value) > max_chars:
        return value[:max_chars] + ELLIPSIS
    if isinstance(value, list):
        items = [clipped(item, max_chars) for item in value[:max_chars]]
        return [*items, ELLIPSIS] if len(value) > max_chars else items
    if isinstance(value, dict):
        return {key: clipped(item, max_chars) for key, item in value.items()}
    return value
