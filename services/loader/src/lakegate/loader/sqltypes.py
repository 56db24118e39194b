"""Arrow types as Databricks SQL names them, and the types a silver cast may target.

One spelling, two forms: for display (column listings, messages, casts) in lower case, and as
column DDL (`ddl=True`, what `CREATE TABLE` on Databricks is given) in upper case with struct field
names quoted.

Arrow                         Databricks SQL
bool                          boolean
int8 / int16 / int32 / int64  tinyint / smallint / int / bigint
float32 / float64             float / double
decimal128(p, s)              decimal(p,s)
string, large_string          string
binary, large_binary          binary
date32                        date
timestamp[us, tz=UTC]         timestamp       (an instant)
timestamp[us]                 timestamp_ntz   (a wall-clock time)
list<T>                       array<T>
struct<a: T>                  struct<a:T>
map<K, V>                     map<K,V>
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import pyarrow as pa
from lakegate.common.contracts.transforms import CAST_TYPES
from lakegate.common.errors import Unsupported
from sqlglot import exp

_SIMPLE: dict[pa.DataType, str] = {
    pa.bool_(): "boolean",
    pa.int8(): "tinyint",
    pa.int16(): "smallint",
    pa.int32(): "int",
    pa.int64(): "bigint",
    pa.float32(): "float",
    pa.float64(): "double",
    pa.string(): "string",
    pa.large_string(): "string",
    pa.binary(): "binary",
    pa.large_binary(): "binary",
    pa.date32(): "date",
    pa.null(): "void",
}
_CAST_ARROW: dict[str, pa.DataType] = {
    "string": pa.string(),
    "boolean": pa.bool_(),
    "smallint": pa.int16(),
    "int": pa.int32(),
    "bigint": pa.int64(),
    "float": pa.float32(),
    "double": pa.float64(),
    "date": pa.date32(),
    "timestamp": pa.timestamp("us", tz="UTC"),
    "timestamp_ntz": pa.timestamp("us"),
}
_DECIMAL = re.compile(r"^decimal\s*\(\s*(\d{1,2})\s*,\s*(\d{1,2})\s*\)$")
MAX_DECIMAL_PRECISION = 38


def quote(name: str) -> str:
    """A Databricks identifier in backticks (a backtick inside is doubled)."""
    return "`" + name.replace("`", "``") + "`"


def databricks_type(type_: pa.DataType, *, ddl: bool = False) -> str:
    """How Databricks SQL spells an Arrow type (see the module table).

    For display, a type Databricks has no name for keeps Arrow's; as DDL it is refused (`Unsupported`).
    """
    cased = str.upper if ddl else str
    sep = ", " if ddl else ","

    def spell(t: pa.DataType) -> str:
        if t in _SIMPLE and not (ddl and pa.types.is_null(t)):
            return cased(_SIMPLE[t])
        if pa.types.is_decimal(t):
            return cased(f"decimal({t.precision},{t.scale})")
        if pa.types.is_timestamp(t):
            return cased("timestamp" if t.tz is not None else "timestamp_ntz")
        if pa.types.is_list(t) or pa.types.is_large_list(t) or pa.types.is_fixed_size_list(t):
            return f"{cased('array')}<{spell(t.value_type)}>"
        if pa.types.is_struct(t):
            fields = (f"{quote(f.name)}: {spell(f.type)}" if ddl else f"{f.name}:{spell(f.type)}" for f in t.fields)
            return f"{cased('struct')}<{sep.join(fields)}>"
        if pa.types.is_map(t):
            return f"{cased('map')}<{spell(t.key_type)}{sep}{spell(t.item_type)}>"
        if ddl:
            raise Unsupported(f"Arrow type {t} has no Databricks column type")
        return str(t)

    return spell(type_)


def is_nested(type_: pa.DataType) -> bool:
    """Lists, structs and maps: no order, no trimming, no literal comparisons."""
    return bool(pa.types.is_nested(type_))


def is_text(type_: pa.DataType) -> bool:
    return bool(pa.types.is_string(type_) or pa.types.is_large_string(type_))


@dataclass(frozen=True)
class CastTarget:
    """A type a silver cast writes: its SQL type node and the Arrow type it produces."""

    sql_type: exp.DataType
    arrow: pa.DataType


def cast_target(text: str) -> CastTarget | None:
    """The target a cast names (`int`, `decimal(12,2)`, ...), or None if it names no allowed type."""
    folded = text.strip().lower()
    if folded in _CAST_ARROW:
        return CastTarget(exp.DataType.build(folded, dialect="databricks"), _CAST_ARROW[folded])
    decimal = _DECIMAL.match(folded)
    if decimal is None:
        return None
    precision, scale = int(decimal[1]), int(decimal[2])
    if not 1 <= precision <= MAX_DECIMAL_PRECISION or scale > precision:
        return None
    return CastTarget(
        exp.DataType.build(f"decimal({precision},{scale})", dialect="databricks"), pa.decimal128(precision, scale)
    )


CAST_HINT = f"cast to one of {', '.join(CAST_TYPES)} or decimal(p,s) with 1 <= p <= 38 and 0 <= s <= p"
