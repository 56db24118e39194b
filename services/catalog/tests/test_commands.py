"""Commands the catalog consumes from the CMD work queue: dataset records from the loader and audit
records from the edge, published as those services do and read back over NATS."""

from __future__ import annotations

import asyncio
import math
from datetime import UTC, datetime, timedelta, timezone
from typing import TYPE_CHECKING

from lakegate.catalog.app import CatalogState
from lakegate.catalog.paging import Window
from lakegate.common.contracts.audit import AuditList, AuditRecord, AuditRecords, ListAudit
from lakegate.common.contracts.catalog import DatasetList, ListDatasets
from lakegate.common.contracts.runs import ColumnMapping, ExtractTable, TableRef
from lakegate.common.contracts.transforms import DatasetRecord

if TYPE_CHECKING:
    from conftest import Peer

SILVER_SQL = "SELECT DISTINCT * FROM tenant_x.bronze.shop_orders"
CLEAN = [ColumnMapping(name="id", source_type="bigint", arrow_type="int64", mapped=True)]
T0 = datetime(2025, 3, 1, 12, 0, 0, 123456, tzinfo=UTC)


def _ref(peer: Peer, layer: str, name: str) -> TableRef:
    return TableRef(catalog=f"tenant_{peer.tenant_id}", schema_name=layer, name=name)


def _record(peer: Peer, layer: str, name: str, **fields: object) -> DatasetRecord:
    kind = {"silver": "silver", "gold": "gold", "bronze": "upload"}[layer]
    return DatasetRecord.model_validate(
        {"tenant_id": peer.tenant_id, "target": _ref(peer, layer, name), "kind": kind, **fields}
    )


def _audit(peer: Peer, n: int, **fields: object) -> AuditRecord:
    values: dict[str, object] = {
        "id": f"call_{n:03d}",
        "tenant_id": peer.tenant_id,
        "actor": "local",
        "tool": "query_sql",
        "arguments": {"sql": f"SELECT {n}"},
        "outcome": "ok",
        "duration_ms": 12.5 + n,
        "at": T0 + timedelta(seconds=n),
    }
    return AuditRecord.model_validate({**values, **fields})


async def _datasets(peer: Peer, *, limit: int = 100, offset: int = 0) -> DatasetList:
    request = ListDatasets(tenant_id=peer.tenant_id, limit=limit, offset=offset)
    datasets: DatasetList = await peer.rpc.call(peer.topology.datasets_list, request, DatasetList)
    return datasets


async def _audit_page(peer: Peer, *, tenant_id: str | None = None, limit: int = 50, offset: int = 0) -> AuditList:
    request = ListAudit(tenant_id=tenant_id or peer.tenant_id, limit=limit, offset=offset)
    records: AuditList = await peer.rpc.call(peer.topology.audit_list, request, AuditList)
    return records


async def test_silver_gold_and_uploaded_tables_are_listed_with_their_lineage_layer_by_layer(
    catalog: CatalogState, peer: Peer
) -> None:
    settled = await peer.settlements("catalog_datasets")
    bronze, silver = _ref(peer, "bronze", "shop_orders"), _ref(peer, "silver", "orders")
    records = [
        _record(peer, "gold", "daily_revenue", upstream=[silver], definition="SELECT 1", columns=CLEAN),
        _record(peer, "silver", "orders", upstream=[bronze], definition=SILVER_SQL, row_count=7, columns=CLEAN),
        _record(peer, "bronze", "prices", file_name="prices.csv", row_count=3, columns=CLEAN),
    ]
    for n, record in enumerate(records):
        seq = await peer.command(peer.topology.cmd_record_dataset, record, f"record-{n}")
        assert await settled.of(seq) == "+ACK"

    listed = (await _datasets(peer)).datasets
    assert [(d.target.schema_name, d.target.name, d.kind) for d in listed] == [
        ("bronze", "prices", "upload"),
        ("silver", "orders", "silver"),
        ("gold", "daily_revenue", "gold"),
    ]
    upload, cleaned, view = listed
    assert (upload.file_name, upload.row_count, upload.upstream, upload.definition) == ("prices.csv", 3, [], None)
    assert (cleaned.upstream, cleaned.definition, cleaned.row_count, cleaned.columns) == (
        [bronze],
        SILVER_SQL,
        7,
        CLEAN,
    )
    assert (view.upstream, view.definition, view.row_count) == ([silver], "SELECT 1", None)
    for dataset in listed:
        assert (dataset.connection_id, dataset.source_table, dataset.last_run_id) == (None, None, None)
        assert (dataset.keys, dataset.last_synced_at) == ([], None)

    first = await _datasets(peer, limit=2)
    assert ([d.target.name for d in first.datasets], first.next_offset) == (["prices", "orders"], 2)
    rest = await _datasets(peer, limit=2, offset=2)
    assert ([d.target.name for d in rest.datasets], rest.next_offset) == (["daily_revenue"], None)


