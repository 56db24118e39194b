"""Connections to source databases, and what their failures mean to a user.

asyncpg serves checks, introspection and the snapshot an extraction reads in; ADBC (`reader.py`)
streams the rows. Both open read-only sessions with the same settings. Every failure becomes a
lakegate error that names the server and says what to do, and never carries the password:

    wrong password, unknown user      SourceError
    unknown host                      SourceError
    unknown database                  SourceError
    no privilege                      SourceError
    refused, timed out, overloaded    Unavailable (transient: retried)

`SourceConnections` bounds how many connections one replica's syncs hold to each source at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import socket
from collections import deque
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, field

import asyncpg
from lakegate.common.contracts.sources import SourceAddress
from lakegate.common.errors import LakegateError, SourceError, Unavailable
from lakegate.extractor.config import ExtractorSettings
from lakegate.extractor.destinations import destination
from lakegate.extractor.logins import Login

APPLICATION_NAME = "lakegate-extractor"

#: Session settings of every source connection: read-only, and text forms that do not depend on
#: the server's defaults (interval text is ISO 8601; a backslash in a string literal is itself).
SESSION_SETTINGS: dict[str, str] = {
    "default_transaction_read_only": "on",
    "standard_conforming_strings": "on",
    "IntervalStyle": "iso_8601",
    "DateStyle": "ISO",
    "TimeZone": "UTC",
    "idle_in_transaction_session_timeout": "0",
}

#: SQLSTATE classes and codes that mean "try again later".
_TRANSIENT_STATES = ("08", "53", "57P01", "57P02", "57P03", "40001", "40P01", "55P03", "57014")


def where(address: SourceAddress) -> str:
    """`host:port/database`, the way messages name a source server."""
    return f"{address.host}:{address.port}/{address.database}"


def redact(text: str, login: Login) -> str:
    """`text` without the password, in case a driver ever repeats it."""
    secret = login.password.get_secret_value()
    return text.replace(secret, "***") if secret else text


def milliseconds(seconds: float) -> str:
    return str(int(seconds * 1000))


def connect_error(exc: BaseException, login: Login, timeout: float) -> LakegateError:
    """What a failed connection attempt means, and what to do about it."""
    address = login.address
    hostport = f"{address.host}:{address.port}"
    if isinstance(exc, asyncpg.InvalidPasswordError):
        return SourceError(
            f"password authentication failed for user '{address.user}' at {where(address)}: check the password"
        )
    if isinstance(exc, asyncpg.InvalidAuthorizationSpecificationError):
        return SourceError(
            f"user '{address.user}' may not connect to {where(address)} "
            f"({redact(str(exc), login)}): check the user name, and that the server's pg_hba.conf admits it"
        )
    if isinstance(exc, asyncpg.InvalidCatalogNameError):
        return SourceError(f"database '{address.database}' does not exist at {hostport}: check the database name")
    if isinstance(exc, socket.gaierror):
        return SourceError(f"could not resolve host '{address.host}': check the host name")
    if isinstance(exc, TimeoutError):
        return Unavailable(
            f"{hostport} did not answer within {timeout:g}s: check the host and port, and that no firewall "
            "drops the connection; retrying"
        )
    if isinstance(exc, ConnectionRefusedError):
        return Unavailable(
            f"{hostport} did not answer (connection refused): check the host and port, and that PostgreSQL "
            "is running there; retrying"
        )
    if isinstance(exc, asyncpg.PostgresError):
        return query_error(exc, login, f"connecting to {where(address)}")
    if isinstance(exc, OSError):
        reason = exc.strerror or redact(str(exc), login)
        return Unavailable(f"{hostport} did not answer ({reason}): check the host and port; retrying")
    return Unavailable(f"connecting to {where(address)} failed ({type(exc).__name__}); retrying")


def is_transient_state(sqlstate: str | None) -> bool:
    return bool(sqlstate) and any(str(sqlstate).startswith(prefix) for prefix in _TRANSIENT_STATES)


def query_error(exc: asyncpg.PostgresError, login: Login, doing: str) -> LakegateError:
    """What a PostgreSQL error while `doing` something means."""
    message = redact(str(exc), login)
    sqlstate = getattr(exc, "sqlstate", None)
    if sqlstate == "42501":
        return SourceError(
            f"user '{login.address.user}' lacks a privilege for {doing} at {where(login.address)} ({message}): "
            "ask the database owner to GRANT it"
        )
    if sqlstate == "57014":
        return Unavailable(f"{doing} at {where(login.address)} took too long ({message}); retrying")
    if is_transient_state(sqlstate):
        return Unavailable(f"{doing} at {where(login.address)} failed for now ({message}); retrying")
    return SourceError(f"PostgreSQL at {where(login.address)} refused {doing}: {message}")


@contextlib.asynccontextmanager
async def connect(
    login: Login,
    settings: ExtractorSettings,
    *,
    source: str | None = None,
    session: Mapping[str, str] | None = None,
) -> AsyncIterator[asyncpg.Connection]:
    """A read-only asyncpg session on the source; its failures become clear lakegate errors.

    `source`, the registered source's name, starts the message of every error the connection
    itself raises; errors the body raises on purpose pass through unchanged. `session` adds or
    overrides server settings of the session (they are sent when connecting, so the server applies
    them before any statement runs).
    """
    address = login.address
    try:
        # Connect to the checked address, not the name: DNS cannot switch it after the check.
        hostaddr = await destination(address, settings)
    except LakegateError as exc:
        raise _named(exc, source) from None
    try:
        conn = await asyncpg.connect(
            host=hostaddr,
            port=address.port,
            user=address.user,
            password=login.password.get_secret_value(),
            database=address.database,
            timeout=settings.connect_timeout,
            command_timeout=settings.statement_timeout + 5,
            # One short-lived session per request: nothing worth caching, and poolers in
            # transaction mode break server-side prepared statements.
            statement_cache_size=0,
            server_settings={
                **SESSION_SETTINGS,
                "application_name": APPLICATION_NAME,
                "statement_timeout": milliseconds(settings.statement_timeout),
                **(session or {}),
            },
        )
    except (asyncpg.PostgresError, OSError, TimeoutError, asyncpg.InterfaceError) as exc:
        raise _named(connect_error(exc, login, settings.connect_timeout), source) from exc
    try:
        yield conn
    except asyncpg.PostgresError as exc:
        raise _named(query_error(exc, login, "a catalog query"), source) from exc
    except asyncpg.InterfaceError as exc:  # e.g. the connection was lost mid-query
        broke = Unavailable(
            f"the connection to {where(address)} broke ({redact(str(exc), login) or type(exc).__name__}); retrying"
        )
        raise _named(broke, source) from exc
    finally:
        with contextlib.suppress(Exception):
            await asyncio.wait_for(conn.close(), timeout=5)


def _named(error: LakegateError, source: str | None) -> LakegateError:
    return type(error)(f"source '{source}': {error.message}") if source else error


#: Connections a table run or a range holds while it reads: its snapshot session and its reader.
READ_CONNECTIONS = 2


@dataclass
class _Source:
    used: int = 0
    waiting: deque[tuple[int, asyncio.Future[None]]] = field(default_factory=deque)


class SourceConnections:
    """At most `limit` connections to each source held by this replica's syncs; waiters are served in order.

    A source is a registered source of a tenant (`<tenant>/<connection id>`). A run enters with the
    connections it will open and holds them until it ends; one that waits for others (a coordinator
    waiting for its ranges) lends back what it does not use meanwhile (`Held.lend`).
    """

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self._sources: dict[str, _Source] = {}

    def in_use(self, source: str) -> int:
        """Connections to `source` held now."""
        held = self._sources.get(source)
        return held.used if held else 0

    def waiting(self, source: str) -> int:
        """Runs waiting for connections to `source` now."""
        held = self._sources.get(source)
        return sum(not waiter.done() for _, waiter in held.waiting) if held else 0

    @contextlib.asynccontextmanager
    async def hold(self, source: str, count: int = READ_CONNECTIONS) -> AsyncIterator[Held]:
        """Wait until `count` connections to `source` are free, and hold them for the block."""
        await self._take(source, count)
        held = Held(self, source, count)
        token = CURRENT.set(held)
        try:
            yield held
        finally:
            CURRENT.reset(token)
            self._give(source, held.count)

    async def _take(self, source: str, count: int) -> None:
        state = self._sources.setdefault(source, _Source())
        if not state.waiting and state.used + count <= self.limit:
            state.used += count
            return
        waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        state.waiting.append((count, waiter))
        try:
            await waiter
        except BaseException:
            if waiter.done() and not waiter.cancelled():
                self._give(source, count)  # granted just as it was cancelled
            else:
                with contextlib.suppress(ValueError):  # `_wake` may have dropped it already
                    state.waiting.remove((count, waiter))
                self._wake(source, state)
            raise

    def _give(self, source: str, count: int) -> None:
        state = self._sources[source]
        state.used -= count
        self._wake(source, state)

    def _wake(self, source: str, state: _Source) -> None:
        while state.waiting:
            count, waiter = state.waiting[0]
            if waiter.done():  # cancelled while it waited: it takes nothing
                state.waiting.popleft()
                continue
            if state.used + count > self.limit:
                break
            state.waiting.popleft()
            state.used += count
            waiter.set_result(None)
        if state.used == 0 and not state.waiting and self._sources.get(source) is state:
            del self._sources[source]


@dataclass
class Held:
    """Connections to one source a run holds (`SourceConnections.hold`)."""

    pool: SourceConnections
    source: str
    count: int

    @contextlib.asynccontextmanager
    async def lend(self, count: int) -> AsyncIterator[None]:
        """Give `count` of them back while the block runs (the run does not use them meanwhile), then retake them."""
        count = min(count, self.count)
        self.count -= count
        self.pool._give(self.source, count)
        try:
            yield
        finally:
            await self.pool._take(self.source, count)
            self.count += count


#: What the run of the current task holds, so code deep in a run can lend it back while it waits.
CURRENT: contextvars.ContextVar[Held | None] = contextvars.ContextVar("lakegate_source_connections", default=None)
