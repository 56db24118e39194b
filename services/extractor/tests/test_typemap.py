"""The type map, end to end: rows in PostgreSQL → extractor → staged Arrow parts, value by value."""

from __future__ import annotations

import base64
from typing import Any

import asyncpg
import pyarrow as pa
from lakegate.common.contracts.runs import Extracted, Failed

from .conftest import FakeCatalog, login_for

EVERY_TYPE = """
CREATE TYPE mood AS ENUM ('happy', 'sad', 'ünïcode');
CREATE DOMAIN positive AS integer CHECK (VALUE > 0);
CREATE TABLE every_type (
    id integer PRIMARY KEY,
    i2 smallint, i4 integer, i8 bigint, f4 real, f8 double precision, b boolean,
    t text, vc varchar(20), bp char(5),
    n38 numeric(38,10), n_free numeric, n_wide numeric(50,5),
    d date, ts timestamp, tstz timestamptz,
    u uuid, j json, jb jsonb, by bytea,
    ia integer[], ta text[], na numeric(10,2)[], ma mood[], tsa timestamp[], pa positive[],
    iv interval, tm time, ttz timetz, m mood, pos positive,
    ip inet
);
INSERT INTO every_type VALUES (
    1, -32768, -2147483648, 9223372036854775807, 1.5, 1e308, true,
    'Grüße, 世界 🚀', '', 'ab',
    '1234567890123456789012345678.1234567890', '3.14159265358979323846264338327950288419716939937510',
    '123456789012345678901234567890123456789012345.12345',
    '0001-01-01', '0001-01-01 00:00:00', '0001-01-01 00:00:00+00',
    'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11', '{"b": 1,  "a": [1, 2]}', '{"b": 1, "a": [1, 2]}', '\\x00ff0000',
    '{1,NULL,3}', '{"",NULL,"ü"}', '{1.50,NULL,-2.25}', '{happy,ünïcode}', '{"2024-02-29 12:00:00",NULL}', '{7,8}',
    '1 year 2 months 3 days 04:05:06.789', '23:59:59.999999', '12:00:00+05:30', 'ünïcode', 7,
    '192.168.0.1/24'
);
INSERT INTO every_type (id) VALUES (2);
INSERT INTO every_type VALUES (
    3, 32767, 2147483647, -9223372036854775808, -1.25, -0.0, false,
    '', 'x', 'abcde',
    '-1234567890123456789012345678.1234567890', '-0.000000000000000000000000000001', '0.00000',
    '9999-12-31', '9999-12-31 23:59:59.999999', '9999-12-31 23:59:59.999999+00',
    '00000000-0000-0000-0000-000000000000', '[]', 'null', '',
    '{}', '{}', '{}', '{}', '{}', '{}',
    '-1 days -00:00:01', '00:00:00', '00:00:00-12', 'happy', 1,
    '::1'
);
INSERT INTO every_type (id, d, ts, tstz, tsa) VALUES
    (4, 'infinity', '-infinity', 'infinity', '{infinity,-infinity}');
INSERT INTO every_type (id, n_free, u) VALUES
    (5, 'NaN', 'FFFFFFFF-0000-4ABC-8DEF-0123456789AB'), (6, 'Infinity', NULL), (7, '-Infinity', NULL);
"""

# What PostgreSQL itself says each column holds; text-mapped columns as PostgreSQL prints them.
EXPECTED = """
SELECT id, i2, i4, i8, f4, f8, b, t, vc, bp::text AS bp, n38, n_free::text, n_wide::text, d, ts, tstz,
       u::text, j::text, jb::text, by, ia, ta, na, ma::text[], tsa, pa::int[],
       iv::text, tm::text, ttz::text, m::text, pos, textin(inet_out(ip)) AS ip
FROM every_type ORDER BY id
"""

INFINITE = {"d", "ts", "tstz", "tsa"}

EXPECTED_TYPES = {
    "id": pa.int32(),
    "i2": pa.int16(),
    "i4": pa.int32(),
    "i8": pa.int64(),
    "f4": pa.float32(),
    "f8": pa.float64(),
    "b": pa.bool_(),
    "t": pa.string(),
    "vc": pa.string(),
    "bp": pa.string(),
    "n38": pa.decimal128(38, 10),
    "n_free": pa.string(),
    "n_wide": pa.string(),
    "d": pa.date32(),
    "ts": pa.timestamp("us"),
    "tstz": pa.timestamp("us", tz="UTC"),
    "u": pa.string(),
    "j": pa.string(),
    "jb": pa.string(),
    "by": pa.binary(),
    "ia": pa.list_(pa.int32()),
    "ta": pa.list_(pa.string()),
    "na": pa.list_(pa.decimal128(10, 2)),
    "ma": pa.list_(pa.string()),
    "tsa": pa.list_(pa.timestamp("us")),
    "pa": pa.list_(pa.int32()),
    "iv": pa.string(),
    "tm": pa.string(),
    "ttz": pa.string(),
    "m": pa.string(),
    "pos": pa.int32(),
    "ip": pa.string(),
}


