"""Where the edge finds the extractor's sealing public key: the setting itself, or a file (docker-compose)."""

from __future__ import annotations

from pathlib import Path

import pytest
from lakegate.common.contracts.sources import SourceAddress
from lakegate.common.errors import InvalidInput
from lakegate.common.sealing import Unsealer, new_private_key, public_key_of
from lakegate.devstack.__main__ import main as devstack
from lakegate.edge.backend import sealer_from_settings
from lakegate.edge.config import EdgeSettings
from pydantic import SecretStr

ADDRESS = SourceAddress(host="db.internal", database="shop", user="reader")


def test_the_public_key_file_written_by_seal_key_seals_what_the_extractors_key_opens(tmp_path: Path) -> None:
    private, public = tmp_path / "keys" / "extractor-seal.key", tmp_path / "public" / "extractor-seal.pub"
    assert devstack(["seal-key", str(private), "--public", str(public)]) == 0

    sealer = sealer_from_settings(EdgeSettings(seal_public_key_file=public))

    assert sealer is not None
    assert private.stat().st_mode & 0o077 == 0
    sealed = sealer.seal(SecretStr("pw"), tenant_id="acme", address=ADDRESS)
    keys = [private.read_text().strip()]
    assert Unsealer(keys).open(sealed, tenant_id="acme", address=ADDRESS, source="shop").get_secret_value() == "pw"


def test_a_missing_or_malformed_key_file_stops_the_edge_with_the_setting_named(tmp_path: Path) -> None:
    with pytest.raises(InvalidInput, match=r"cannot read the key file .* \(LAKEGATE_EDGE_SEAL_PUBLIC_KEY_FILE\)"):
        sealer_from_settings(EdgeSettings(seal_public_key_file=tmp_path / "nope.pub"))
    wrong = tmp_path / "wrong.pub"
    wrong.write_text("not a key")
    with pytest.raises(InvalidInput, match="is not a sealing public key"):
        sealer_from_settings(EdgeSettings(seal_public_key_file=wrong))


def test_the_key_itself_wins_over_the_file_and_neither_means_no_sealer(tmp_path: Path) -> None:
    key = public_key_of(new_private_key())

    assert sealer_from_settings(EdgeSettings(seal_public_key=key, seal_public_key_file=tmp_path / "nope")) is not None
    assert sealer_from_settings(EdgeSettings()) is None
