"""`Streaming`: a single-stream full or incremental run says where its parts go before the first of them."""

from __future__ import annotations

import asyncpg
import pytest
from lakegate.common.contracts.runs import Extracted, Streaming, SyncMode
from lakegate.common.subjects import STREAMING_STEP
from nats.aio.msg import Msg

from .conftest import FakeCatalog, login_for


async def heard(catalog: FakeCatalog) -> list[Msg]:
    """Every `streaming` step and staged part from now on, in the order the extractor published them."""
    seen: list[Msg] = []

    async def on_message(msg: Msg) -> None:
        seen.append(msg)

    nc, prefix = catalog.broker.connection, catalog.topology.prefix
    await nc.subscribe(f"{prefix}.run.*.{STREAMING_STEP}", cb=on_message)
    await nc.subscribe(f"{prefix}.stage.>", cb=on_message)
    await nc.flush()
    return seen


@pytest.mark.parametrize(("mode", "cursor"), [("full", None), ("incremental", "changed")])
async def test_a_streamed_run_announces_its_parts_location_and_columns_before_the_first_part(
    mode: SyncMode, cursor: str | None, catalog: FakeCatalog, source: asyncpg.Connection, source_dsn: str
) -> None:
    await source.execute(
        "CREATE TABLE events (id int PRIMARY KEY, changed int NOT NULL);"
        "INSERT INTO events SELECT g, g FROM generate_series(1, 2000) g"
    )
    seen = await heard(catalog)

    outcome = await catalog.extract(
        catalog.add_source(login_for(source_dsn)), "events", mode=mode, cursor_column=cursor
    )

    assert isinstance(outcome, Extracted), outcome
    await catalog.broker.connection.flush()
    mine = [msg for msg in seen if outcome.run_id in msg.subject]
    assert mine[0].subject.endswith(f".{STREAMING_STEP}")
    streaming = Streaming.model_validate_json(mine[0].data)
    assert streaming.location == outcome.staged.location
    assert [msg.subject for msg in mine[1:]] == [outcome.staged.location] * outcome.staged.parts
    assert (streaming.columns, streaming.primary_key, streaming.arrow_schema) == (
        outcome.columns,
        outcome.primary_key,
        outcome.arrow_schema,
    )
    assert streaming.cursor_column == (outcome.cursor.column if mode == "incremental" and outcome.cursor else None)


async def test_a_merge_run_is_not_streamed_and_is_loaded_on_extracted(
    catalog: FakeCatalog, source: asyncpg.Connection, source_dsn: str
) -> None:
    await source.execute(
        "CREATE TABLE keyed (id int PRIMARY KEY, changed int NOT NULL); INSERT INTO keyed VALUES (1, 1)"
    )
    seen = await heard(catalog)

    connection_id = catalog.add_source(login_for(source_dsn))
    outcome = await catalog.extract(connection_id, "keyed", mode="merge", cursor_column="changed")

    assert isinstance(outcome, Extracted), outcome
    await catalog.broker.connection.flush()
    assert not [msg for msg in seen if outcome.run_id in msg.subject and msg.subject.endswith(STREAMING_STEP)]
