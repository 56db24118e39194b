import asyncpg
import nats
from lakegate.common.settings import NatsSettings
from lakegate.devstack.pytest_plugin import CreateDatabase


async def test_nats_server_has_jetstream(nats_settings: NatsSettings) -> None:
    nc = await nats.connect(nats_settings.url)
    try:
        info = await nc.jetstream().account_info()
        assert info.limits.max_streams != 0
        assert nc.max_payload >= 8 * 1024 * 1024
    finally:
        await nc.close()


async def test_each_test_gets_a_database_of_its_own(create_database: CreateDatabase) -> None:
    dsn = await create_database("source")
    conn = await asyncpg.connect(dsn)
    try:
        assert await conn.fetchval("select current_database()") == dsn.rsplit("/", 1)[1]
    finally:
        await conn.close()
