"""Encryption at rest of source secrets, with Fernet (AES-128-CBC + HMAC-SHA256).

What is stored is already sealed for the extractor (`lakegate.common.sealing`); this second layer
keeps a copy of the database useless without the catalog's keys too. Keys rotate with MultiFernet:
the first configured key encrypts, every key decrypts; `python -m lakegate.catalog rotate-keys`
encrypts every stored secret again with the first key, after which the old keys can be dropped.
"""

from __future__ import annotations

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from lakegate.catalog.config import CatalogSettings
from lakegate.common.errors import InvalidInput, TerminalError
from lakegate.common.settings import secret_text

_GENERATE = "python -c 'from cryptography.fernet import Fernet; print(Fernet.generate_key().decode())'"


class PasswordCipher:
    """Encrypts and decrypts source passwords; it never logs or keeps a plaintext."""

    def __init__(self, keys: list[bytes]) -> None:
        self._fernet = MultiFernet([Fernet(key) for key in keys])

    def encrypt(self, password: str) -> bytes:
        """The password as a Fernet token."""
        return self._fernet.encrypt(password.encode())

    def rotate(self, token: bytes, *, source: str) -> bytes:
        """`token` encrypted again with the first key (its timestamp kept)."""
        try:
            return self._fernet.rotate(token)
        except InvalidToken:
            raise self._unreadable(source) from None

    def decrypt(self, token: bytes, *, source: str) -> str:
        """The password of `source` from its token."""
        try:
            return self._fernet.decrypt(token).decode()
        except InvalidToken:
            raise self._unreadable(source) from None

    @staticmethod
    def _unreadable(source: str) -> TerminalError:
        return TerminalError(
            f"the password of source {source} cannot be decrypted with the catalog's secret key, so it was "
            "encrypted with another key: list the old key after the new one in LAKEGATE_CATALOG_SECRET_KEY, "
            "or register the source again"
        )


def cipher_from_settings(settings: CatalogSettings) -> PasswordCipher:
    """The cipher of the configured key(s); refuses a missing or malformed key with the fix."""
    found = secret_text(
        settings.secret_key, "LAKEGATE_CATALOG_SECRET_KEY", settings.secret_key_file, "LAKEGATE_CATALOG_SECRET_KEY_FILE"
    )
    if found is None:
        raise InvalidInput(
            "the catalog has no secret key to encrypt source passwords: set LAKEGATE_CATALOG_SECRET_KEY to a "
            f"Fernet key, or LAKEGATE_CATALOG_SECRET_KEY_FILE to a file holding one; generate a key with {_GENERATE}"
        )
    text, origin = found
    keys = [part.strip().encode() for part in text.split(",") if part.strip()]
    if not keys:
        raise InvalidInput(f"{origin} is empty: put a Fernet key there; generate one with {_GENERATE}")
    for position, key in enumerate(keys, start=1):
        try:
            Fernet(key)
        except ValueError:
            # The key itself is never echoed: only where it came from and which one it is.
            raise InvalidInput(
                f"key {position} of {origin} is not a Fernet key (32 url-safe base64-encoded bytes); "
                f"generate one with {_GENERATE}"
            ) from None
    return PasswordCipher(keys)