async def test_a_table_belongs_to_whoever_wrote_it_last_a_sync_or_an_upload(catalog: CatalogState, peer: Peer) -> None:
    settled = await peer.settlements("catalog_datasets")
    source = await peer.register("shop")
    events = await peer.events()
    run = await peer.start(source.connection_id, "orders")
    await peer.succeed(run, events, rows=5, primary_key=["id"])

    upload = _record(peer, "bronze", "shop_orders", file_name="orders.xlsx", row_count=2, columns=CLEAN)
    assert await settled.of(await peer.command(peer.topology.cmd_record_dataset, upload, "upload-1")) == "+ACK"
    (replaced,) = (await _datasets(peer)).datasets
    assert (replaced.kind, replaced.file_name, replaced.row_count) == ("upload", "orders.xlsx", 2)
    assert (replaced.connection_id, replaced.keys, replaced.last_run_id, replaced.last_synced_at) == (
        None,
        [],
        None,
        None,
    )

    again = await peer.start(source.connection_id, "orders")
    await peer.succeed(again, events, rows=6, primary_key=["id"])
    (synced,) = (await _datasets(peer)).datasets
    assert (synced.kind, synced.file_name, synced.row_count, synced.keys) == ("synced", None, 6, ["id"])
    assert (synced.connection_id, synced.last_run_id) == (source.connection_id, again.run_id)
    assert synced.last_synced_at is not None


async def test_a_record_replaced_later_keeps_only_the_new_lineage_and_a_redelivery_changes_nothing(
    catalog: CatalogState, peer: Peer
) -> None:
    settled = await peer.settlements("catalog_datasets")
    a, b = _ref(peer, "silver", "a"), _ref(peer, "silver", "b")
    first = _record(peer, "gold", "report", upstream=[a, b], definition="SELECT 1 FROM a JOIN b")
    second = _record(peer, "gold", "report", upstream=[b], definition="SELECT 2 FROM b")

    for n, record in enumerate((first, second, second)):
        assert await settled.of(await peer.command(peer.topology.cmd_record_dataset, record, f"gold-{n}")) == "+ACK"

    (report,) = (await _datasets(peer)).datasets
    assert (report.upstream, report.definition) == ([b], "SELECT 2 FROM b")


async def test_a_dataset_record_naming_another_tenants_catalog_or_no_record_at_all_is_dropped(
    catalog: CatalogState, peer: Peer
) -> None:
    settled = await peer.settlements("catalog_datasets")
    foreign = TableRef(catalog=f"tenant_{peer.tenant_id}_other", schema_name="silver", name="orders")
    forged_target = _record(peer, "silver", "x").model_copy(update={"target": foreign})
    forged_upstream = _record(peer, "silver", "y", upstream=[foreign])
    fine = _record(peer, "silver", "z")

    outcomes = [
        await settled.of(await peer.command(peer.topology.cmd_record_dataset, message, f"m-{n}"))
        for n, message in enumerate((forged_target, forged_upstream, b'{"not": "a record"}', fine))
    ]

    assert outcomes == ["+TERM", "+TERM", "+TERM", "+ACK"]
    assert [d.target.name for d in (await _datasets(peer)).datasets] == ["z"]


