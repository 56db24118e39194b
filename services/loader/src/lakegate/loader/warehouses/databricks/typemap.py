"""The explicit Arrow → Databricks type map, and the Parquet schema parts are staged with.

    Arrow                                   Databricks column        Parquet part
    bool                                    BOOLEAN                  boolean
    int8 / int16 / int32 / int64            TINYINT / SMALLINT / INT / BIGINT
    uint8 / uint16 / uint32                 SMALLINT / INT / BIGINT  widened, lossless
    float32 / float64                       FLOAT / DOUBLE
    decimal128/256(p, s), p <= 38           DECIMAL(p,s)             decimal128
    decimal with p > 38                     refused (`unsupported`): DECIMAL holds 38 digits; lakegate's extractor
                                            already sends unconstrained numerics as exact text (STRING)
    string, large_string                    STRING
    arrow.json extension                    STRING, or VARIANT when LAKEGATE_LOADER_DATABRICKS_JSON_TYPE=variant
                                            (staged as text, converted with PARSE_JSON on commit)
    binary, large_binary, fixed_size_binary BINARY
    date32 / date64                         DATE
    timestamp with a time zone (any unit)   TIMESTAMP                UTC instant, microseconds
    timestamp without a time zone           TIMESTAMP_NTZ            wall-clock time, microseconds
    list / large_list / fixed_size_list     ARRAY<T>
    struct                                  STRUCT<`name`: T, ...>
    map                                     MAP<K, V>
    null (a column of only NULLs)           STRING
    other extension types (uuid, ...)       their storage type
    time, duration, interval, float16,      refused (`unsupported`), naming the column
    uint64

Every value is checked on the way: a cast that would lose data (nanoseconds, overflow) fails the
load naming the table, before anything is committed.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import pyarrow as pa
from lakegate.common.contracts.runs import TableRef
from lakegate.common.deltatypes import conform, delta_schema
from lakegate.common.errors import Unsupported
from lakegate.loader.sqltypes import databricks_type

JsonType = Literal["string", "variant"]
#: Staging column numbering the rows in the order they were staged, so ties in a merge resolve the same way every time.
SEQUENCE_COLUMN = "_lakegate_seq"
MAX_DECIMAL_PRECISION = 38


def column_ddl(type_: pa.DataType) -> str:
    """The Databricks type of a conformed (Delta-ready) Arrow type."""
    return databricks_type(type_, ddl=True)


@dataclass(frozen=True)
class Column:
    """One column: its name, the Arrow type its Parquet parts hold, and its type in the target table."""

    name: str
    staged: pa.DataType
    ddl: str
    parse_json: bool = False


def _portable(type_: pa.DataType) -> pa.DataType:
    """Types Delta holds but the Databricks DDL has no name for, as ones it does (lossless)."""
    if pa.types.is_null(type_):
        return pa.string()
    if pa.types.is_fixed_size_binary(type_):
        return pa.binary()
    if pa.types.is_fixed_size_list(type_) or pa.types.is_large_list(type_):
        return pa.list_(pa.field(type_.value_field.name, _portable(type_.value_type), type_.value_field.nullable))
    if pa.types.is_list(type_):
        return pa.list_(pa.field(type_.value_field.name, _portable(type_.value_type), type_.value_field.nullable))
    if pa.types.is_struct(type_):
        return pa.struct([pa.field(f.name, _portable(f.type), f.nullable) for f in type_.fields])
    if pa.types.is_map(type_):
        return pa.map_(_portable(type_.key_type), _portable(type_.item_type))
    return type_


def _check_decimals(name: str, type_: pa.DataType, target: TableRef) -> None:
    if isinstance(type_, pa.BaseExtensionType):
        _check_decimals(name, type_.storage_type, target)
    elif pa.types.is_decimal(type_) and type_.precision > MAX_DECIMAL_PRECISION:
        raise Unsupported(
            f"column {name!r} of {target} is a decimal with {type_.precision} digits; a Databricks DECIMAL holds at "
            f"most {MAX_DECIMAL_PRECISION}. Declare the source column numeric(p,s) with p <= 38, or leave it "
            "unconstrained so it is synced as exact text (STRING)"
        )
    elif pa.types.is_nested(type_):
        for index in range(type_.num_fields):
            _check_decimals(f"{name}.{type_.field(index).name}", type_.field(index).type, target)


def columns(schema: pa.Schema, target: TableRef, json_type: JsonType = "string") -> list[Column]:
    """Every column of a run as it is staged and as it lands in the target table."""
    for field in schema:
        _check_decimals(field.name, field.type, target)
    conformed = delta_schema(schema, target)
    found = []
    for original, field in zip(schema, conformed, strict=True):
        staged = _portable(field.type)
        is_json = isinstance(original.type, pa.JsonType)
        if is_json and json_type == "variant":
            found.append(Column(field.name, staged, "VARIANT", parse_json=True))
        else:
            found.append(Column(field.name, staged, column_ddl(staged)))
    return found


def staged_schema(cols: list[Column]) -> pa.Schema:
    """The schema of every staged Parquet part: the columns, then the row sequence."""
    return pa.schema([pa.field(c.name, c.staged) for c in cols] + [pa.field(SEQUENCE_COLUMN, pa.int64(), False)])


def staged_batch(batch: pa.RecordBatch, schema: pa.Schema, first_row: int, target: TableRef) -> pa.RecordBatch:
    """One batch cast to the staged schema (refusing lossy casts), numbered from `first_row`."""
    without_sequence = pa.schema(list(schema)[:-1])
    plain = pa.RecordBatch.from_arrays(
        [c.storage if isinstance(c, pa.ExtensionArray) else c for c in batch.columns], names=batch.schema.names
    )
    cast = conform(plain, without_sequence, target)
    sequence = pa.array(range(first_row, first_row + batch.num_rows), pa.int64())
    return pa.RecordBatch.from_arrays([*cast.columns, sequence], schema=schema)
