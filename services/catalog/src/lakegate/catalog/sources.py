"""Registered PostgreSQL sources of each tenant.

A source's secret arrives sealed for the extractor (`lakegate.common.sealing`): the catalog never
sees a password. It stores the seal encrypted once more with its own keys (the cipher), and hands
the seal back to the extractor as it came.
"""

from __future__ import annotations

import asyncio
import secrets

import asyncpg
from lakegate.catalog.cipher import PasswordCipher
from lakegate.catalog.json_sql import instant_json, value_json
from lakegate.catalog.readers import Readers
from lakegate.common.contracts.sources import (
    RegisterSource,
    SourceAddress,
    SourceCredentials,
    SourceInfo,
    SourceList,
    SourceLogin,
)
from lakegate.common.errors import InvalidInput, NotFound
from lakegate.common.names import check_tenant_id, warehouse_identifier
from lakegate.common.rpc import Encoded

MAX_NAME_LENGTH = 64
_COLUMNS = 'id, tenant_id, name, host, port, database, "user", created_at, password_ref'


#: Every source of tenant $1, oldest first, as the JSON of `SourceList`: byte for byte what
#: `SourceList(sources=[...]).model_dump_json()` writes (`to_json` escapes text as pydantic does),
#: so the catalog answers `sources.list` without building a model per row (tests/test_source_listing.py).
_LISTING_JSON = f"""
    SELECT '{{"version":1,"sources":[' || coalesce(string_agg(
        '{{"version":1,"connection_id":' || to_json(id) || ',"tenant_id":' || to_json(tenant_id)
        || ',"name":' || to_json(name) || ',"address":{{"version":1,"host":' || to_json(host)
        || ',"port":' || port || ',"database":' || to_json(database) || ',"user":' || to_json("user")
        || '}},"created_at":' || {instant_json("created_at")} || ',"password_ref":'
        || {value_json("password_ref")} || '}}',
        ',' ORDER BY created_at, name
    ), '') || ']}}'
    FROM sources WHERE tenant_id = {{tenant}}
"""
_LISTING = _LISTING_JSON.replace("{tenant}", "$1")
#: The listing of each tenant of $1 (a text[]): one statement for the requests that waited together.
_LISTINGS = f"""
    SELECT asked.tenant_id, ({_LISTING_JSON.replace("{tenant}", "asked.tenant_id")})
    FROM unnest($1::text[]) AS asked(tenant_id)
"""


class SourceListings:
    """`sources.list`, as the JSON PostgreSQL writes; the requests of one turn of the event loop are read together.

    A request does not read at once: it waits for the end of the loop's current turn (`call_soon`),
    by when every request that came in the same read from the NATS socket has arrived too, and
    they are read in one statement (`unnest` of their tenants; a tenant asked twice is read once),
    one read for a burst instead of a round trip to PostgreSQL each. A lone request costs the
    same one statement it always did, a turn of the loop later. While every reader connection is
    busy the requests keep gathering, and are read together when a read ends. Every request is
    still answered by a read that began after it came, so it sees every write acknowledged before
    it was sent, on whichever replica.
    """

    def __init__(self, readers: Readers) -> None:
        self._readers = readers
        self._reading = 0  # reads under way
        self._waiting: dict[str, list[asyncio.Future[bytes]]] = {}
        self._scheduled = False
        self._reads: set[asyncio.Task[None]] = set()

    async def of_tenant(self, tenant_id: str) -> Encoded[SourceList]:
        """Every source of the tenant, oldest first."""
        future: asyncio.Future[bytes] = asyncio.get_running_loop().create_future()
        futures = self._waiting.get(tenant_id)
        if futures is None:
            self._waiting[tenant_id] = [future]
        else:
            futures.append(future)
        self._schedule()
        return Encoded(await future)

    def _schedule(self) -> None:
        """Start a read of the waiting requests at the end of this turn of the loop, unless one is due already."""
        if not self._scheduled:
            self._scheduled = True
            asyncio.get_running_loop().call_soon(self._start)

    def _start(self) -> None:
        self._scheduled = False
        if not self._waiting or self._reading >= self._readers.size:
            return  # nothing to read, or every reader is busy: the next read to end starts it
        waiting, self._waiting = self._waiting, {}
        self._reading += 1
        task = asyncio.get_running_loop().create_task(self._read(waiting))
        self._reads.add(task)
        task.add_done_callback(self._reads.discard)

    async def _read(self, waiting: dict[str, list[asyncio.Future[bytes]]]) -> None:
        try:
            if len(waiting) == 1:
                [tenant_id] = waiting
                text = await self._readers.fetchval(_LISTING, tenant_id)
                assert isinstance(text, str)  # string_agg's coalesce and the concatenation never give NULL
                rows: list[tuple[str, str]] = [(tenant_id, text)]
            else:
                rows = [(row[0], row[1]) for row in await self._readers.fetch(_LISTINGS, list(waiting))]
        except BaseException as exc:
            for futures in waiting.values():
                for future in futures:
                    if future.done():
                        continue
                    if isinstance(exc, asyncio.CancelledError):
                        future.cancel()
                    else:
                        future.set_exception(exc)
            if not isinstance(exc, Exception):
                raise
            return
        finally:
            self._reading -= 1
            if self._waiting:
                self._schedule()
        for tenant_id, text in rows:
            body = text.encode()
            for future in waiting[tenant_id]:
                if not future.done():
                    future.set_result(body)


