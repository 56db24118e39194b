"""A hostile corpus for every tool: traversal in names, oversized and malformed arguments, bad files, bombs.

Each case is one tool call that must be refused with a readable reason. `REAL_SOURCE` in an
argument stands for the connection id of a real, registered source, so the hostile part reaches
past the id check. SQL injection payloads have their own corpora (sqlmap's, in the extractor's and
the loader's tests); here SQL only appears as oversized, nested or NUL-carrying text.
"""

from __future__ import annotations

import base64
import functools
import gzip
import io
import json
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

REAL_SOURCE = "<real source>"


@dataclass(frozen=True)
class Case:
    tool: str
    arguments: dict[str, Any]
    label: str

    @property
    def id(self) -> str:
        return f"{self.tool}-{self.label}"


#: Table, view and file names that try to leave their place, or are not names at all.
BAD_NAMES = [
    "../../etc/passwd",
    "..",
    ".",
    "../bronze/x",
    "bronze/../../../../tmp/x",
    "..\\..\\windows\\system32",
    "/etc/passwd",
    "/tmp/x",
    "%2e%2e%2fetc%2fpasswd",
    "..%00/x",
    "bronze/..",
    "./x",
    "x/../../y",
    "~root/x",
    "file:///etc/passwd",
    "s3://bucket/key",
    "tenant_other.bronze.orders",
    "a.b.c.d",
    "x\x00y",
    "\x00",
    "x\ny",
    "x;drop table y",
    "x' OR '1'='1",
    'x"y',
    "x`y",
    "\u202ex",
    "$(touch /tmp/pwned)",
    "a" * 300,
    "é" * 2000,
    "x" * 100_000,
]
#: Ids (sources, runs, schedules) that are not ids.
BAD_IDS = [
    "src_\x00abc",
    "\x00",
    "src_" + "a" * 5000,
    "run_" + "x" * 100_000,
    "../../etc/passwd",
    "src_'; DROP TABLE sources; --",
    "%00",
    " ",
    "src_\u202eabc",
    "sch_" + "é" * 1000,
]
#: Integers for offsets, limits and sizes that are out of range or not integers.
BAD_COUNTS: list[Any] = [-1, 10**30, -(10**30), 1.5, "ten", None, [1], {"n": 1}]
#: Cadences of schedule_sync that never come, come too rarely or are not cadences.
BAD_CRONS = [
    "0 0 31 2 *",
    "0 0 30 2 *",
    "0 0 31 4,6,9,11 *",
    "* * * * * *",
    "61 * * * *",
    "0 25 * * *",
    "0 0 * * 8",
    "@reboot",
    "every night",
    "0 0 1 13 *",
    "*/0 * * * *",
    "\x00",
    "* " * 5000,
]
BAD_EVERY: list[Any] = [10**12, 10**30, -5, 0, "1000000 years", "P99999Y", "NaN", "1e308", "\x00", "1" * 5000, [60]]


def nested_list(depth: int) -> Any:
    value: Any = "x"
    for _ in range(depth):
        value = [value]
    return value


def nested_object(depth: int) -> Any:
    value: Any = "x"
    for _ in range(depth):
        value = {"a": value}
    return value


#: Argument values of the wrong shape: deep nesting, containers for strings, huge strings.
BAD_SHAPES: list[tuple[str, Any]] = [
    ("nested-list", nested_list(150)),
    ("nested-object", nested_object(150)),
    ("list", ["orders"]),
    ("object", {"name": "orders"}),
    ("number", 12),
    ("bool", True),
    ("megabyte", "m" * 1_000_000),
]

