"""Which Arrow types a Delta table can hold, and how a batch is conformed to them before writing.

Delta has no unsigned, time-of-day, duration, interval or half-float types, and keeps timestamps in
microseconds. An Arrow extension type (uuid, json, ...) would be written into the table's schema as
field metadata that other readers cannot open, so extension types are stripped to their storage type.
Types that would lose data are refused with the column named, never silently narrowed.

Shared, because two services write the local lakehouse's data files: the loader, and the extractor
when it stages a full sync as the warehouse's own Parquet (`lakegate.common.datafiles`).
"""

from __future__ import annotations

import pyarrow as pa
from lakegate.common.contracts.runs import TableRef
from lakegate.common.errors import Unsupported, WarehouseError

_WIDER_SIGNED = {pa.uint8(): pa.int16(), pa.uint16(): pa.int32(), pa.uint32(): pa.int64()}
_MAX_DECIMAL_PRECISION = 38


def _refuse(column: str, type_: pa.DataType, target: TableRef) -> Unsupported:
    return Unsupported(
        f"column {column!r} of {target} has Arrow type {type_}, which Delta Lake cannot store; "
        "map it to a supported type (string, int64, decimal, timestamp, ...) when extracting"
    )


def _delta_type(column: str, type_: pa.DataType, target: TableRef) -> pa.DataType:
    if isinstance(type_, pa.BaseExtensionType):
        return _delta_type(column, type_.storage_type, target)
    if pa.types.is_dictionary(type_):
        return _delta_type(column, type_.value_type, target)
    if pa.types.is_timestamp(type_):
        return pa.timestamp("us", tz="UTC" if type_.tz is not None else None)
    if pa.types.is_date64(type_):
        return pa.date32()
    if type_ in _WIDER_SIGNED:
        return _WIDER_SIGNED[type_]
    if pa.types.is_decimal(type_):
        if type_.precision > _MAX_DECIMAL_PRECISION:
            raise _refuse(column, type_, target)
        return pa.decimal128(type_.precision, type_.scale)
    if pa.types.is_list(type_) or pa.types.is_large_list(type_) or pa.types.is_fixed_size_list(type_):
        return pa.list_(_delta_field(f"{column}[]", type_.value_field, target))
    if pa.types.is_struct(type_):
        return pa.struct([_delta_field(f"{column}.{f.name}", f, target) for f in type_.fields])
    if pa.types.is_map(type_):
        return pa.map_(
            _delta_field(f"{column}.key", type_.key_field, target),
            _delta_field(f"{column}.value", type_.item_field, target),
        )
    if (
        pa.types.is_boolean(type_)
        or pa.types.is_signed_integer(type_)
        or pa.types.is_float32(type_)
        or pa.types.is_float64(type_)
        or pa.types.is_string(type_)
        or pa.types.is_large_string(type_)
        or pa.types.is_binary(type_)
        or pa.types.is_large_binary(type_)
        or pa.types.is_fixed_size_binary(type_)
        or pa.types.is_date32(type_)
        or pa.types.is_null(type_)
    ):
        return type_
    raise _refuse(column, type_, target)


def _delta_field(column: str, field: pa.Field, target: TableRef) -> pa.Field:
    # Field metadata is dropped: it is where extension types would leak into the Delta schema.
    return pa.field(field.name, _delta_type(column, field.type, target), nullable=field.nullable)


def delta_schema(schema: pa.Schema, target: TableRef) -> pa.Schema:
    """The schema `target` is written with: extension types stripped, lossless widenings applied."""
    return pa.schema([_delta_field(field.name, field, target) for field in schema])


def conform(batch: pa.RecordBatch, schema: pa.Schema, target: TableRef) -> pa.RecordBatch:
    """Cast one batch to the Delta schema; a value that would change (e.g. nanoseconds) is refused."""
    try:
        return batch.cast(schema, safe=True)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as exc:
        raise WarehouseError(f"a batch for {target} does not fit its Delta schema without losing data: {exc}") from exc
