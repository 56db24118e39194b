"""Uploaded files → one Arrow table, or a clear refusal; nothing is written until the whole file is read.

    extension          reader                                   header / names
    .csv, .tsv         pyarrow.csv (`,` or tab), checked first   sniffed: a first row whose values do not
                       with Python's strict csv reader           fit the column types below is the header
    .json              an array of objects (Python json)         the objects' keys
    .ndjson, .jsonl    one object per line                       the objects' keys
    .parquet           pyarrow.parquet                           the file's columns
    .xlsx              python-calamine, first sheet              a first row of non-empty text is the header

Column names are folded to warehouse identifiers (`Order ID` → `order_id`, duplicates get `_2`, a
name with no letters becomes `column_<n>`). Types are inferred by the readers; columns with only
NULLs become strings, and times of day and durations (which Delta cannot hold) become text.
Mistakes are reported with the line (and column, where the parser knows it). The decoded file may
be at most `max_bytes`; compressed formats (xlsx, Parquet) may expand to at most 64x that.
"""

from __future__ import annotations

import base64
import binascii
import csv
import datetime as dt
import io
import json
import re
import zipfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import PurePosixPath
from typing import Any

import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.json as pajson
import pyarrow.parquet as pq
from lakegate.common.errors import InvalidInput
from lakegate.common.names import warehouse_identifier
from lakegate.loader.results import column_values
from python_calamine import CalamineError, CalamineWorkbook

FORMATS: dict[str, str] = {
    ".csv": "csv",
    ".tsv": "tsv",
    ".json": "json",
    ".ndjson": "ndjson",
    ".jsonl": "ndjson",
    ".parquet": "parquet",
    ".xlsx": "xlsx",
}
#: How far a compressed upload may expand, relative to the upload limit.
EXPANSION_FACTOR = 64


@dataclass(frozen=True)
class ParsedFile:
    """A whole file as one table, with what the file said each column was."""

    format: str
    table: pa.Table
    source_types: list[str]


def file_format(file_name: str) -> str:
    """The format an extension names; refused with the supported list otherwise."""
    # The name is only shown and recorded, but a path or control character there is a mistake or an attack.
    if any(ch in "/\\" or not ch.isprintable() for ch in file_name):
        raise InvalidInput(
            f"file_name {file_name[:200]!r} is a path or holds control characters: give the file's own name, "
            "e.g. `orders.csv`"
        )
    suffix = PurePosixPath(file_name.strip().lower()).suffix
    if suffix not in FORMATS:
        raise InvalidInput(
            f"file {file_name!r} has an extension lakegate cannot read; use one of {', '.join(sorted(FORMATS))}"
        )
    return FORMATS[suffix]