#: SQL texts that are hostile by shape rather than by content.
BAD_SQL = [
    "SELECT 1\x00; DROP TABLE x",
    "\x00",
    "SELECT " + "(" * 5000 + "1" + ")" * 5000,
    "SELECT " + " + ".join(["1"] * 20_000),
    "SELECT 1 " + "UNION ALL SELECT 1 " * 5000,
    "SELECT '" + "x" * 2_000_000 + "'",
    "SELECT " + ", ".join(f"{i} AS c{i}" for i in range(20_000)),
    "WITH " + ", ".join(f"t{i} AS (SELECT 1)" for i in range(3000)) + " SELECT 1",
    "/*" * 10_000,
    "SELECT 1 -- \x00",
    "SELECT " + "CASE WHEN true THEN " * 100 + "1" + " END" * 100,
    "SELECT " + "abs(" * 1000 + "1" + ")" * 1000,
    "SELECT " + "(SELECT " * 300 + "1" + ")" * 300,
    "SELECT * FROM " + "(SELECT * FROM " * 300 + "orders" + ") t" * 300,
    "SELECT " + "NOT " * 3000 + "true",
    "SELECT " + "- " * 1000 + "1",
    "SELECT 1" + "::int" * 1000,
    "SELECT 1 WHERE 1 IN (" + ",".join(["1"] * 30_000) + ")",
    "SELECT 1 FROM orders o0 " + " ".join(f"JOIN orders o{i} ON true" for i in range(1, 500)),
    "SELECT 1 FROM " + ", ".join(f"orders o{i}" for i in range(1000)),
    "SELECT 1 " + "INTERSECT SELECT 1 " * 2000,
    "SELECT '{}'::jsonb" + "->'k'" * 3000,
    "SELECT v:" + ".".join(f"k{i}" for i in range(15_000)) + " FROM orders",
    "SELECT v" + "['k']" * 5000 + " FROM orders",
    "VALUES " + ",".join(["(1)"] * 20_000),
    "EXPLAIN SELECT 1 " + "UNION ALL SELECT 1 " * 5000,
]


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def _parquet(table: pa.Table, **options: Any) -> bytes:
    out = io.BytesIO()
    pq.write_table(table, out, **options)
    return out.getvalue()