def new_connection_id() -> str:
    """`src_<random>`: unguessable, so an id alone reveals nothing about other tenants."""
    return f"src_{secrets.token_hex(8)}"


def name_key(name: str) -> str:
    """A source name as bronze table names fold it; two sources of a tenant may not share one."""
    text = name.strip()
    if not text or len(text) > MAX_NAME_LENGTH:
        raise InvalidInput(
            f"source name {name!r} must be 1-{MAX_NAME_LENGTH} characters; use a short name such as 'shop'"
        )
    try:
        return warehouse_identifier(text)
    except InvalidInput:
        raise InvalidInput(
            f"source name {name!r} has no letters or digits; it names the bronze tables, so use e.g. 'shop'"
        ) from None


def _info(row: asyncpg.Record) -> SourceInfo:
    return SourceInfo(
        connection_id=row["id"],
        tenant_id=row["tenant_id"],
        name=row["name"],
        address=SourceAddress(host=row["host"], port=row["port"], database=row["database"], user=row["user"]),
        created_at=row["created_at"],
        password_ref=row["password_ref"],
    )


def source_not_found(connection_id: str) -> NotFound:
    """The same answer for a missing source and another tenant's, so ids cannot be probed."""
    return NotFound(
        f"source {connection_id!r} not found for this tenant: list the registered sources to find its "
        "connection id, or register it first"
    )


class SourceStore:
    """The `sources` table."""

    def __init__(self, pool: asyncpg.Pool, cipher: PasswordCipher) -> None:
        self._pool, self._cipher = pool, cipher

    async def register(self, request: RegisterSource) -> SourceInfo:
        """Store a new source; a name already used by the tenant is refused, naming that source."""
        tenant = check_tenant_id(request.tenant_id)
        name, key = request.name.strip(), name_key(request.name)
        address = request.login.address
        sealed = request.login.sealed_password
        # A referenced password is not stored at all: the extractor reads it where the reference points.
        token = None if sealed is None else self._cipher.encrypt(sealed)
        row = await self._pool.fetchrow(
            f"""
            INSERT INTO sources
                (id, tenant_id, name, name_key, host, port, database, "user", password_encrypted, password_ref)
            VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)
            ON CONFLICT (tenant_id, name_key) DO NOTHING
            RETURNING {_COLUMNS}
            """,
            new_connection_id(),
            tenant,
            name,
            key,
            address.host,
            address.port,
            address.database,
            address.user,
            token,
            request.login.password_ref,
        )
        if row is None:
            existing = await self._pool.fetchrow(
                "SELECT id, name FROM sources WHERE tenant_id = $1 AND name_key = $2", tenant, key
            )
            assert existing is not None  # sources are never deleted, so the conflicting row is there
            if existing["name"] == name:
                raise InvalidInput(
                    f"a source named {name!r} is already registered (connection id {existing['id']}): use that "
                    "connection id, or register this database under another name"
                )
            raise InvalidInput(
                f"source name {name!r} would write the same bronze tables ({key}_*) as source {existing['name']!r} "
                f"(connection id {existing['id']}): register this database under another name"
            )
        return _info(row)

    async def get(self, tenant_id: str, connection_id: str) -> SourceInfo:
        """One source of the tenant."""
        row = await self._pool.fetchrow(
            f"SELECT {_COLUMNS} FROM sources WHERE id = $1 AND tenant_id = $2", connection_id, tenant_id
        )
        if row is None:
            raise source_not_found(connection_id)
        return _info(row)

    async def of_tenant(self, tenant_id: str) -> list[SourceInfo]:
        """Every source of the tenant, oldest first."""
        rows = await self._pool.fetch(
            f"SELECT {_COLUMNS} FROM sources WHERE tenant_id = $1 ORDER BY created_at, name", tenant_id
        )
        return [_info(row) for row in rows]

    async def credentials(self, tenant_id: str, connection_id: str) -> SourceCredentials:
        """The source with its sealed password (only the extractor can open it), or its secret reference."""
        row = await self._pool.fetchrow(
            f"SELECT {_COLUMNS}, password_encrypted FROM sources WHERE id = $1 AND tenant_id = $2",
            connection_id,
            tenant_id,
        )
        if row is None:
            raise source_not_found(connection_id)
        info = _info(row)
        if info.password_ref is not None:
            login = SourceLogin(address=info.address, password_ref=info.password_ref)
        else:
            sealed = self._cipher.decrypt(row["password_encrypted"], source=connection_id)
            login = SourceLogin(address=info.address, sealed_password=sealed)
        return SourceCredentials(source=info, login=login)

    async def rotate_keys(self) -> int:
        """Encrypt every stored password again with the newest key, in one transaction; how many were rewritten."""
        async with self._pool.acquire() as conn, conn.transaction():
            rows = await conn.fetch(
                "SELECT id, password_encrypted FROM sources WHERE password_encrypted IS NOT NULL ORDER BY id FOR UPDATE"
            )
            for row in rows:
                token = self._cipher.rotate(row["password_encrypted"], source=row["id"])
                await conn.execute("UPDATE sources SET password_encrypted = $2 WHERE id = $1", row["id"], token)
        return len(rows)
