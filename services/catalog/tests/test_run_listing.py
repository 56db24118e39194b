"""`runs.get` and `runs.list` answered with the JSON PostgreSQL writes: byte for byte what the models wrote."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

import asyncpg
from lakegate.catalog.app import CatalogState
from lakegate.catalog.paging import Window
from lakegate.common.contracts.catalog import ListRuns, RunList
from lakegate.common.contracts.runs import Extracting, RunRef
from lakegate.common.rpc import reply_json
from lakegate.common.subjects import RunStep

from .texts import AWKWARD

if TYPE_CHECKING:
    from conftest import Peer


async def _bytes(peer: Peer, subject: str, request: RunRef | ListRuns) -> bytes:
    return bytes((await peer.nc.request(subject, request.model_dump_json().encode(), timeout=20)).data)


async def test_runs_are_got_and_listed_byte_for_byte_as_the_models_would_write_them(
    catalog: CatalogState, peer: Peer, db: asyncpg.Connection
) -> None:
    source, other = await peer.register("shop"), await peer.register("depot")
    events = await peer.events()
    queued = await peer.start(source.connection_id, "queued")
    extracting = await peer.start(source.connection_id, "extracting")
    await peer.step(
        extracting.run_id,
        RunStep.EXTRACTING,
        Extracting(tenant_id=peer.tenant_id, run_id=extracting.run_id, attempt="a1"),
    )
    succeeded = await peer.start(source.connection_id, "succeeded")
    await peer.succeed(succeeded, events, rows=1234, primary_key=["id"])
    failed = await peer.start(source.connection_id, "failed")
    await peer.fail(failed, events)
    cancelled = await peer.start(other.connection_id, "cancelled")
    await peer.cancel(cancelled.run_id)
    await peer.event_of(cancelled.run_id, events)  # a cancelled run's event comes too
    instant = await peer.start(other.connection_id, "instant")
    await peer.succeed(instant, events, rows=3)

    cursor = {"version": 1, "column": AWKWARD, "value": f"v {AWKWARD}", "source_type": "text", "snapshot": "5:9:6,7"}
    old_cursor = {"version": 1, "column": "id", "value": "42", "source_type": "bigint"}  # stored before snapshots
    changes = [
        {"version": 1, "column": AWKWARD, "change": "added", "before": None, "after": "int64"},
        {"version": 1, "column": "gone", "change": "dropped", "before": "string", "after": None},
    ]
    columns = [{"version": 1, "name": AWKWARD, "source_type": "text", "arrow_type": "string", "mapped": False}]
    for run_id, settings in (
        # A duration of whole seconds, of one microsecond more, and a throughput with many digits.
        (succeeded.run_id, ("2026-01-02 03:04:05+00", "2026-01-02 03:04:08.000001+00", cursor, changes, columns)),
        # Never started: timed from creation; and a cursor that a failed run does not show.
        (failed.run_id, (None, "2026-01-02 03:04:05.5+00", cursor, changes, None)),
        # Finished before it started (clocks): a duration of 0, so no throughput.
        (instant.run_id, ("2026-01-02 03:04:06+00", "2026-01-02 03:04:05+00", old_cursor, [], columns)),
    ):
        started, finished, stored_cursor, stored_changes, stored_columns = settings
        await db.execute(
            """
            UPDATE runs SET started_at = $2::text::timestamptz, finished_at = $3::text::timestamptz,
                   cursor = $4::text::jsonb, schema_changes = $5::text::jsonb, columns = $6::text::jsonb,
                   created_at = '2026-01-02 03:04:01.25+00', staged_rows = staged_rows + 66,
                   error_message = CASE WHEN error_code IS NULL THEN NULL ELSE $7 END
             WHERE run_id = $1
            """,
            run_id,
            started,
            finished,
            json.dumps(stored_cursor),
            json.dumps(stored_changes),
            None if stored_columns is None else json.dumps(stored_columns),
            f"failed: {AWKWARD}",
        )
    await db.execute("UPDATE runs SET schedule_id = $2 WHERE run_id = $1", queued.run_id, f"sch {AWKWARD}")

    runs = (queued, extracting, succeeded, failed, cancelled, instant)
    for run in runs:
        expected = reply_json((await catalog.handlers.runs.get(peer.tenant_id, run.run_id)).view())
        assert (
            await _bytes(peer, peer.topology.runs_get, RunRef(tenant_id=peer.tenant_id, run_id=run.run_id)) == expected
        )
    for connection_id in (None, source.connection_id, other.connection_id):
        for limit, offset in ((50, 0), (2, 0), (2, 2), (2, 4), (4, 4), (1, 7)):
            records, next_offset = await catalog.handlers.runs.newest(
                peer.tenant_id, connection_id, Window(offset, limit)
            )
            expected = reply_json(RunList(runs=[record.view() for record in records], next_offset=next_offset))
            request = ListRuns(tenant_id=peer.tenant_id, connection_id=connection_id, limit=limit, offset=offset)
            assert await _bytes(peer, peer.topology.runs_list, request) == expected
    listed = await peer.rpc.call(peer.topology.runs_list, ListRuns(tenant_id=peer.tenant_id), RunList)
    assert len(listed.runs) == len(runs)
    shown = {run.run_id: run for run in listed.runs}
    assert shown[succeeded.run_id].duration_seconds == 3.000001
    assert shown[instant.run_id].duration_seconds == 0.0
    assert shown[instant.run_id].rows_per_second is None
    assert shown[failed.run_id].cursor is None


async def test_another_tenants_run_is_not_found_and_not_listed(catalog: CatalogState, peer: Peer) -> None:
    source = await peer.register("shop")
    run = await peer.start(source.connection_id, "orders")
    stranger = f"{peer.tenant_id}x"
    reply = await _bytes(peer, peer.topology.runs_get, RunRef(tenant_id=stranger, run_id=run.run_id))
    assert b'"code":"not_found"' in reply
    listed = await peer.rpc.call(peer.topology.runs_list, ListRuns(tenant_id=stranger), RunList)
    assert listed.runs == []
    assert (await peer.run(run.run_id)).run_id == run.run_id  # its own tenant still gets it