async def test_an_audit_record_delivered_twice_is_stored_once(catalog: CatalogState, peer: Peer) -> None:
    settled = await peer.settlements("catalog_audit")
    record = _audit(peer, 1, outcome="error", error_code="invalid_input", actor="user-42")

    # The edge published it again after losing the first acknowledgement: another message, the same id.
    for msg_id in ("first", "again"):
        assert await settled.of(await peer.command(peer.topology.cmd_audit, record, msg_id)) == "+ACK"

    assert await _audit_page(peer) == AuditList(records=[record], next_offset=None)


async def test_audit_records_are_listed_newest_call_first_a_page_at_a_time_per_tenant(
    catalog: CatalogState, peer: Peer
) -> None:
    settled = await peer.settlements("catalog_audit")
    records = [_audit(peer, n) for n in range(5)]
    other = _audit(peer, 9, id="other_call", tenant_id=f"{peer.tenant_id}_other")
    # Published out of order: the listing follows when the call happened, not when it arrived.
    for record in (records[3], records[0], records[4], other, records[1], records[2]):
        assert await settled.of(await peer.command(peer.topology.cmd_audit, record, record.id)) == "+ACK"

    pages = [await _audit_page(peer, limit=2, offset=offset) for offset in (0, 2, 4)]

    assert [page.records for page in pages] == [records[4:2:-1], records[2:0:-1], records[0:1]]
    assert [page.next_offset for page in pages] == [2, 4, None]
    assert (await _audit_page(peer, tenant_id=other.tenant_id)).records == [other]


async def test_an_audit_record_that_is_not_one_or_names_no_valid_tenant_is_dropped(
    catalog: CatalogState, peer: Peer
) -> None:
    settled = await peer.settlements("catalog_audit")
    bad_tenant = _audit(peer, 1, tenant_id="Not A Tenant")

    outcomes = [
        await settled.of(await peer.command(peer.topology.cmd_audit, message, f"m-{n}"))
        for n, message in enumerate((b"{}", bad_tenant, _audit(peer, 2)))
    ]

    assert outcomes == ["+TERM", "+TERM", "+ACK"]
    assert [r.id for r in (await _audit_page(peer)).records] == ["call_002"]


async def test_the_catalogs_command_consumers_leave_extract_commands_to_the_extractor(
    catalog: CatalogState, peer: Peer
) -> None:
    settled = await peer.settlements("catalog_audit")
    extract = ExtractTable(
        tenant_id=peer.tenant_id,
        run_id="run_x",
        connection_id="src_x",
        source_schema="public",
        source_table="orders",
        target=_ref(peer, "bronze", "shop_orders"),
        sync_mode="full",
    )
    await peer.command(peer.topology.cmd_extract, extract, "run_x")
    assert await settled.of(await peer.command(peer.topology.cmd_audit, _audit(peer, 1), "audit")) == "+ACK"

    stream = peer.topology.cmd_stream.name
    # The server removes an acknowledged message from the work queue just after the ack is seen on the wire;
    # nothing signals the removal, so poll the stream's count for up to 5 s.
    for _ in range(100):
        if (waiting := (await peer.js.stream_info(stream)).state.messages) < 2:
            break
        await asyncio.sleep(0.05)
    assert waiting == 1  # the extract command, still waiting
    filters = {
        durable: (await peer.js.consumer_info(stream, peer.topology.durable(durable))).config.filter_subject
        for durable in ("catalog_datasets", "catalog_audit")
    }
    assert filters == {"catalog_datasets": peer.topology.cmd_record_dataset, "catalog_audit": peer.topology.cmd_audit}