async def expected_rows(conn: asyncpg.Connection, sql: str) -> list[dict[str, Any]]:
    await conn.execute("SET IntervalStyle = iso_8601")
    return [dict(row) for row in await conn.fetch(sql)]


def staged_rows(batches: list[pa.RecordBatch]) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = pa.Table.from_batches(batches).to_pylist()
    return rows


async def extract_every_type(catalog: FakeCatalog, source: asyncpg.Connection, source_dsn: str) -> Extracted:
    await source.execute(EVERY_TYPE)
    outcome = await catalog.extract(catalog.add_source(login_for(source_dsn)), "every_type")
    assert isinstance(outcome, Extracted), outcome
    return outcome


async def test_every_mapped_type_arrives_in_staging_exactly_as_postgresql_holds_it(
    catalog: FakeCatalog, source: asyncpg.Connection, source_dsn: str
) -> None:
    extracted = await extract_every_type(catalog, source, source_dsn)

    got = staged_rows(await catalog.staged_batches(extracted))
    want = await expected_rows(source, EXPECTED)
    assert extracted.row_count == len(want) == 7
    for got_row, want_row in zip(got, want, strict=True):
        for column, value in want_row.items():
            if got_row["id"] == 4 and column in INFINITE:
                continue  # asyncpg has no aware "infinity"; the test on infinity below covers row 4
            assert got_row[column] == value, f"row {want_row['id']} column {column}"


async def test_the_staged_schema_has_plain_types_the_columns_nullability_and_no_metadata(
    catalog: FakeCatalog, source: asyncpg.Connection, source_dsn: str
) -> None:
    extracted = await extract_every_type(catalog, source, source_dsn)

    schema = pa.ipc.read_schema(pa.py_buffer(base64.b64decode(extracted.arrow_schema)))
    assert {field.name: field.type for field in schema} == EXPECTED_TYPES
    assert [field.name for field in schema] == list(EXPECTED_TYPES)
    assert schema.metadata is None
    assert all(field.metadata is None for field in schema)
    assert not schema.field("id").nullable
    assert all(field.nullable for field in schema if field.name != "id")
    for batch in await catalog.staged_batches(extracted):
        assert batch.schema.equals(schema, check_metadata=True)


async def test_unmapped_types_become_text_flagged_unmapped_and_are_never_dropped(
    catalog: FakeCatalog, source: asyncpg.Connection, source_dsn: str
) -> None:
    await source.execute(
        """
        CREATE DOMAIN mac_domain AS macaddr;
        CREATE TABLE odd (
            id int, ip inet, net cidr, mac macaddr, cash money, flags bit(4), doc tsvector,
            spot point, span int4range, x xml, ips inet[], md mac_domain
        );
        INSERT INTO odd VALUES (1, '10.0.0.1', '10.0.0.0/8', '08:00:2b:01:02:03', 12.34, B'1010',
            'a fat cat', '(1,2)', '[1,5)', '<a>ü</a>', '{10.0.0.1,NULL}', '08:00:2b:01:02:03');
        """
    )
    outcome = await catalog.extract(catalog.add_source(login_for(source_dsn)), "odd")
    assert isinstance(outcome, Extracted), outcome

    mapped = {column.name: column.mapped for column in outcome.columns}
    assert mapped == {"id": True, "ip": True} | {
        name: False for name in ("net", "mac", "cash", "flags", "doc", "spot", "span", "x", "ips", "md")
    }
    assert all(column.arrow_type == "string" for column in outcome.columns if column.name != "id")
    got = staged_rows(await catalog.staged_batches(outcome))
    want = await expected_rows(
        source,
        "SELECT id, textin(inet_out(ip)) AS ip, net::text, mac::text, cash::text, flags::text, doc::text, spot::text, "
        "span::text, x::text, ips::text, md::text FROM odd",
    )
    assert got == want


