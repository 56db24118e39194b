"""Source tables the end-to-end tests sync: every mapped type with edge values, and a large mixed one."""

from __future__ import annotations

import asyncpg

EVERY_TYPE_DDL = """
CREATE TYPE mood AS ENUM ('happy', 'sad', 'ünïcode');
CREATE TABLE every_type (
    id bigint PRIMARY KEY,
    i int,
    s smallint,
    n numeric(38, 10),
    n_free numeric,
    f double precision,
    r real,
    b boolean,
    ts timestamp,
    tz timestamptz,
    d date,
    u uuid,
    j json,
    jb jsonb,
    by bytea,
    t text,
    vc varchar(20),
    m mood,
    arr int[],
    iv interval,
    ip inet
);
INSERT INTO every_type VALUES
 (1, 2147483647, 32767, 1234567890123456789012345678.1234567890, 3.14159265358979323846264338327950288419716939937510,
  1.5e300, 3.25, true, '0001-01-01 00:00:00', '0001-01-01 00:00:00+00', '0001-01-01',
  'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11', '{"a": [1, 2, {"b": null}]}', '{"k": "välue", "n": 1.5}',
  '\\x00ff00', 'héllo wörld ✓ 日本語', '', 'happy', '{1,NULL,3}', '1 year 2 months 3 days 04:05:06.789',
  '192.168.0.1/24'),
 (2, -2147483648, -32768, -9999999999999999999999999999.9999999999, -0.000000000000000000001,
  -2.2250738585072014e-308, -1.5, false, '9999-12-31 23:59:59.999999', '9999-12-31 23:59:59.999999+00', '9999-12-31',
  '00000000-0000-0000-0000-000000000000', '[]', '{}', '\\x', '', 'x', 'ünïcode', '{}', '-1 days', '::1'),
 (3, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL,
  NULL),
 (4, 0, 0, 0, 0, 0, 0, true, '2024-02-29 12:34:56.123456', '2024-02-29 12:34:56.123456+05:30', '2024-02-29',
  'ffffffff-ffff-ffff-ffff-ffffffffffff', 'null', '"text"', '\\xdeadbeef', 'tab\tnewline\nquote''"', 'é',
  'sad', '{0}', '00:00:00', '10.0.0.1');
"""

MIXED_DDL = """
CREATE TABLE orders (
    id bigint PRIMARY KEY,
    customer_id int NOT NULL,
    quantity smallint NOT NULL,
    note text,
    amount numeric(12, 2) NOT NULL,
    weight double precision,
    paid boolean NOT NULL,
    created_at timestamptz NOT NULL,
    local_time timestamp NOT NULL,
    ref uuid NOT NULL,
    attrs jsonb,
    comment text
);
INSERT INTO orders
SELECT g,
       ((g::bigint * 7919) % 100000)::int,
       (g % 300)::smallint,
       'order ' || g,
       ((g * 37) % 1000000) / 100.0,
       g * 0.5,
       g % 3 = 0,
       timestamptz '2020-01-01 00:00:00+00' + g * interval '1 second',
       timestamp '2020-01-01 00:00:00' + g * interval '1 minute',
       md5(g::text)::uuid,
       jsonb_build_object('g', g, 'tag', 'näme'),
       CASE WHEN g % 5 = 0 THEN NULL ELSE 'c' || g END
FROM generate_series(1, $rows) AS g;
"""


async def create_every_type_table(dsn: str) -> None:
    conn = await asyncpg.connect(dsn)
    try:
        await conn.execute(EVERY_TYPE_DDL)
    finally:
        await conn.close()


async def create_orders_table(dsn: str, rows: int) -> None:
    conn = await asyncpg.connect(dsn)
    try:
        await conn.execute(MIXED_DDL.replace("$rows", str(int(rows))))
        await conn.execute("ANALYZE orders")
    finally:
        await conn.close()
