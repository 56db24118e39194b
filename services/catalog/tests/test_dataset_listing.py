"""`datasets.list` answered with the JSON PostgreSQL writes: byte for byte what the models wrote, page by page."""

from __future__ import annotations

from typing import TYPE_CHECKING

import asyncpg
from lakegate.catalog.app import CatalogState
from lakegate.catalog.paging import Window
from lakegate.common.contracts.catalog import DatasetList, ListDatasets
from lakegate.common.contracts.runs import ColumnMapping, TableRef
from lakegate.common.contracts.transforms import DatasetRecord
from lakegate.common.names import tenant_catalog
from lakegate.common.rpc import reply_json

from .texts import AWKWARD

if TYPE_CHECKING:
    from conftest import Peer


async def _listed_bytes(peer: Peer, limit: int, offset: int) -> bytes:
    request = ListDatasets(tenant_id=peer.tenant_id, limit=limit, offset=offset).model_dump_json().encode()
    return bytes((await peer.nc.request(peer.topology.datasets_list, request, timeout=20)).data)


async def _models_bytes(catalog: CatalogState, peer: Peer, limit: int, offset: int) -> bytes:
    """The reply the catalog made before: a `Dataset` model per row, serialized by pydantic."""
    datasets, next_offset = await catalog.handlers.datasets.of_tenant(peer.tenant_id, Window(offset, limit))
    return reply_json(DatasetList(datasets=datasets, next_offset=next_offset))


async def test_a_dataset_listing_is_byte_for_byte_the_reply_the_models_would_make_on_every_page(
    catalog: CatalogState, peer: Peer, db: asyncpg.Connection
) -> None:
    assert await _listed_bytes(peer, 100, 0) == await _models_bytes(catalog, peer, 100, 0)
    source = await peer.register("shop")
    events = await peer.events()
    for table in ("orders", "items"):
        await peer.succeed(await peer.start(source.connection_id, table), events, rows=7, primary_key=["id", AWKWARD])
    home = tenant_catalog(peer.tenant_id)
    columns = [
        ColumnMapping(name=AWKWARD, source_type="numeric(10,2)", arrow_type="decimal128(10, 2)", mapped=True),
        ColumnMapping(name="blob", source_type=f"type {AWKWARD}", arrow_type="string", mapped=False),
    ]
    for kind, schema, name in (("silver", "silver", "orders"), ("gold", "gold", "totals"), ("upload", "bronze", "f")):
        record = DatasetRecord(
            tenant_id=peer.tenant_id,
            target=TableRef(catalog=home, schema_name=schema, name=f"{name} {AWKWARD}"),
            kind=kind,  # type: ignore[arg-type]
            upstream=[TableRef(catalog=home, schema_name="bronze", name=f"shop_orders {AWKWARD}")]
            if kind != "upload"
            else [],
            row_count=None if kind == "gold" else 3,
            columns=columns,
            definition=f"SELECT '{AWKWARD}'" if kind != "upload" else None,
            file_name=f"{AWKWARD}.csv" if kind == "upload" else None,
        )
        await catalog.handlers.datasets.record(record)
    # Whole seconds (pydantic writes no fraction), trailing zeros, one microsecond.
    for name, at in (
        ("shop_orders", "2026-01-02 03:04:05+00"),
        ("shop_items", "2026-01-02 03:04:05.120+00"),
        (f"orders {AWKWARD}", "2026-01-02 03:04:05.000001+00"),
    ):
        await db.execute(
            "UPDATE datasets SET updated_at = $2::text::timestamptz WHERE target_name = $1 AND tenant_id = $3",
            name,
            at,
            peer.tenant_id,
        )

    expected = await _models_bytes(catalog, peer, 100, 0)
    assert expected.count(b'"target":') == 5
    assert await _listed_bytes(peer, 100, 0) == expected
    for limit, offset in ((2, 0), (2, 2), (2, 4), (5, 0), (1, 5), (3, 9)):
        assert await _listed_bytes(peer, limit, offset) == await _models_bytes(catalog, peer, limit, offset)
    listed = await peer.rpc.call(peer.topology.datasets_list, ListDatasets(tenant_id=peer.tenant_id), DatasetList)
    assert listed == DatasetList.model_validate_json(expected[len(b'{"result":') : -len(b',"error":null}')])


async def test_another_tenants_datasets_are_not_listed(catalog: CatalogState, peer: Peer) -> None:
    source = await peer.register("shop")
    await peer.succeed(await peer.start(source.connection_id, "orders"), await peer.events())
    other = ListDatasets(tenant_id=f"{peer.tenant_id}x")
    assert (await peer.rpc.call(peer.topology.datasets_list, other, DatasetList)).datasets == []
