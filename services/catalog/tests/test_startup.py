"""Starting the catalog: its secret key, its migrations, and state that survives a restart."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import TYPE_CHECKING

import asyncpg
import pytest
from cryptography.fernet import Fernet
from lakegate.catalog.app import serve
from lakegate.catalog.cipher import PasswordCipher
from lakegate.catalog.config import CatalogSettings
from lakegate.catalog.schema import migrate, migrations
from lakegate.common.contracts.catalog import DatasetList, ListDatasets, ListRuns, RunList
from lakegate.common.contracts.runs import ErrorInfo, Failed
from lakegate.common.contracts.sources import SourceCredentials, SourceInfo, SourceRef
from lakegate.common.delivery import ACK_WAIT, MAX_DELIVER, RECORD_TRIES
from lakegate.common.errors import InvalidInput, TerminalError, Unavailable
from lakegate.common.subjects import RunStep
from pydantic import SecretStr

if TYPE_CHECKING:
    from conftest import Peer


async def test_the_catalog_refuses_to_start_without_a_secret_key(catalog_settings: CatalogSettings) -> None:
    keyless = catalog_settings.model_copy(update={"secret_key": None, "secret_key_file": None})

    with pytest.raises(InvalidInput, match="LAKEGATE_CATALOG_SECRET_KEY") as refused:
        async with serve(keyless):
            pass

    assert "Fernet.generate_key()" in str(refused.value)


async def test_a_malformed_key_is_refused_without_repeating_it(catalog_settings: CatalogSettings) -> None:
    broken = catalog_settings.model_copy(update={"secret_key": SecretStr("not-a-key-at-all")})

    with pytest.raises(InvalidInput, match="key 1 of LAKEGATE_CATALOG_SECRET_KEY is not a Fernet key") as refused:
        async with serve(broken):
            pass

    assert "not-a-key-at-all" not in str(refused.value)


async def test_an_unreachable_database_is_named_without_its_password(
    catalog_settings: CatalogSettings, unused_tcp_port: int
) -> None:
    dsn = f"postgresql://catalog:hunter2@127.0.0.1:{unused_tcp_port}/catalog"
    unreachable = catalog_settings.model_copy(update={"database_url": SecretStr(dsn)})

    with pytest.raises(Unavailable, match=f"127.0.0.1:{unused_tcp_port}/catalog") as refused:
        async with serve(unreachable):
            pass

    assert "hunter2" not in str(refused.value)


async def test_state_survives_a_restart_and_migrations_are_applied_once(
    catalog_settings: CatalogSettings, peer: Peer, db: asyncpg.Connection, secret_key: str, tmp_path: Path
) -> None:
    async with serve(catalog_settings):
        source = await peer.register("shop")

    key_file = tmp_path / "catalog.key"
    key_file.write_text(f"{secret_key}\n")
    from_file = catalog_settings.model_copy(update={"secret_key": None, "secret_key_file": key_file})
    async with serve(from_file):
        ref = SourceRef(tenant_id=peer.tenant_id, connection_id=source.connection_id)
        assert await peer.rpc.call(peer.topology.sources_get, ref, SourceInfo) == source
        credentials = await peer.rpc.call(peer.topology.sources_credentials, ref, SourceCredentials)
        assert credentials.login.sealed_password == peer.password

    recorded = await db.fetch("SELECT version, name FROM schema_migrations ORDER BY version")
    assert [(r["version"], r["name"]) for r in recorded] == [(m.version, m.name) for m in migrations()]


async def test_state_written_under_the_first_schema_survives_the_later_migrations(
    catalog_settings: CatalogSettings, peer: Peer, db: asyncpg.Connection, secret_key: str
) -> None:
    (first, *later) = migrations()
    assert await migrate(db, [first]) == [first.name]
    tenant, token = peer.tenant_id, PasswordCipher([secret_key.encode()]).encrypt(peer.password)
    await db.execute(
        """
        INSERT INTO sources (id, tenant_id, name, name_key, host, port, database, "user", password_encrypted)
        VALUES ('src_old', $1, 'shop', 'shop', 'db.example.internal', 5433, 'shop', 'reader', $2)
        """,
        tenant,
        token,
    )
    await db.execute(
        """
        INSERT INTO runs (run_id, tenant_id, connection_id, source_table, target_catalog, target_schema, target_name,
                          sync_mode, status, columns, row_count, bytes, created_at, started_at, finished_at)
        VALUES ('run_old', $1, 'src_old', 'public.orders', $2, 'bronze', 'shop_orders', 'full', 'succeeded', '[]',
                40, 400, '2025-01-01T00:00:00Z', '2025-01-01T00:00:01Z', '2025-01-01T00:00:05Z')
        """,
        tenant,
        f"tenant_{tenant}",
    )
    await db.execute(
        """
        INSERT INTO datasets (tenant_id, target_catalog, target_schema, target_name, connection_id, source_table,
                              row_count, last_run_id, updated_at)
        VALUES ($1, $2, 'bronze', 'shop_orders', 'src_old', 'public.orders', 40, 'run_old', '2025-01-01T00:00:05Z')
        """,
        tenant,
        f"tenant_{tenant}",
    )

    async with serve(catalog_settings):
        runs = await peer.rpc.call(peer.topology.runs_list, ListRuns(tenant_id=tenant), RunList)
        datasets = await peer.rpc.call(peer.topology.datasets_list, ListDatasets(tenant_id=tenant), DatasetList)
        ref = SourceRef(tenant_id=tenant, connection_id="src_old")
        credentials = await peer.rpc.call(peer.topology.sources_credentials, ref, SourceCredentials)

    (run,) = runs.runs
    assert (run.run_id, run.status, run.row_count, run.duration_seconds, run.rows_per_second) == (
        "run_old",
        "succeeded",
        40,
        4.0,
        10.0,
    )
    (dataset,) = datasets.datasets
    assert (dataset.kind, dataset.keys, dataset.upstream, dataset.last_run_id) == ("synced", [], [], "run_old")
    assert dataset.last_synced_at == dataset.updated_at
    assert credentials.login.sealed_password == peer.password
    recorded = await db.fetch("SELECT name FROM schema_migrations ORDER BY version")
    assert [r["name"] for r in recorded] == [first.name, *(m.name for m in later)]


async def test_a_rotated_key_still_decrypts_passwords_stored_under_the_old_one(
    catalog_settings: CatalogSettings, peer: Peer, secret_key: str
) -> None:
    async with serve(catalog_settings):
        source = await peer.register("shop")
    ref = SourceRef(tenant_id=peer.tenant_id, connection_id=source.connection_id)

    new_key = Fernet.generate_key().decode()
    rotated = catalog_settings.model_copy(update={"secret_key": SecretStr(f"{new_key},{secret_key}")})
    async with serve(rotated):
        credentials = await peer.rpc.call(peer.topology.sources_credentials, ref, SourceCredentials)
        assert credentials.login.sealed_password == peer.password

    replaced = catalog_settings.model_copy(update={"secret_key": SecretStr(new_key)})
    async with serve(replaced):
        with pytest.raises(TerminalError, match="cannot be decrypted with the catalog's secret key") as refused:
            await peer.rpc.call(peer.topology.sources_credentials, ref, SourceCredentials)
    assert source.connection_id in str(refused.value)


async def test_two_replicas_migrating_a_fresh_database_together_both_succeed(catalog_dsn: str) -> None:
    first, second = await asyncpg.connect(catalog_dsn), await asyncpg.connect(catalog_dsn)
    try:
        applied = await asyncio.gather(migrate(first), migrate(second))
        # One replica applied everything while the other waited on the lock, then found nothing to do.
        assert sorted(applied, key=len) == [[], [m.name for m in migrations()]]
        assert await first.fetchval("SELECT count(*) FROM schema_migrations") == len(migrations())
    finally:
        await first.close()
        await second.close()


async def test_two_replicas_answer_each_request_once_and_share_the_run_steps(
    catalog_settings: CatalogSettings, peer: Peer, db: asyncpg.Connection
) -> None:
    async with serve(catalog_settings) as first, serve(catalog_settings):
        source = await peer.register("shop")
        events = await peer.events()
        for _ in range(4):
            run = await peer.start(source.connection_id)
            await peer.step(
                run.run_id,
                RunStep.FAILED,
                Failed(
                    tenant_id=peer.tenant_id,
                    run_id=run.run_id,
                    step="extract",
                    error=ErrorInfo(code="source_error", message="x"),
                ),
            )
            _, event = await peer.next_event(events)
            assert event.subject == run.run_id

        assert await db.fetchval("SELECT count(*) FROM runs") == 4
        assert (await peer.js.stream_info(peer.topology.cmd_stream.name)).state.messages == 4
        assert await peer.event_count() == 4

        topology = first.runtime.topology
        consumer = await peer.js.consumer_info(topology.run_stream.name, topology.durable("catalog_runs"))
        assert consumer.config.max_deliver == MAX_DELIVER + RECORD_TRIES
        assert consumer.config.ack_wait == ACK_WAIT


async def test_runs_left_active_side_by_side_on_one_table_are_cancelled_but_the_newest_when_migrating(
    catalog_settings: CatalogSettings, peer: Peer, db: asyncpg.Connection, secret_key: str
) -> None:
    shipped = migrations()
    assert await migrate(db, shipped[:2]) == [m.name for m in shipped[:2]]
    tenant, token = peer.tenant_id, PasswordCipher([secret_key.encode()]).encrypt(peer.password)
    await db.execute(
        """
        INSERT INTO sources (id, tenant_id, name, name_key, host, port, database, "user", password_encrypted)
        VALUES ('src_old', $1, 'shop', 'shop', 'db.example.internal', 5433, 'shop', 'reader', $2)
        """,
        tenant,
        token,
    )
    for run_id, table, status, minute in [
        ("run_stuck", "shop_orders", "queued", 1),
        ("run_newer", "shop_orders", "extracting", 2),
        ("run_other", "shop_items", "queued", 1),
        ("run_done", "shop_orders", "succeeded", 0),
    ]:
        await db.execute(
            """
            INSERT INTO runs (run_id, tenant_id, connection_id, source_table, target_catalog, target_schema,
                              target_name, sync_mode, status, created_at)
            VALUES ($1, $2, 'src_old', 'public.x', $3, 'bronze', $4, 'full', $5, '2025-01-01T00:00:00Z'::timestamptz
                    + make_interval(mins => $6))
            """,
            run_id,
            tenant,
            f"tenant_{tenant}",
            table,
            status,
            minute,
        )

    async with serve(catalog_settings):
        stuck = await peer.run("run_stuck")
        assert {run_id: (await peer.run(run_id)).status for run_id in ("run_newer", "run_other", "run_done")} == {
            "run_newer": "extracting",
            "run_other": "queued",
            "run_done": "succeeded",
        }

    assert stuck.status == "cancelled"
    assert stuck.error is not None
    assert (stuck.error.code, "run run_newer" in stuck.error.message) == ("cancelled", True)
    assert stuck.finished_at is not None