async def test_char_n_arrives_without_its_blank_padding_and_keeps_its_declared_type(
    catalog: FakeCatalog, source: asyncpg.Connection, source_dsn: str
) -> None:
    await source.execute(
        """
        CREATE TABLE region (r_regionkey integer PRIMARY KEY, r_name char(25), codes char(3)[], v varchar(9));
        INSERT INTO region VALUES (1, 'EUROPE', '{"a", "ab ", NULL}', 'kept  '), (2, '  lead', '{}', NULL),
            (3, '', NULL, ''), (4, NULL, NULL, NULL);
        """
    )
    outcome = await catalog.extract(catalog.add_source(login_for(source_dsn)), "region")
    assert isinstance(outcome, Extracted), outcome

    got = staged_rows(await catalog.staged_batches(outcome))
    assert [(row["r_name"], row["codes"], row["v"]) for row in got] == [
        ("EUROPE", ["a", "ab", None], "kept  "),
        ("  lead", [], None),
        ("", None, ""),
        (None, None, None),
    ]
    lengths = await source.fetch("SELECT length(r_name) AS n FROM region ORDER BY r_regionkey")
    assert [None if row["r_name"] is None else len(row["r_name"]) for row in got] == [row["n"] for row in lengths]
    assert {column.name: column.source_type for column in outcome.columns}["r_name"] == "character(25)"


async def test_infinite_dates_and_timestamps_become_the_warehouse_extremes(
    catalog: FakeCatalog, source: asyncpg.Connection, source_dsn: str
) -> None:
    extracted = await extract_every_type(catalog, source, source_dsn)

    row = next(r for r in staged_rows(await catalog.staged_batches(extracted)) if r["id"] == 4)
    assert str(row["d"]) == "9999-12-31"
    assert str(row["ts"]) == "0001-01-01 00:00:00"
    assert row["tstz"].isoformat() == "9999-12-31T23:59:59.999999+00:00"
    assert [str(value) for value in row["tsa"]] == ["9999-12-31 23:59:59.999999", "0001-01-01 00:00:00"]


async def test_a_multi_dimensional_array_in_a_one_dimensional_column_fails_naming_the_column(
    catalog: FakeCatalog, source: asyncpg.Connection, source_dsn: str
) -> None:
    # CREATE TABLE AS records no dimensions, so only the values tell.
    await source.execute("CREATE TABLE grid AS SELECT 1 AS id, '{{1,2},{3,4}}'::int[] AS cells")
    outcome = await catalog.extract(catalog.add_source(login_for(source_dsn)), "grid")

    assert isinstance(outcome, Failed), outcome
    assert outcome.error.code == "source_error"
    assert "column cells" in outcome.error.message
    assert "multi-dimensional" in outcome.error.message


async def test_a_column_declared_with_two_dimensions_is_synced_as_its_array_text(
    catalog: FakeCatalog, source: asyncpg.Connection, source_dsn: str
) -> None:
    await source.execute("CREATE TABLE grid2 (id int, cells int[][]); INSERT INTO grid2 VALUES (1, '{{1,2},{3,4}}')")
    outcome = await catalog.extract(catalog.add_source(login_for(source_dsn)), "grid2")

    assert isinstance(outcome, Extracted), outcome
    assert staged_rows(await catalog.staged_batches(outcome)) == [{"id": 1, "cells": "{{1,2},{3,4}}"}]


async def test_nan_in_a_decimal_column_fails_the_run_naming_the_column(
    catalog: FakeCatalog, source: asyncpg.Connection, source_dsn: str
) -> None:
    await source.execute("CREATE TABLE prices (id int, price numeric(10,2)); INSERT INTO prices VALUES (1, 'NaN')")
    outcome = await catalog.extract(catalog.add_source(login_for(source_dsn)), "prices")

    assert isinstance(outcome, Failed), outcome
    assert "column price (numeric(10,2)) of public.prices" in outcome.error.message
    assert "decimal128(10, 2)" in outcome.error.message


async def test_an_instant_beyond_what_arrow_holds_fails_naming_the_column(
    catalog: FakeCatalog, source: asyncpg.Connection, source_dsn: str
) -> None:
    await source.execute(
        "CREATE TABLE far (id int, at timestamp);"
        "INSERT INTO far VALUES (1, '2024-01-01'), (2, '294276-12-31 23:59:59'), (3, 'infinity')"
    )
    outcome = await catalog.extract(catalog.add_source(login_for(source_dsn)), "far")

    assert isinstance(outcome, Failed), outcome
    assert "column at (timestamp without time zone) of public.far" in outcome.error.message
    assert "year 262143" in outcome.error.message