async def test_an_audit_record_with_nul_characters_is_stored_with_them_written_out(
    catalog: CatalogState, peer: Peer
) -> None:
    settled = await peer.settlements("catalog_audit")
    record = _audit(peer, 1, tool="query\u0000sql", arguments={"sql\u0000": "SELECT '\u0000'"})

    assert await settled.of(await peer.command(peer.topology.cmd_audit, record, record.id)) == "+ACK"

    [stored] = (await _audit_page(peer)).records
    assert stored.tool == "query\\u0000sql"
    assert stored.arguments == {"sql\\u0000": "SELECT '\\u0000'"}


async def test_a_batch_of_audit_records_is_stored_in_one_message_each_record_once(
    catalog: CatalogState, peer: Peer
) -> None:
    settled = await peer.settlements("catalog_audit")
    records = [_audit(peer, n, arguments={"sql": "SELECT \x00 1"}) for n in range(4)]
    bad_tenant = _audit(peer, 7, tenant_id="Not A Tenant")
    # The second batch repeats two records of the first (a batch republished after a lost acknowledgement).
    first = AuditRecords(records=[records[0], bad_tenant, records[1]])
    second = AuditRecords(records=[records[1], records[2], records[0], records[3]])

    outcomes = [
        await settled.of(await peer.command(peer.topology.cmd_audit, batch, f"b-{n}"))
        for n, batch in enumerate((first, second, b'{"records": []}'))
    ]

    assert outcomes == ["+ACK", "+ACK", "+TERM"]
    stored = (await _audit_page(peer)).records
    assert sorted(r.id for r in stored) == [r.id for r in records]
    assert {r.arguments["sql"] for r in stored} == {"SELECT \\u0000 1"}


async def test_audit_messages_arriving_together_are_each_stored_once_and_the_unreadable_among_them_dropped(
    catalog: CatalogState, peer: Peer
) -> None:
    settled = await peer.settlements("catalog_audit")
    good = [_audit(peer, n) for n in range(12)]
    pair = AuditRecords(records=[_audit(peer, 20), _audit(peer, 21, tenant_id="Not A Tenant")])
    burst: list[AuditRecord | AuditRecords | bytes] = [
        *good[:6],
        b"{}",
        _audit(peer, 13, tenant_id="Not A Tenant"),
        pair,
        *good[6:],
        good[0],  # the edge published it again: another message, the same record id
    ]

    # Published without waiting for each to be settled, as a busy edge does: the catalog takes them in batches.
    sequences = [await peer.command(peer.topology.cmd_audit, message, f"m-{n}") for n, message in enumerate(burst)]
    outcomes = [await settled.of(seq) for seq in sequences]

    assert outcomes == ["+ACK"] * 6 + ["+TERM", "+TERM", "+ACK"] + ["+ACK"] * 7
    stored = {r.id for r in (await _audit_page(peer, limit=100)).records}
    assert stored == {r.id for r in good} | {"call_020"}


async def test_audit_records_are_stored_with_their_exact_instants_and_durations_whatever_their_time_zone(
    catalog: CatalogState, peer: Peer
) -> None:
    plus_two = timezone(timedelta(hours=2))
    exact = [
        _audit(peer, 30, at=datetime(2026, 1, 2, 3, 4, 5, 123456, tzinfo=plus_two), duration_ms=1.2345678901234567),
        _audit(peer, 31, at=datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC), duration_ms=1e-300, error_code=None),
        _audit(peer, 32, outcome="error", error_code="not_found", arguments={"a\u2028": 'b "c" \\ é'}),
    ]
    # A naive instant and a non-finite duration, which JSON would not carry: stored as before, too.
    odd = [_audit(peer, 33, at=datetime(2026, 1, 2, 3, 4, 5)), _audit(peer, 34, duration_ms=float("nan"))]

    assert await catalog.handlers.audit.record_many(exact) == 3
    assert await catalog.handlers.audit.record_many([*odd, exact[0]]) == 2

    page, _ = await catalog.handlers.audit.of_tenant(peer.tenant_id, Window(0, 100))
    stored = {r.id: r for r in page}
    assert [stored[r.id] for r in exact] == exact
    assert stored["call_033"].at == datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
    assert math.isnan(stored["call_034"].duration_ms)
