"""Vectorised finishing of what ADBC's binary COPY reads natively, so the server casts less.

Casting on the server (`uuid::text`, `CASE WHEN ts = 'infinity' ...`) costs the source more CPU
than sending the binary form, and the source's CPU is half of what bounds an extraction on a
small machine. These functions take the arrays ADBC builds and give the exact values the warehouse
keeps, without a Python loop over rows:

- `uuid_text`: `arrow.uuid` (16 bytes) → the canonical lower-case 8-4-4-4-12 text;
- `json_text`: `arrow.json` → its text (jsonb's binary form is its normalised text already);
- `blank_trimmed`: `char(n)` → its value without the trailing blanks PostgreSQL pads it with and
  ignores in comparisons, `length()` and casts to text;
- `timestamp_clamp`, `date_clamp`: ±infinity → the warehouse extremes. ADBC shifts PostgreSQL's
  2000-based values to 1970 in wrapping integer arithmetic, so ±infinity arrive as two fixed
  sentinels below any real value, and an instant after year 262143 arrives wrapped: it is refused.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

Decoder = Callable[[pa.Array], pa.Array]


def _pair_hex() -> np.ndarray:
    """Each pair of bytes (read as a little-endian uint16) → its four lower-case hex digits, as one
    little-endian uint32, so that the digits lie in memory in text order."""
    digit = np.frombuffer(b"0123456789abcdef", dtype=np.uint8).astype(np.uint32)
    pair = np.arange(65536, dtype=np.uint32)
    first, second = pair & 0xFF, pair >> 8
    table: np.ndarray = (
        digit[first >> 4] | digit[first & 0xF] << 8 | digit[second >> 4] << 16 | digit[second & 0xF] << 24
    )
    return table


_PAIR_HEX = _pair_hex()
#: The uuid text's groups: (first, last) hex digit → where the group starts in the 36 characters.
_GROUPS = (((0, 8), 0), ((8, 12), 9), ((12, 16), 14), ((16, 20), 19), ((20, 32), 24))

_US_2000 = 946_684_800_000_000  # 2000-01-01 in microseconds since 1970
_DAYS_2000 = 10_957
_INT64_MIN, _INT64_MAX = -(2**63), 2**63 - 1
_INT32_MIN, _INT32_MAX = -(2**31), 2**31 - 1
#: PostgreSQL's infinity and -infinity after ADBC's wrapping shift to 1970.
_TS_INFINITY = _INT64_MAX + _US_2000 - 2**64
_TS_MINUS_INFINITY = _INT64_MIN + _US_2000
_DATE_INFINITY = _INT32_MAX + _DAYS_2000 - 2**32
_DATE_MINUS_INFINITY = _INT32_MIN + _DAYS_2000
#: The earliest instant PostgreSQL holds (4714-11-24 BC): anything below it arrived wrapped.
_TS_EARLIEST = -210_866_803_200_000_000
#: The warehouse's extremes: 0001-01-01 and 9999-12-31 23:59:59.999999 (dates: 9999-12-31).
TS_LOW, TS_HIGH = -62_135_596_800_000_000, 253_402_300_799_999_999
DATE_LOW, DATE_HIGH = -719_162, 2_932_896


def _storage(values: pa.Array) -> pa.Array:
    return values.storage if isinstance(values, pa.ExtensionArray) else values


def _validity(values: pa.Array) -> pa.Buffer | None:
    """A validity bitmap starting at the array's first value (ADBC's arrays may be slices)."""
    if values.null_count == 0:
        return None
    return values.is_valid().buffers()[1]


def uuid_text(values: pa.Array) -> pa.Array:
    """16-byte uuids → `xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx`, nulls kept."""
    storage = _storage(values)
    if pa.types.is_string(storage.type):
        return storage
    if not pa.types.is_fixed_size_binary(storage.type):  # the driver before 1.9: variable binary
        storage = pc.cast(storage, pa.binary(16))
    rows = len(storage)
    data = storage.buffers()[1]
    raw = np.frombuffer(data, dtype=np.uint8, count=rows * 16, offset=storage.offset * 16).reshape(rows, 16)
    digits = _PAIR_HEX[raw.view(np.uint16)].view(np.uint8)  # (rows, 32)
    text = np.full((rows, 36), ord("-"), dtype=np.uint8)
    for (first, last), at in _GROUPS:
        text[:, at : at + last - first] = digits[:, first:last]
    offsets = np.arange(0, 36 * rows + 1, 36, dtype=np.int32)
    return pa.Array.from_buffers(
        pa.string(), rows, [_validity(storage), pa.py_buffer(offsets), pa.py_buffer(text)], storage.null_count
    )


def json_text(values: pa.Array) -> pa.Array:
    """`arrow.json` → its text."""
    return _storage(values)


def blank_trimmed(values: pa.Array) -> pa.Array:
    """`char(n)` → the value without its trailing blanks, as `::text` gives it."""
    return pc.utf8_rtrim(values, characters=" ")


def _clamp(
    values: pa.Array, storage: pa.DataType, infinity: int, minus_infinity: int, low: int, high: int, earliest: int
) -> pa.Array:
    raw = _storage(values).view(storage)
    smallest = pc.min(raw).as_py()
    if smallest is None or smallest >= earliest:  # the usual case: nothing infinite, nothing wrapped
        return values
    infinite, minus_infinite = pc.equal(raw, infinity), pc.equal(raw, minus_infinity)
    wrapped = pc.and_(pc.less(raw, earliest), pc.invert(pc.or_(infinite, minus_infinite)))
    if pc.any(wrapped).as_py():
        raise pa.ArrowInvalid("a value lies after year 262143, beyond what an Arrow timestamp holds")
    clamped = pc.if_else(infinite, pa.scalar(high, storage), pc.if_else(minus_infinite, pa.scalar(low, storage), raw))
    return clamped.view(values.type)


def timestamp_clamp(values: pa.Array) -> pa.Array:
    """timestamp or timestamptz: infinity → 9999-12-31 23:59:59.999999, -infinity → 0001-01-01."""
    return _clamp(values, pa.int64(), _TS_INFINITY, _TS_MINUS_INFINITY, TS_LOW, TS_HIGH, _TS_EARLIEST)


def date_clamp(values: pa.Array) -> pa.Array:
    """date: infinity → 9999-12-31, -infinity → 0001-01-01."""
    earliest = _TS_EARLIEST // 86_400_000_000
    return _clamp(values, pa.int32(), _DATE_INFINITY, _DATE_MINUS_INFINITY, DATE_LOW, DATE_HIGH, earliest)
