"""Source passwords sealed for the extractor: only its key opens them, and only for the tenant and address sealed."""

from __future__ import annotations

import pytest
from lakegate.common.contracts.sources import SourceAddress
from lakegate.common.errors import InvalidInput, TerminalError
from lakegate.common.sealing import Sealer, Unsealer, new_private_key, public_key_of
from pydantic import SecretStr

ADDRESS = SourceAddress(host="db.internal", port=5432, database="shop", user="reader")
PASSWORD = SecretStr("pw-ünï-Secret-1")


def test_a_sealed_password_opens_with_the_extractor_key_and_shows_nothing_of_itself() -> None:
    key = new_private_key()
    sealed = Sealer(public_key_of(key)).seal(PASSWORD, tenant_id="acme", address=ADDRESS)

    assert "pw-" not in sealed
    assert "reader" not in sealed
    assert Unsealer([key]).open(sealed, tenant_id="acme", address=ADDRESS, source="shop") == PASSWORD


def test_two_seals_of_one_password_differ() -> None:
    sealer = Sealer(public_key_of(new_private_key()))

    assert sealer.seal(PASSWORD, tenant_id="acme", address=ADDRESS) != sealer.seal(
        PASSWORD, tenant_id="acme", address=ADDRESS
    )


@pytest.mark.parametrize(
    ("tenant", "address"),
    [
        ("other", ADDRESS),
        ("acme", ADDRESS.model_copy(update={"host": "attacker.example"})),
        ("acme", ADDRESS.model_copy(update={"port": 6543})),
        ("acme", ADDRESS.model_copy(update={"user": "postgres"})),
        ("acme", ADDRESS.model_copy(update={"database": "other"})),
    ],
)
def test_a_seal_replayed_for_another_tenant_or_address_is_refused(tenant: str, address: SourceAddress) -> None:
    key = new_private_key()
    sealed = Sealer(public_key_of(key)).seal(PASSWORD, tenant_id="acme", address=ADDRESS)

    with pytest.raises(TerminalError, match="sealed for another tenant or address") as refused:
        Unsealer([key]).open(sealed, tenant_id=tenant, address=address, source="source 'shop'")
    assert "source 'shop'" in str(refused.value)


def test_after_a_key_rotation_old_seals_still_open_and_a_missing_key_is_named() -> None:
    old, new = new_private_key(), new_private_key()
    sealed_before = Sealer(public_key_of(old)).seal(PASSWORD, tenant_id="acme", address=ADDRESS)
    rotated = Unsealer([new, old])

    assert rotated.public_key == public_key_of(new)
    assert rotated.open(sealed_before, tenant_id="acme", address=ADDRESS, source="shop") == PASSWORD
    with pytest.raises(TerminalError, match="sealed for another extractor key"):
        Unsealer([new]).open(sealed_before, tenant_id="acme", address=ADDRESS, source="shop")


def test_a_damaged_or_foreign_seal_is_refused_without_echoing_it() -> None:
    key = new_private_key()
    sealed = Sealer(public_key_of(key)).seal(PASSWORD, tenant_id="acme", address=ADDRESS)
    flipped = sealed[:-5] + ("A" if sealed[-5] != "A" else "B") + sealed[-4:]

    with pytest.raises(TerminalError, match="damaged"):
        Unsealer([key]).open(flipped, tenant_id="acme", address=ADDRESS, source="shop")
    with pytest.raises(TerminalError, match="not a lakegate seal") as refused:
        Unsealer([key]).open("hunter2", tenant_id="acme", address=ADDRESS, source="shop")
    assert "hunter2" not in str(refused.value)


def test_malformed_keys_are_refused_with_where_they_came_from_and_how_to_make_one() -> None:
    with pytest.raises(InvalidInput, match="LAKEGATE_EDGE_SEAL_PUBLIC_KEY is not a sealing public key") as public:
        Sealer("c2VjcmV0", origin="LAKEGATE_EDGE_SEAL_PUBLIC_KEY")
    assert "seal-key" in str(public.value)
    with pytest.raises(InvalidInput, match="key 2 of LAKEGATE_EXTRACTOR_SEAL_KEYS is not") as private:
        Unsealer([new_private_key(), "not-a-key-secret"], origin="LAKEGATE_EXTRACTOR_SEAL_KEYS")
    assert "not-a-key-secret" not in str(private.value)
    with pytest.raises(InvalidInput, match="is empty"):
        Unsealer([], origin="LAKEGATE_EXTRACTOR_SEAL_KEYS")
