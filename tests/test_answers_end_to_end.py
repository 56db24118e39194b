"""Long answers reach the official MCP client at its default limits, cut with a note on how to page."""

from __future__ import annotations

import re

from lakegate.devstack.stack import Stack
from lakegate.devstack.toolresults import structured, text_of
from mcp import Client

from tests.conftest import Source
from tests.mcp_calls import call

# 3000 rows of about 1 KB each as JSON: some 3 MB, three times what one server-sent event may hold.
LINEITEM = """
CREATE TABLE lineitem (
    l_orderkey bigint NOT NULL,
    l_linenumber integer NOT NULL,
    l_quantity decimal(15, 2) NOT NULL,
    l_extendedprice decimal(15, 2) NOT NULL,
    l_shipdate date NOT NULL,
    l_shipmode char(10) NOT NULL,
    l_comment varchar(1000) NOT NULL,
    PRIMARY KEY (l_orderkey, l_linenumber)
);
INSERT INTO lineitem
SELECT g / 4, g % 4, g % 50, g * 1.25, date '1995-01-01' + g % 700, 'MAIL', repeat('carefully final deposits ', 40)
FROM generate_series(0, 2999) g;
"""


async def test_a_wide_long_query_answer_fits_the_clients_limit_and_pages_to_the_end(
    stack: Stack, source: Source, unique: str
) -> None:
    await source.execute(LINEITEM)
    name = f"ans{unique}"
    table = f"bronze.{name}_lineitem"
    async with Client(stack.urls.mcp) as client:
        connection = await call(client, "connect_postgres", source.connect_arguments(name))
        await call(
            client, "sync_table_to_bronze", {"connection_id": connection["connection_id"], "table_name": "lineitem"}
        )

        select = f"SELECT * FROM {table} ORDER BY l_orderkey, l_linenumber"
        first = await client.call_tool("query_sql", {"sql": f"{select} LIMIT 3000", "max_rows": 3000})
        page = structured(first)
        assert page["truncated"] is True
        assert 0 < page["row_count"] < 3000
        assert len(page["rows"]) == page["row_count"]
        assert f"OFFSET {page['row_count']}" in page["note"]
        assert len(text_of(first)) < 8192, "the text block is a summary, not a second copy of the rows"
        assert "truncated" in text_of(first)

        seen = [(row[0], row[1]) for row in page["rows"]]
        limit = re.search(r"LIMIT (\d+) OFFSET", page["note"]).group(1)  # type: ignore[union-attr]
        while page["truncated"]:
            sql = f"{select} LIMIT {limit} OFFSET {len(seen)}"
            page = await call(client, "query_sql", {"sql": sql, "max_rows": 3000})
            assert page["row_count"] > 0
            seen += [(row[0], row[1]) for row in page["rows"]]

        preview = await call(client, "preview_table", {"table_name": table, "limit": 1000})
        explored = await call(
            client,
            "query_source",
            {"connection_id": connection["connection_id"], "sql": "SELECT * FROM lineitem", "max_rows": 3000},
        )

    assert seen == [(g // 4, g % 4) for g in range(3000)], "the pages hold every row once, in order"
    assert preview["truncated"] is True
    assert 0 < preview["row_count"] < 1000
    assert explored["truncated"] is True
    assert 0 < explored["row_count"] < 3000