def decode_content(file_name: str, content_base64: str, max_bytes: int) -> bytes:
    """The file's bytes from base64, refused when not base64, empty or larger than `max_bytes`."""
    compact = "".join(content_base64.split())
    too_big = (
        f"file {file_name!r} is larger than the upload limit of {max_bytes} bytes ({max_bytes / 2**20:.1f} MiB), "
        "because the file travels in one NATS message; split it into smaller files, or load the data from "
        "PostgreSQL with sync_table_to_bronze"
    )
    if len(compact) > (max_bytes + 2) // 3 * 4:
        raise InvalidInput(too_big)
    try:
        data = base64.b64decode(compact, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise InvalidInput(
            f"content_base64 of {file_name!r} is not valid base64 ({exc}); encode the file again"
        ) from exc
    if len(data) > max_bytes:
        raise InvalidInput(too_big)
    if not data:
        raise InvalidInput(f"file {file_name!r} is empty; send a file with a header and rows")
    return data


@dataclass(frozen=True)
class UploadLimits:
    """How much one upload may hold once read: rows and columns (a wide file would break every listing)."""

    max_rows: int = 1_000_000
    max_columns: int = 1_000

    def check(self, file_name: str, rows: int, columns: int) -> None:
        """Refuse a file past a limit, naming the limit and its setting."""
        if columns > self.max_columns:
            raise InvalidInput(
                f"file {file_name!r} has {columns} columns, more than the {self.max_columns} an upload may have "
                "(LAKEGATE_LOADER_UPLOAD_MAX_COLUMNS): upload fewer columns, e.g. split the file"
            )
        if rows > self.max_rows:
            raise InvalidInput(
                f"file {file_name!r} holds {rows} rows, more than the {self.max_rows} an upload may have "
                "(LAKEGATE_LOADER_UPLOAD_MAX_ROWS): split it into smaller files, or sync the data from a source"
            )


def parse_upload(file_name: str, data: bytes, max_bytes: int, limits: UploadLimits | None = None) -> ParsedFile:
    """Read the whole file into one Arrow table with warehouse column names."""
    limits = limits or UploadLimits()
    kind = file_format(file_name)
    readers: dict[str, Callable[[str, bytes, int], tuple[pa.Table, list[str]]]] = {
        "csv": lambda name, raw, _: _delimited(name, raw, ","),
        "tsv": lambda name, raw, _: _delimited(name, raw, "\t"),
        "json": lambda name, raw, _: _json_array(name, raw),
        "ndjson": lambda name, raw, _: _ndjson(name, raw),
        "parquet": lambda name, raw, expanded: _parquet(name, raw, expanded, limits),
        "xlsx": _xlsx,
    }
    table, source_types = readers[kind](file_name, data, max_bytes * EXPANSION_FACTOR)
    if table.num_columns == 0 or table.num_rows == 0:
        raise InvalidInput(f"file {file_name!r} has no data rows; nothing was loaded")
    limits.check(file_name, table.num_rows, table.num_columns)
    table = _storable(table.rename_columns(warehouse_names(table.column_names)))
    return ParsedFile(kind, table, source_types)


def warehouse_names(names: Sequence[str]) -> list[str]:
    """Fold names to unique warehouse identifiers."""
    folded: list[str] = []
    for index, name in enumerate(names):
        try:
            base = warehouse_identifier(name)
        except InvalidInput:
            base = f"column_{index + 1}"
        candidate, n = base, 2
        while candidate in folded:
            candidate, n = f"{base}_{n}", n + 1
        folded.append(candidate)
    return folded


def _storable(table: pa.Table) -> pa.Table:
    """Columns Delta cannot hold as read: NULL-only → string; times of day and durations → ISO 8601 text."""
    for index, field in enumerate(table.schema):
        if pa.types.is_null(field.type) or pa.types.is_time(field.type) or pa.types.is_duration(field.type):
            text = pa.array(column_values(table.column(index)), pa.string())
            table = table.set_column(index, pa.field(field.name, pa.string()), text)
    return table


def _text(file_name: str, data: bytes) -> str:
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        raise InvalidInput(
            f"file {file_name!r} is not UTF-8 text: byte {exc.start} on line {line} cannot be decoded; "
            "save it as UTF-8 and upload again"
        ) from exc
    # No text column of the warehouse or the catalog can hold NUL, so a file with one is refused whole.
    nul = text.find("\x00")
    if nul >= 0:
        line = text.count("\n", 0, nul) + 1
        raise InvalidInput(
            f"file {file_name!r} holds a NUL character on line {line}: text files cannot carry NUL; remove it "
            "(or upload the data as Parquet)"
        )
    return text


def _json(file_name: str, text: str, line: int | None = None) -> Any:
    """One JSON document (of a file, or of its `line`); too deep nesting and too long numbers are refused."""
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        where = f"line {line or exc.lineno}, column {exc.colno}"
        raise InvalidInput(f"file {file_name!r}, {where}: {exc.msg}") from exc
    except RecursionError as exc:
        raise InvalidInput(
            f"file {file_name!r}{f', line {line}' if line else ''}: the JSON is nested too deeply to read; "
            "flatten it to objects of plain values"
        ) from exc
    except ValueError as exc:  # an integer of more digits than int() converts (sys.get_int_max_str_digits)
        raise InvalidInput(
            f"file {file_name!r}{f', line {line}' if line else ''}: a number has too many digits to read; "
            "write it as a string"
        ) from exc


# CSV and TSV


def _check_records(file_name: str, text: str, delimiter: str) -> list[str]:
    """Walk every record with Python's strict reader: same field count, closed quotes. Returns the first."""
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter, strict=True)
    first: list[str] | None = None
    records = 0
    try:
        for record in reader:
            if not record:
                continue  # a blank line
            records += 1
            if first is None:
                first = record
            elif len(record) != len(first):
                raise InvalidInput(
                    f"file {file_name!r}, line {reader.line_num}: {len(record)} fields where the first row has "
                    f"{len(first)}; fix that line (quote values that contain the delimiter)"
                )
    except csv.Error as exc:
        raise InvalidInput(f"file {file_name!r}, line {reader.line_num}: {exc}; fix the quoting there") from exc
    if first is None or records < 2:
        raise InvalidInput(f"file {file_name!r} has no data rows; nothing was loaded (send a header and rows)")
    return first


