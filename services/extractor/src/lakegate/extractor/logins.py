"""Source logins opened: the sealed secret from the wire turned into the password to log in with.

Only here does a password exist in clear, and only for as long as a connection is opened with it.
"""

from __future__ import annotations

from dataclasses import dataclass

from lakegate.common.contracts.sources import SourceAddress, SourceCredentials, SourceInfo, SourceLogin, SourceRef
from lakegate.common.errors import InvalidInput
from lakegate.common.sealing import GENERATE, Unsealer
from lakegate.common.service import Runtime
from lakegate.common.settings import secret_text
from lakegate.extractor.config import ExtractorSettings
from lakegate.extractor.secret_references import resolve_reference
from pydantic import SecretStr


@dataclass(frozen=True, repr=False)
class Login:
    """An address and its password, in clear; never leaves the extractor."""

    address: SourceAddress
    password: SecretStr

    def __repr__(self) -> str:
        return f"Login({self.address!r}, password=***)"


@dataclass(frozen=True)
class Credentials:
    """A registered source and its opened login."""

    source: SourceInfo
    login: Login


class Logins:
    """Opens sealed logins with the extractor's private keys and resolves password references."""

    def __init__(self, unsealer: Unsealer, settings: ExtractorSettings) -> None:
        self._unsealer, self._settings = unsealer, settings

    @property
    def public_key(self) -> str:
        """The public key the edge must seal with (LAKEGATE_EDGE_SEAL_PUBLIC_KEY)."""
        return self._unsealer.public_key

    async def open(self, login: SourceLogin, *, tenant_id: str, source: str) -> Login:
        """The login of `source` with its password: unsealed (checked to be for this tenant and address) or resolved."""
        if login.sealed_password is not None:
            password = self._unsealer.open(
                login.sealed_password, tenant_id=tenant_id, address=login.address, source=source
            )
        else:
            assert login.password_ref is not None  # a SourceLogin carries one of the two
            password = await resolve_reference(
                login.password_ref, tenant_id=tenant_id, settings=self._settings, source=source
            )
        return Login(login.address, password)

    async def credentials(self, rt: Runtime, ref: SourceRef) -> Credentials:
        """A registered source's credentials, asked of the catalog and opened."""
        answer = await rt.rpc.call(rt.topology.sources_credentials, ref, SourceCredentials)
        source = answer.source
        login = await self.open(answer.login, tenant_id=ref.tenant_id, source=f"source '{source.name}'")
        return Credentials(source, login)


def logins_from_settings(settings: ExtractorSettings) -> Logins:
    """The extractor's logins; refuses a missing or malformed key with the fix."""
    found = secret_text(
        settings.seal_keys, "LAKEGATE_EXTRACTOR_SEAL_KEYS", settings.seal_keys_file, "LAKEGATE_EXTRACTOR_SEAL_KEYS_FILE"
    )
    if found is None:
        raise InvalidInput(
            "the extractor has no key to open source secrets: set LAKEGATE_EXTRACTOR_SEAL_KEYS to a sealing private "
            f"key, or LAKEGATE_EXTRACTOR_SEAL_KEYS_FILE to a file holding one; generate a pair with {GENERATE}"
        )
    text, origin = found
    keys = [part.strip() for part in text.split(",") if part.strip()]
    return Logins(Unsealer(keys, origin=origin), settings)
