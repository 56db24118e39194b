"""Uploads: every format read whole into Arrow, then one commit to bronze; a broken file writes nothing."""

from __future__ import annotations

import base64
import datetime as dt
import io
import zipfile
from collections.abc import Callable, Coroutine, Sequence
from decimal import Decimal
from typing import TYPE_CHECKING, Any
from xml.sax.saxutils import escape

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from deltalake import DeltaTable
from lakegate.common.contracts.transforms import UploadFile, UploadResult
from lakegate.common.contracts.warehouse import QueryResult
from lakegate.common.errors import InvalidInput
from lakegate.loader.app import LoaderState

if TYPE_CHECKING:
    from conftest import Extractor, LineageReader

Ask = Callable[..., Coroutine[Any, Any, Any]]
Query = Callable[..., Coroutine[Any, Any, QueryResult]]


def _cell(ref: str, value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return f'<c r="{ref}" t="b"><v>{int(value)}</v></c>'
    if isinstance(value, int | float):
        return f'<c r="{ref}"><v>{value}</v></c>'
    if isinstance(value, dt.datetime):
        serial = (value - dt.datetime(1899, 12, 30)).total_seconds() / 86400
        return f'<c r="{ref}" s="1"><v>{serial}</v></c>'
    return f'<c r="{ref}" t="inlineStr"><is><t>{escape(str(value))}</t></is></c>'


def xlsx(rows: Sequence[Sequence[Any]]) -> bytes:
    """A real, minimal xlsx workbook (one sheet, inline strings, one date style), as Excel writes them."""
    main = "http://schemas.openxmlformats.org/spreadsheetml/2006/main"
    rel = "http://schemas.openxmlformats.org/officeDocument/2006/relationships"
    pkg = "http://schemas.openxmlformats.org/package/2006/relationships"
    sheet_rows = "".join(
        f'<row r="{r + 1}">' + "".join(_cell(f"{chr(65 + c)}{r + 1}", v) for c, v in enumerate(row)) + "</row>"
        for r, row in enumerate(rows)
    )
    ct = "application/vnd.openxmlformats-officedocument.spreadsheetml"
    files = {
        "[Content_Types].xml": '<Types xmlns="http://schemas.openxmlformats.org/package/2006/content-types">'
        '<Default Extension="rels" ContentType="application/vnd.openxmlformats-package.relationships+xml"/>'
        '<Default Extension="xml" ContentType="application/xml"/>'
        f'<Override PartName="/xl/workbook.xml" ContentType="{ct}.sheet.main+xml"/>'
        f'<Override PartName="/xl/worksheets/sheet1.xml" ContentType="{ct}.worksheet+xml"/>'
        f'<Override PartName="/xl/styles.xml" ContentType="{ct}.styles+xml"/></Types>',
        "_rels/.rels": f'<Relationships xmlns="{pkg}"><Relationship Id="rId1" Type="{rel}/officeDocument" '
        'Target="xl/workbook.xml"/></Relationships>',
        "xl/workbook.xml": f'<workbook xmlns="{main}" xmlns:r="{rel}"><sheets>'
        '<sheet name="Data" sheetId="1" r:id="rId1"/></sheets></workbook>',
        "xl/_rels/workbook.xml.rels": f'<Relationships xmlns="{pkg}">'
        f'<Relationship Id="rId1" Type="{rel}/worksheet" Target="worksheets/sheet1.xml"/>'
        f'<Relationship Id="rId2" Type="{rel}/styles" Target="styles.xml"/></Relationships>',
        "xl/styles.xml": f'<styleSheet xmlns="{main}"><numFmts count="1"><numFmt numFmtId="164" '
        'formatCode="yyyy-mm-dd hh:mm:ss"/></numFmts><cellXfs count="2"><xf numFmtId="0"/>'
        '<xf numFmtId="164" applyNumberFormat="1"/></cellXfs></styleSheet>',
        "xl/worksheets/sheet1.xml": f'<worksheet xmlns="{main}"><sheetData>{sheet_rows}</sheetData></worksheet>',
    }
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, text in files.items():
            archive.writestr(name, '<?xml version="1.0" encoding="UTF-8"?>' + text)
    return out.getvalue()


def parquet(table: pa.Table) -> bytes:
    out = io.BytesIO()
    pq.write_table(table, out)
    return out.getvalue()


async def upload(ask: Ask, loader: LoaderState, tenant_id: str, file_name: str, data: bytes, name: str) -> UploadResult:
    request = UploadFile(
        tenant_id=tenant_id, file_name=file_name, dataset_name=name, content_base64=base64.b64encode(data).decode()
    )
    result: UploadResult = await ask(loader.runtime.topology.warehouse_upload, request, UploadResult)
    return result


CSV = (
    "Order ID,Customer Name,Amount,Paid,Placed At,Note\n"
    "1,Ada,10.5,true,2024-05-01 10:00:00,\n"
    '2,"Lovelace, A.",7,false,2024-05-02 11:30:00,"two\nlines"\n'
)
EXPECTED_ROWS = [
    [1, "Ada", 10.5, True, "2024-05-01T10:00:00", ""],
    [2, "Lovelace, A.", 7.0, False, "2024-05-02T11:30:00", "two\nlines"],
]
EXPECTED_NAMES = ["order_id", "customer_name", "amount", "paid", "placed_at", "note"]

ROUND_TRIPS: list[tuple[str, bytes, list[list[Any]]]] = [
    ("orders.csv", CSV.encode(), EXPECTED_ROWS),
    ("orders.tsv", CSV.replace(",", "\t").replace('"Lovelace\t A."', "Lovelace, A.").encode(), EXPECTED_ROWS),
    (
        "orders.json",
        b'[{"Order ID": 1, "Customer Name": "Ada", "Amount": 10.5, "Paid": true, "Placed At": "2024-05-01 10:00:00",'
        b' "Note": ""},\n {"Order ID": 2, "Customer Name": "Lovelace, A.", "Amount": 7, "Paid": false,'
        b' "Placed At": "2024-05-02 11:30:00", "Note": "two\\nlines"}]',
        EXPECTED_ROWS,
    ),
    (
        "orders.jsonl",
        b'{"Order ID": 1, "Customer Name": "Ada", "Amount": 10.5, "Paid": true, "Placed At": "2024-05-01 10:00:00",'
        b' "Note": ""}\n\n{"Order ID": 2, "Customer Name": "Lovelace, A.", "Amount": 7.0, "Paid": false,'
        b' "Placed At": "2024-05-02 11:30:00", "Note": "two\\nlines"}\n',
        EXPECTED_ROWS,
    ),
    (
        "orders.parquet",
        parquet(
            pa.table(
                {
                    "Order ID": pa.array([1, 2], pa.int64()),
                    "Customer Name": ["Ada", "Lovelace, A."],
                    "Amount": [10.5, 7.0],
                    "Paid": [True, False],
                    "Placed At": pa.array([dt.datetime(2024, 5, 1, 10), dt.datetime(2024, 5, 2, 11, 30)]),
                    "Note": ["", "two\nlines"],
                }
            )
        ),
        EXPECTED_ROWS,
    ),
    (
        "orders.xlsx",
        xlsx(
            [
                ["Order ID", "Customer Name", "Amount", "Paid", "Placed At", "Note"],
                [1, "Ada", 10.5, True, dt.datetime(2024, 5, 1, 10), "-"],
                [2, "Lovelace, A.", 7, False, dt.datetime(2024, 5, 2, 11, 30), "two\nlines"],
            ]
        ),
        [[*EXPECTED_ROWS[0][:5], "-"], EXPECTED_ROWS[1]],
    ),
]


@pytest.mark.parametrize(("file_name", "data", "rows"), ROUND_TRIPS, ids=[t[0] for t in ROUND_TRIPS])
async def test_every_format_round_trips_into_bronze_with_inferred_types(
    file_name: str, data: bytes, rows: list[list[Any]], loader: LoaderState, extractor: Extractor, ask: Ask,
    query: Query, tenant_id: str,
) -> None:  # fmt: skip
    result = await upload(ask, loader, tenant_id, file_name, data, "Web_Orders")

    assert result.ref == extractor.target("web_orders")
    assert (result.row_count, result.table_version) == (2, 0)
    assert [c.name for c in result.columns] == EXPECTED_NAMES
    assert [c.arrow_type for c in result.columns][:4] == ["int64", "string", "double", "bool"]
    assert result.columns[4].arrow_type == "timestamp[us]"
    fetched = await query("SELECT * FROM web_orders ORDER BY order_id")
    assert fetched.rows == rows


async def test_a_csv_whose_first_row_is_data_gets_numbered_columns(
    loader: LoaderState, extractor: Extractor, ask: Ask, query: Query, tenant_id: str
) -> None:
    result = await upload(ask, loader, tenant_id, "n.csv", b"1,a,2024-01-01\n2,b,2024-01-02\n", "numbers")

    assert [(c.name, c.arrow_type) for c in result.columns] == [
        ("column_1", "int64"),
        ("column_2", "string"),
        ("column_3", "date32[day]"),
    ]
    assert (await query("SELECT count(*) FROM numbers")).rows == [[2]]


async def test_odd_columns_are_named_and_typed_so_delta_can_hold_them(
    loader: LoaderState, extractor: Extractor, ask: Ask, query: Query, tenant_id: str
) -> None:
    table = pa.table(
        {
            "x": pa.array([1, 2], pa.uint8()),
            "x ": pa.array([dt.time(10, 30), None], pa.time64("us")),
            "#": pa.array([None, None], pa.null()),
            "price": pa.array([Decimal("1.10"), None], pa.decimal128(5, 2)),
        }
    )
    result = await upload(ask, loader, tenant_id, "odd.PARQUET", parquet(table), "odd")

    assert [(c.name, c.source_type, c.arrow_type) for c in result.columns] == [
        ("x", "uint8", "int16"),
        ("x_2", "time64[us]", "string"),
        ("column_3", "null", "string"),
        ("price", "decimal128(5, 2)", "decimal128(5, 2)"),
    ]
    assert (await query("SELECT * FROM odd ORDER BY x")).rows == [[1, "10:30:00", None, "1.10"], [2, None, None, None]]


async def test_an_upload_replaces_the_table_and_records_its_lineage(
    loader: LoaderState, extractor: Extractor, ask: Ask, query: Query, lineage: LineageReader, tenant_id: str
) -> None:
    await upload(ask, loader, tenant_id, "a.csv", b"id,name\n1,a\n2,b\n", "people")
    second = await upload(ask, loader, tenant_id, "b.ndjson", b'{"id": 3}\n', "people")
    records = await lineage.records(2)

    assert second.table_version == 1
    assert (await query("SELECT * FROM people")).rows == [[3]]
    record, message_id = records[1]
    assert (record.kind, record.file_name, record.row_count, record.target) == ("upload", "b.ndjson", 1, second.ref)
    assert message_id == f"dataset.{second.ref}.v1"


BROKEN: list[tuple[str, bytes, str]] = [
    ("bad.csv", b"a,b\n1,2\n3,4,5\n6,7\n", "line 3: 3 fields where the first row has 2"),
    ("bad_quote.csv", b'a,b\n1,"open\n2,3\n', "line 3: unexpected end of data"),
    ("latin1.csv", "a,b\n1,caf\u00e9\n".encode("latin-1"), "is not UTF-8 text: byte 9 on line 2"),
    ("bad.tsv", b"a\tb\n1\t2\t3\n", "line 2: 3 fields where the first row has 2"),
    ("bad.json", b'[{"a": 1},\n {"a": 2,}]', "line 2, column 10: Expecting property name"),
    ("object.json", b'{"a": 1}', "must hold a JSON array of objects"),
    ("scalars.json", b"[1, 2]", "item 1 of the array is not an object"),
    (
        "mixed.json",
        b'[{"a": 1}, {"a": "x"}]',
        "object 2 of the array: JSON parse error: Column(/a) changed from number",
    ),
    ("bad.ndjson", b'{"a": 1}\n\n{"a": \n', "line 3, column 7: Expecting value"),
    ("mixed.jsonl", b'{"a": 1}\n\n{"a": "x"}\n', "line 3: JSON parse error: Column(/a) changed from number to string"),
    ("list.jsonl", b'{"a": 1}\n[1]\n', "line 2: each line must be one JSON object"),
    ("bad.parquet", b"PAR1 this is not parquet", "could not be read as Parquet"),
    ("bad.xlsx", b"PK\x03\x04 truncated zip", "is not an xlsx workbook (not a zip archive"),
    ("notabook.xlsx", b"just text", "is not an xlsx workbook"),
    ("header_only.csv", b"a,b\n", "has no data rows; nothing was loaded"),
    ("empty.csv", b"", "is empty"),
    ("photo.png", b"\x89PNG", "has an extension lakegate cannot read; use one of .csv, .json"),
    ("nul.csv", b"a,b\n1,\x00\n", "holds a NUL character on line 2"),
    ("deep.json", b"[" * 5000 + b"]" * 5000, "nested too deeply to read"),
    ("deep.ndjson", b'{"a": ' * 5000 + b"1" + b"}" * 5000, "line 1: the JSON is nested too deeply"),
    ("long.json", b'[{"a": 1' + b"0" * 5000 + b"}]", "a number has too many digits to read"),
    ("../../tmp/x.csv", b"a\n1\n", "is a path or holds control characters"),
]


@pytest.mark.parametrize(("file_name", "data", "message"), BROKEN, ids=[b[0] for b in BROKEN])
async def test_a_broken_file_fails_cleanly_and_writes_nothing(
    file_name: str, data: bytes, message: str, loader: LoaderState, extractor: Extractor, ask: Ask,
    lineage: LineageReader, tenant_id: str,
) -> None:  # fmt: skip
    await upload(ask, loader, tenant_id, "kept.csv", b"id\n1\n", "kept")
    kept = loader.settings.lakehouse / extractor.target("kept").catalog / "bronze" / "kept"

    with pytest.raises(InvalidInput) as refused:
        await upload(ask, loader, tenant_id, file_name, data, "kept")

    assert message in str(refused.value)
    assert file_name in str(refused.value) or "extension" in str(refused.value)
    assert DeltaTable(str(kept)).version() == 0
    assert await lineage.pending() == 1


@pytest.mark.parametrize("name", ["../../etc/passwd", "bronze/x", "x y", "x;drop table y", "a" * 300])
async def test_a_dataset_name_that_is_not_a_name_is_refused_not_rewritten(
    name: str, loader: LoaderState, extractor: Extractor, ask: Ask, tenant_id: str
) -> None:
    with pytest.raises(InvalidInput, match="dataset_name") as refused:
        await upload(ask, loader, tenant_id, "a.csv", b"a\n1\n", name)

    assert "a-z, 0-9 and _" in str(refused.value) or "at most 128" in str(refused.value)
    assert not (loader.settings.lakehouse / extractor.target("x").catalog / "bronze").exists()


async def test_a_workbook_that_would_expand_past_the_limit_is_refused_before_it_is_read(
    loader: LoaderState, extractor: Extractor, ask: Ask, tenant_id: str
) -> None:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("xl/worksheets/sheet1.xml", b" " * (loader.settings.upload_max_bytes * 65))

    with pytest.raises(InvalidInput, match=r"expands to .* bytes, more than the .*-byte limit"):
        await upload(ask, loader, tenant_id, "bomb.xlsx", out.getvalue(), "bomb")

    assert not (loader.settings.lakehouse / extractor.target("bomb").catalog / "bronze" / "bomb").exists()


@pytest.mark.parametrize("loader_settings", [{"upload_max_bytes": 2048}], indirect=True)
async def test_a_file_over_the_upload_limit_is_refused_with_the_limit_and_what_to_do(
    loader: LoaderState, extractor: Extractor, ask: Ask, tenant_id: str
) -> None:
    with pytest.raises(InvalidInput) as refused:
        await upload(ask, loader, tenant_id, "big.csv", b"a\n" + b"1\n" * 2000, "big")

    assert "larger than the upload limit of 2048 bytes" in str(refused.value)
    assert "split it into smaller files" in str(refused.value)


async def test_content_that_is_not_base64_is_refused(loader: LoaderState, ask: Ask, tenant_id: str) -> None:
    request = UploadFile(tenant_id=tenant_id, file_name="a.csv", dataset_name="a", content_base64="not base64!")

    with pytest.raises(InvalidInput, match="is not valid base64"):
        await ask(loader.runtime.topology.warehouse_upload, request, UploadResult)


async def test_a_small_parquet_file_that_decodes_to_sixty_million_rows_is_refused_from_its_footer(
    loader: LoaderState, extractor: Extractor, ask: Ask, tenant_id: str
) -> None:
    out = io.BytesIO()
    zeros = pa.table({"x": pa.repeat(0, 1_000_000)})
    with pq.ParquetWriter(out, zeros.schema, compression="zstd") as writer:
        for _ in range(60):
            writer.write_table(zeros)
    assert len(out.getvalue()) < 1024 * 1024

    with pytest.raises(InvalidInput) as refused:
        await upload(ask, loader, tenant_id, "bomb.parquet", out.getvalue(), "rowbomb")

    assert "holds 60000000 rows, more than the 1000000" in refused.value.message
    assert "LAKEGATE_LOADER_UPLOAD_MAX_ROWS" in refused.value.message
    assert not (loader.settings.lakehouse / extractor.target("rowbomb").catalog / "bronze" / "rowbomb").exists()


async def test_a_csv_of_twenty_thousand_columns_is_refused_naming_the_column_limit(
    loader: LoaderState, extractor: Extractor, ask: Ask, tenant_id: str
) -> None:
    header = ",".join(f"c{i}" for i in range(20_000))
    row = ",".join("1" for _ in range(20_000))

    with pytest.raises(InvalidInput) as refused:
        await upload(ask, loader, tenant_id, "wide.csv", f"{header}\n{row}\n".encode(), "wide")

    assert "has 20000 columns, more than the 1000" in refused.value.message
    assert "LAKEGATE_LOADER_UPLOAD_MAX_COLUMNS" in refused.value.message
    assert not (loader.settings.lakehouse / extractor.target("wide").catalog / "bronze" / "wide").exists()