def _fits(value: str, type_: pa.DataType) -> bool:
    if pa.types.is_string(type_) or pa.types.is_null(type_):
        return True
    try:
        pa.array([value]).cast(type_)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError, pa.ArrowTypeError):
        return False
    return True


def _read_csv(data: bytes, delimiter: str, *, header: bool, skip_rows: int = 0) -> pa.Table:
    # One block for the whole file, so types are inferred from every row, not just the first megabyte.
    return pacsv.read_csv(
        io.BytesIO(data),
        read_options=pacsv.ReadOptions(
            autogenerate_column_names=not header, skip_rows=skip_rows, block_size=len(data) + 1
        ),
        parse_options=pacsv.ParseOptions(delimiter=delimiter, newlines_in_values=True),
    )


def _delimited(file_name: str, data: bytes, delimiter: str) -> tuple[pa.Table, list[str]]:
    text = _text(file_name, data)
    first = _check_records(file_name, text, delimiter)
    clean = text.encode("utf-8")  # without a byte-order mark
    try:
        body = _read_csv(clean, delimiter, header=False, skip_rows=1)
        # A first row is data when every typed column's first value fits its type; otherwise it names them.
        typed = [t for t in body.schema.types if not (pa.types.is_string(t) or pa.types.is_null(t))]
        as_data = (
            bool(typed)
            and body.num_rows > 0
            and all(_fits(v, t) for v, t in zip(first, body.schema.types, strict=False))
        )
        table = _read_csv(clean, delimiter, header=not as_data)
    except pa.ArrowInvalid as exc:
        raise InvalidInput(f"file {file_name!r} could not be read as {_kind(delimiter)}: {exc}") from exc
    if as_data:
        table = table.rename_columns([f"column_{i + 1}" for i in range(table.num_columns)])
    return table, ["text"] * table.num_columns


def _kind(delimiter: str) -> str:
    return "CSV" if delimiter == "," else "TSV"


# JSON and NDJSON

_ROW = re.compile(r" in row (\d+)")


def _objects_to_table(file_name: str, objects: Sequence[str], where: Callable[[int], str]) -> pa.Table:
    try:
        data = "\n".join(objects).encode("utf-8")
        # One block, so types are inferred from every object.
        return pajson.read_json(io.BytesIO(data), read_options=pajson.ReadOptions(block_size=len(data) + 1))
    except pa.ArrowInvalid as exc:
        message = str(exc)
        row = _ROW.search(message)
        if row is not None:
            message = f"{where(int(row[1]))}: {_ROW.sub('', message)}"
        raise InvalidInput(
            f"file {file_name!r}: {message}; give each key one type in every object (or quote the values)"
        ) from exc


def _json_kind(value: Any) -> str:
    names = {bool: "boolean", int: "number", float: "number", str: "string", list: "array", dict: "object"}
    return names.get(type(value), "null")


def _source_types(objects: Sequence[dict[str, Any]], table: pa.Table) -> list[str]:
    kinds: dict[str, set[str]] = {name: set() for name in table.column_names}
    for item in objects:
        for key, value in item.items():
            if key in kinds and value is not None:
                kinds[key].add(_json_kind(value))
    return ["/".join(sorted(kinds[name])) or "null" for name in table.column_names]


def _json_array(file_name: str, data: bytes) -> tuple[pa.Table, list[str]]:
    text = _text(file_name, data)
    parsed = _json(file_name, text)
    if not isinstance(parsed, list):
        raise InvalidInput(f'file {file_name!r} must hold a JSON array of objects, e.g. [{{"id": 1}}]')
    for index, item in enumerate(parsed):
        if not isinstance(item, dict):
            raise InvalidInput(f"file {file_name!r}: item {index + 1} of the array is not an object")
    if not parsed:
        return pa.table({}), []
    lines = [json.dumps(item, ensure_ascii=False) for item in parsed]
    table = _objects_to_table(file_name, lines, lambda row: f"object {row + 1} of the array")
    return table, _source_types(parsed, table)


def _ndjson(file_name: str, data: bytes) -> tuple[pa.Table, list[str]]:
    text = _text(file_name, data)
    objects: list[dict[str, Any]] = []
    line_numbers: list[int] = []
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        item = _json(file_name, line, number)
        if not isinstance(item, dict):
            raise InvalidInput(f"file {file_name!r}, line {number}: each line must be one JSON object")
        objects.append(item)
        line_numbers.append(number)
    if not objects:
        return pa.table({}), []
    lines = [json.dumps(item, ensure_ascii=False) for item in objects]
    table = _objects_to_table(file_name, lines, lambda row: f"line {line_numbers[min(row, len(line_numbers) - 1)]}")
    return table, _source_types(objects, table)


