"""Password references: the extractor reads `env:NAME` or `file:/path` itself, each tenant only its own."""

from __future__ import annotations

import asyncio
import errno
import os
import threading
import uuid
from pathlib import Path

import asyncpg
import pytest
from lakegate.common.contracts.runs import Extracted
from lakegate.common.contracts.sources import CheckSource, ConnectionStatus, SourceAddress, SourceLogin
from lakegate.common.errors import InvalidInput
from lakegate.common.settings import NatsSettings
from lakegate.devstack.postgres import PASSWORD_ROLE
from lakegate.extractor.config import ExtractorSettings
from lakegate.extractor.secret_references import MAX_FILE_BYTES, resolve_reference

from .conftest import FakeCatalog, harness_settings, login_for

PASSWORD = "ref-Secret-ünï-42"


@pytest.fixture
def secrets_dir(tmp_path: Path) -> Path:
    return tmp_path / "secrets"


@pytest.fixture
def settings(nats_settings: NatsSettings, secrets_dir: Path) -> ExtractorSettings:
    return harness_settings(
        nats_settings,
        secret_dirs=[str(secrets_dir)],
    )


@pytest.fixture
async def address(source: asyncpg.Connection, source_dsn: str) -> SourceAddress:
    """A user of the source who must give PASSWORD (the harness trusts everyone else)."""
    user = f"app_{uuid.uuid4().hex[:8]}"
    create = await source.fetchval(
        "SELECT format('CREATE ROLE %I LOGIN PASSWORD %L IN ROLE %I', $1::text, $2::text, $3::text)",
        user,
        PASSWORD,
        PASSWORD_ROLE,
    )
    await source.execute(create)
    await source.execute(f"CREATE TABLE things AS SELECT 1 AS id; GRANT SELECT ON things TO {user}")
    return login_for(source_dsn, user=user).address


async def check(catalog: FakeCatalog, address: SourceAddress, reference: str) -> ConnectionStatus:
    request = CheckSource(tenant_id=catalog.tenant_id, login=SourceLogin(address=address, password_ref=reference))
    return await catalog.rpc.call(catalog.topology.sources_check, request, ConnectionStatus)


async def test_an_env_reference_of_the_tenant_logs_in_for_checks_and_extractions(
    catalog: FakeCatalog, address: SourceAddress, monkeypatch: pytest.MonkeyPatch
) -> None:
    name = f"LAKEGATE_SECRET_{catalog.tenant_id.upper()}_SHOP"
    monkeypatch.setenv(name, PASSWORD)

    status = await check(catalog, address, f"env:{name}")
    outcome = await catalog.extract(catalog.add_referenced_source(address, f"env:{name}"), "things")

    assert status.user == address.user
    assert isinstance(outcome, Extracted), outcome
    assert outcome.row_count == 1


async def test_a_missing_variable_is_named_with_where_to_set_it(catalog: FakeCatalog, address: SourceAddress) -> None:
    name = f"LAKEGATE_SECRET_{catalog.tenant_id.upper()}_NOT_SET"

    with pytest.raises(InvalidInput) as refused:
        await check(catalog, address, f"env:{name}")

    assert f"password_ref env:{name}" in refused.value.message
    assert f"the extractor has no environment variable {name}; set it in the extractor's environment" in (
        refused.value.message
    )


@pytest.mark.parametrize("name", ["LAKEGATE_EXTRACTOR_SEAL_KEYS", "HOME", "LAKEGATE_SECRET_OTHERTENANT_SHOP"])
async def test_a_variable_outside_the_tenants_namespace_is_refused_unread(
    catalog: FakeCatalog, address: SourceAddress, monkeypatch: pytest.MonkeyPatch, name: str
) -> None:
    monkeypatch.setenv(name, PASSWORD)  # even when it holds the right password

    with pytest.raises(InvalidInput) as refused:
        await check(catalog, address, f"env:{name}")

    prefix = f"LAKEGATE_SECRET_{catalog.tenant_id.upper()}_"
    assert f"this tenant may only name environment variables starting with {prefix}" in refused.value.message
    assert PASSWORD not in refused.value.message