@functools.cache
def bad_files() -> list[tuple[str, str, str]]:
    """(label, file name, base64 content) of files an upload must refuse."""
    zeros = pa.table({"x": pa.repeat(0, 1_000_000)})
    rows = io.BytesIO()
    with pq.ParquetWriter(rows, zeros.schema, compression="zstd") as writer:
        for _ in range(60):
            writer.write_table(zeros)
    wide_header = ",".join(f"c{i}" for i in range(20_000))
    zip_bomb = io.BytesIO()
    with (
        zipfile.ZipFile(zip_bomb, "w", zipfile.ZIP_DEFLATED, compresslevel=1) as archive,
        archive.open("xl/worksheets/sheet1.xml", "w", force_zip64=True) as member,
    ):
        spaces = b" " * (1024 * 1024)
        for _ in range(400):  # 400 MiB, past 64x the 5 MiB upload limit
            member.write(spaces)
    traversal_zip = io.BytesIO()
    with zipfile.ZipFile(traversal_zip, "w") as archive:
        archive.writestr("../../../../tmp/lakegate-pwned", b"x")
    gz_bomb = gzip.compress(b"a,b\n" + b"1,2\n" * (4 * 1024 * 1024), compresslevel=1)
    good_parquet = _parquet(pa.table({"x": [1, 2, 3]}))
    deep_json = "[" * 200_000 + "]" * 200_000
    deep_objects = '[{"a":' * 100_000 + "1" + "}]" * 100_000
    return [
        ("parquet-60M-rows", "rows.parquet", _b64(rows.getvalue())),
        ("parquet-truncated", "cut.parquet", _b64(good_parquet[: len(good_parquet) // 2])),
        ("parquet-footer-only", "footer.parquet", _b64(good_parquet[-200:])),
        ("parquet-garbage", "junk.parquet", _b64(b"PAR1" + b"\xff" * 4096 + b"PAR1")),
        ("csv-20000-columns", "wide.csv", _b64(f"{wide_header}\n{','.join(['1'] * 20_000)}\n".encode())),
        ("csv-gzip-bomb", "bomb.csv", _b64(gz_bomb)),
        ("csv-gz-name", "bomb.csv.gz", _b64(gz_bomb)),
        ("csv-nul", "nul.csv", _b64(b"a,b\n1,\x00\x00\n")),
        ("csv-binary", "bin.csv", _b64(bytes(range(256)) * 16)),
        ("csv-only-header", "head.csv", _b64(b"a,b,c\n")),
        ("csv-latin1", "latin.csv", _b64("a,b\n\xe9,\xff\n".encode("latin-1"))),
        ("csv-unclosed-quote", "quote.csv", _b64(b'a,b\n"1,2\n3,4\n')),
        ("xlsx-zip-bomb", "bomb.xlsx", _b64(zip_bomb.getvalue())),
        ("xlsx-traversal-member", "slip.xlsx", _b64(traversal_zip.getvalue())),
        ("xlsx-not-zip", "fake.xlsx", _b64(b"PK\x03\x04" + b"\x00" * 100)),
        ("json-deep-arrays", "deep.json", _b64(deep_json.encode())),
        ("json-deep-objects", "deepobj.json", _b64(deep_objects.encode())),
        ("json-not-array", "obj.json", _b64(json.dumps({"a": 1}).encode())),
        ("json-array-of-numbers", "nums.json", _b64(b"[1, 2, 3]")),
        ("json-huge-number", "num.json", _b64(b'[{"a": 1' + b"0" * 100_000 + b"}]")),
        ("ndjson-garbage", "bad.ndjson", _b64(b'{"a": 1}\nnot json\n')),
        ("ndjson-nul", "nul.jsonl", _b64(b'{"a": "\x00"}\n')),
        ("exe-name", "payload.exe", _b64(b"MZ" + b"\x00" * 100)),
        ("no-extension", "noext", _b64(b"a\n1\n")),
        ("traversal-name", "../../../../tmp/lakegate-pwned.csv", _b64(b"a\n1\n")),
        ("nul-in-name", "x.csv\x00.parquet", _b64(b"a\n1\n")),
        ("not-base64", "a.csv", "not base64 at all!"),
        ("base64-of-nothing", "a.csv", "===="),
        ("too-large", "big.csv", _b64(b"a\n" + b"1\n" * (4 * 1024 * 1024))),
    ]


def cases() -> Iterator[Case]:
    """Every hostile call of the corpus."""
    name_slots = [
        ("describe_table", "table_name", {}),
        ("preview_table", "table_name", {}),
        ("analyze_schema", "table_name", {}),
        ("transform_to_silver", "bronze_table", {}),
        ("transform_to_silver", "target_name", {"bronze_table": "bronze.none_such"}),
        ("create_gold_view", "name", {"sql": "SELECT 1 AS x"}),
        ("upload_file", "dataset_name", {"file_name": "a.csv", "file_content": _b64(b"a\n1\n")}),
        ("describe_source_table", "table_name", {"connection_id": REAL_SOURCE}),
        ("sync_table_to_bronze", "table_name", {"connection_id": REAL_SOURCE}),
        ("schedule_sync", "table_name", {"connection_id": REAL_SOURCE, "every": 3600}),
        ("connect_postgres", "name", {"host": "db.invalid", "database": "d", "user": "u", "password": "p"}),
    ]
    for tool, slot, rest in name_slots:
        for index, name in enumerate(BAD_NAMES):
            yield Case(tool, {**rest, slot: name}, f"{slot}-name{index}")
    id_slots = [
        ("test_connection", "connection_id", {}),
        ("list_source_tables", "connection_id", {}),
        ("describe_source_table", "connection_id", {"table_name": "orders"}),
        ("query_source", "connection_id", {"sql": "SELECT 1"}),
        ("sync_table_to_bronze", "connection_id", {"table_name": "orders"}),
        ("list_sync_runs", "connection_id", {}),
        ("schedule_sync", "connection_id", {"table_name": "orders", "every": 3600}),
        ("get_sync_run", "run_id", {}),
        ("cancel_sync", "run_id", {}),
        ("delete_schedule", "schedule_id", {}),
    ]
    for tool, slot, rest in id_slots:
        for index, bad in enumerate(BAD_IDS):
            yield Case(tool, {**rest, slot: bad}, f"{slot}-id{index}")
    count_slots = [
        ("list_sources", "offset", {}),
        ("list_sources", "limit", {}),
        ("list_datasets", "offset", {}),
        ("list_schedules", "offset", {}),
        ("list_sync_runs", "offset", {}),
        ("list_audit_records", "offset", {}),
        ("list_tables", "offset", {}),
        ("list_tables", "limit", {}),
        ("list_source_tables", "offset", {"connection_id": REAL_SOURCE}),
        ("query_sql", "max_rows", {"sql": "SELECT 1"}),
        ("query_source", "max_rows", {"connection_id": REAL_SOURCE, "sql": "SELECT 1"}),
        ("preview_table", "limit", {"table_name": "orders"}),
        ("describe_source_table", "sample_size", {"connection_id": REAL_SOURCE, "table_name": "orders"}),
        (
            "connect_postgres",
            "port",
            {"name": "p", "host": "db.invalid", "database": "d", "user": "u", "password": "p"},
        ),
    ]
    for tool, slot, rest in count_slots:
        for index, count in enumerate(BAD_COUNTS):
            if slot == "offset" and count is None:
                continue  # an offset of null is the default, not a mistake
            yield Case(tool, {**rest, slot: count}, f"{slot}-count{index}")
    for index, cron in enumerate(BAD_CRONS):
        yield Case(
            "schedule_sync", {"connection_id": REAL_SOURCE, "table_name": "orders", "cron": cron}, f"cron{index}"
        )
    for index, every in enumerate(BAD_EVERY):
        yield Case(
            "schedule_sync", {"connection_id": REAL_SOURCE, "table_name": "orders", "every": every}, f"every{index}"
        )
    shape_slots = [
        ("query_sql", "sql", {}),
        ("describe_table", "table_name", {}),
        ("connect_postgres", "host", {"name": "shape", "database": "d", "user": "u", "password": "p"}),
        ("transform_to_silver", "transformations", {"bronze_table": "orders"}),
        ("suggest_query", "tables", {"question": "how many?"}),
        ("upload_file", "file_content", {"file_name": "a.csv", "dataset_name": "shape"}),
        ("schedule_sync", "sync_mode", {"connection_id": REAL_SOURCE, "table_name": "orders", "every": 3600}),
    ]
    for tool, slot, rest in shape_slots:
        for label, value in BAD_SHAPES:
            yield Case(tool, {**rest, slot: value}, f"{slot}-{label}")
    for tool, rest in [
        ("query_sql", {}),
        ("query_source", {"connection_id": REAL_SOURCE}),
        ("create_gold_view", {"name": "hostile_view"}),
        ("explain_data", {}),
    ]:
        for index, sql in enumerate(BAD_SQL):
            yield Case(tool, {**rest, "sql": sql}, f"sql{index}")
    connect = {"name": "hostile", "host": "db.invalid", "database": "d", "user": "u", "password": "p"}
    for slot, value in [
        ("host", "\x00"),
        ("host", "a" * 300),
        ("host", "127.0.0.1\x00.evil"),
        ("host", "http://169.254.169.254/latest"),
        ("host", "[::1"),
        ("host", "-oProxyCommand=x"),
        ("database", "d\x00"),
        ("database", "d" * 1000),
        ("user", "u\x00"),
        ("user", "u" * 1000),
        ("password", "p\x00"),
        ("password", "p" * 100_000),
        ("name", ""),
        ("name", "x" * 41),
    ]:
        yield Case("connect_postgres", {**connect, slot: value}, f"connect-{slot}-{len(value)}")
    steps: list[tuple[str, Any]] = [
        ("unknown-kind", [{"kind": "exec", "sql": "DROP TABLE x"}]),
        ("rename-traversal", [{"kind": "rename", "column": "x", "to": "../../y"}]),
        ("rename-nul", [{"kind": "rename", "column": "x", "to": "y\x00"}]),
        ("cast-evil-type", [{"kind": "cast", "column": "x", "to": "int); DROP TABLE x; --"}]),
        ("filter-injection", [{"kind": "filter", "condition": "1=1; DROP TABLE orders"}]),
        ("filter-subquery", [{"kind": "filter", "condition": "x IN (SELECT * FROM read_csv('/etc/passwd'))"}]),
        ("thousand-steps", [{"kind": "trim", "column": "x"}] * 1000),
        ("step-not-object", ["trim"]),
    ]
    for label, value in steps:
        yield Case("transform_to_silver", {"bronze_table": "orders", "transformations": value}, f"steps-{label}")
    for label, file_name, content in bad_files():
        yield Case("upload_file", {"file_name": file_name, "file_content": content, "dataset_name": "hostile"}, label)
    yield Case("suggest_query", {"question": "q" * 2_000_000}, "question-2MB")
    yield Case("suggest_query", {"question": "how many?", "tables": [f"t{i}" for i in range(10_000)]}, "tables-10000")
    yield Case("no_such_tool", {}, "unknown-tool")