# Parquet


def _parquet(file_name: str, data: bytes, max_expanded: int, limits: UploadLimits) -> tuple[pa.Table, list[str]]:
    try:
        parquet = pq.ParquetFile(io.BytesIO(data))
        # The footer says how many rows and columns the file decodes to: a few KB of run-length encoded
        # values can decode to millions of rows, so the file is refused before anything is decoded.
        limits.check(file_name, parquet.metadata.num_rows, parquet.metadata.num_columns)
        expanded = sum(parquet.metadata.row_group(i).total_byte_size for i in range(parquet.metadata.num_row_groups))
        if expanded > max_expanded:
            raise InvalidInput(
                f"file {file_name!r} expands to {expanded} bytes, more than the {max_expanded}-byte limit; "
                "split it into smaller files"
            )
        table = parquet.read()
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError, OSError) as exc:
        raise InvalidInput(f"file {file_name!r} could not be read as Parquet: {exc}") from exc
    return table, [str(t) for t in table.schema.types]


# Excel


def _check_zip(file_name: str, data: bytes, max_expanded: int) -> None:
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            expanded = sum(info.file_size for info in archive.infolist())
    except zipfile.BadZipFile as exc:
        raise InvalidInput(f"file {file_name!r} is not an xlsx workbook (not a zip archive: {exc})") from exc
    if expanded > max_expanded:
        raise InvalidInput(
            f"file {file_name!r} expands to {expanded} bytes, more than the {max_expanded}-byte limit; "
            "split the workbook"
        )


_CELL_KIND = {
    bool: "boolean",
    int: "number",
    float: "number",
    str: "text",
    dt.datetime: "datetime",
    dt.date: "date",
    dt.time: "time",
    dt.timedelta: "duration",
}


def _cell_text(value: Any) -> str:
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    if isinstance(value, dt.date | dt.time):
        return value.isoformat()
    return str(value)


def _sheet_column(values: list[Any]) -> tuple[pa.Array, str]:
    present = [v for v in values if v is not None]
    kinds = {_CELL_KIND.get(type(v), "text") for v in present}
    if kinds == {"boolean"}:
        return pa.array(values, pa.bool_()), "boolean"
    if kinds == {"number"}:
        if all(float(v).is_integer() and abs(v) < 2**53 for v in present):
            return pa.array([None if v is None else int(v) for v in values], pa.int64()), "number"
        return pa.array([None if v is None else float(v) for v in values], pa.float64()), "number"
    if kinds == {"datetime"} or kinds == {"date", "datetime"}:
        stamps = [v if v is None or isinstance(v, dt.datetime) else dt.datetime.combine(v, dt.time()) for v in values]
        return pa.array(stamps, pa.timestamp("us")), "datetime"
    if kinds == {"date"}:
        return pa.array(values, pa.date32()), "date"
    kind = kinds.pop() if len(kinds) == 1 else ("mixed" if kinds else "empty")
    return pa.array([None if v is None else _cell_text(v) for v in values], pa.string()), kind


def _xlsx(file_name: str, data: bytes, max_expanded: int) -> tuple[pa.Table, list[str]]:
    _check_zip(file_name, data, max_expanded)
    try:
        workbook = CalamineWorkbook.from_filelike(io.BytesIO(data))
        if not workbook.sheet_names:
            raise InvalidInput(f"file {file_name!r} has no sheets")
        rows: list[list[Any]] = workbook.get_sheet_by_index(0).to_python(skip_empty_area=True)
    except CalamineError as exc:
        raise InvalidInput(f"file {file_name!r} could not be read as an xlsx workbook: {exc}") from exc
    rows = [[None if v == "" else v for v in row] for row in rows]
    rows = [row for row in rows if any(v is not None for v in row)]
    if not rows:
        return pa.table({}), []
    width = max(len(row) for row in rows)
    rows = [row + [None] * (width - len(row)) for row in rows]
    header = all(isinstance(v, str) for v in rows[0])
    names = [str(v) for v in rows[0]] if header else [f"column_{i + 1}" for i in range(width)]
    body = rows[1:] if header else rows
    columns = [_sheet_column([row[i] for row in body]) for i in range(width)]
    table = pa.table({f"c{i}": array for i, (array, _) in enumerate(columns)}).rename_columns(names)
    return table, [kind for _, kind in columns]