async def test_a_file_reference_below_the_tenants_directory_logs_in_without_its_trailing_newline(
    catalog: FakeCatalog, address: SourceAddress, secrets_dir: Path
) -> None:
    path = secrets_dir / catalog.tenant_id / "shop.password"
    path.parent.mkdir(parents=True)
    path.write_text(PASSWORD + "\n")

    status = await check(catalog, address, f"file:{path}")

    assert status.user == address.user


async def test_a_file_outside_the_tenants_directory_is_refused_even_through_a_symbolic_link(
    catalog: FakeCatalog, address: SourceAddress, secrets_dir: Path
) -> None:
    other = secrets_dir / "othertenant" / "shop.password"
    other.parent.mkdir(parents=True)
    other.write_text(PASSWORD)
    mine = secrets_dir / catalog.tenant_id
    mine.mkdir()
    (mine / "link").symlink_to(other)

    for path in (other, mine / "link", mine / ".." / "othertenant" / "shop.password", Path("/etc/passwd")):
        with pytest.raises(InvalidInput) as refused:
            await check(catalog, address, f"file:{path}")
        assert f"this tenant may only read files below {mine}" in refused.value.message, path


async def test_a_missing_file_and_an_extractor_without_secret_directories_say_what_to_do(
    catalog: FakeCatalog, address: SourceAddress, secrets_dir: Path, settings: ExtractorSettings
) -> None:
    missing = secrets_dir / catalog.tenant_id / "nope"

    with pytest.raises(InvalidInput) as refused:
        await check(catalog, address, f"file:{missing}")

    assert f"password_ref file:{missing}" in refused.value.message
    assert "there is no such file on the extractor; mount or create it" in refused.value.message

    without = settings.model_copy(update={"secret_dirs": []})
    with pytest.raises(InvalidInput, match="this extractor reads no secret files; set LAKEGATE_EXTRACTOR_SECRET_DIRS"):
        await resolve_reference(f"file:{missing}", tenant_id=catalog.tenant_id, settings=without, source="shop")


async def test_a_file_longer_than_a_password_is_refused_unread_past_the_bound(
    secrets_dir: Path, settings: ExtractorSettings
) -> None:
    path = secrets_dir / "acme" / "huge.password"
    path.parent.mkdir(parents=True)
    path.write_bytes(b"x" * (MAX_FILE_BYTES + 1))

    with pytest.raises(InvalidInput) as refused:
        await resolve_reference(f"file:{path}", tenant_id="acme", settings=settings, source="source 'shop'")

    assert refused.value.message == f"password_ref file:{path} of source 'shop': longer than {MAX_FILE_BYTES} bytes"


def _write_when_read(fifo: Path, text: str) -> None:
    """Open the pipe for writing without waiting for a reader: fails with ENXIO when nobody reads it yet."""
    try:
        descriptor = os.open(fifo, os.O_WRONLY | os.O_NONBLOCK)
    except OSError as exc:
        if exc.errno == errno.ENXIO:
            return
        raise
    with os.fdopen(descriptor, "w") as pipe:
        pipe.write(text)


async def test_a_file_that_is_slow_to_read_does_not_stall_the_event_loop(
    secrets_dir: Path, settings: ExtractorSettings
) -> None:
    # A named pipe blocks its reader until someone writes: a secret mount that does not answer.
    fifo = secrets_dir / "acme" / "slow.password"
    fifo.parent.mkdir(parents=True)
    os.mkfifo(fifo)
    # If the read blocked the loop, nothing below would run; this rescue unblocks it with a wrong password.
    rescue = threading.Timer(30, _write_when_read, (fifo, "read-on-the-event-loop"))
    rescue.start()
    try:
        resolving = asyncio.create_task(
            resolve_reference(f"file:{fifo}", tenant_id="acme", settings=settings, source="source 'shop'")
        )
        await asyncio.sleep(0)  # the reference is being read now, waiting for a writer
        assert not resolving.done(), "the file was read on the event loop: it blocked until the rescue wrote"
        await asyncio.to_thread(fifo.write_text, PASSWORD + "\n")  # opening blocks until the reader has it open
        password = await resolving
    finally:
        rescue.cancel()

    assert password.get_secret_value() == PASSWORD
