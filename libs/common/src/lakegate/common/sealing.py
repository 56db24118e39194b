"""Source secrets sealed for the extractor, so that no NATS subscriber ever reads one.

The extractor is the only service that logs in to source databases, so it is the only one that
holds the private key. The edge seals the password the user gives with the extractor's public
key (a secret reference, `env:` / `file:`, is no secret and travels as it is); the catalog stores
the seal as it is (encrypted once more at rest) and hands it back in `sources.credentials`; only
the extractor opens it.

A seal is an X25519 sealed box, the construction of libsodium's `crypto_box_seal` built from
`cryptography`: an ephemeral X25519 key agrees a secret with the extractor's key, HKDF-SHA256 makes
it a ChaCha20-Poly1305 key used once. The sealed text binds the secret to the tenant and the
address it was given for, so a seal captured and replayed with another host or tenant opens to an
error, never to a password sent to somebody else's server.

    LG1 . key id (8 bytes) . ephemeral public key (32) . ciphertext + tag      (base64url, no padding)

Keys rotate: the extractor lists several private keys (the first is current, the edge seals with
its public key); a seal says which key it was made for, so older seals still open.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey
from cryptography.hazmat.primitives.ciphers.aead import ChaCha20Poly1305
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from lakegate.common.contracts.sources import SourceAddress
from lakegate.common.errors import InvalidInput, TerminalError
from pydantic import SecretStr

_MAGIC = b"LG1"
_INFO = b"lakegate source secret seal v1"
_NONCE = bytes(12)  # every seal has its own ephemeral key, so its AEAD key is used once
_RAW = serialization.Encoding.Raw
GENERATE = "python -m lakegate.devstack seal-key"


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _public_bytes(key: X25519PublicKey) -> bytes:
    return key.public_bytes(_RAW, serialization.PublicFormat.Raw)


def _key_id(public: bytes) -> bytes:
    return hashlib.sha256(public).digest()[:8]


def _aead_key(shared: bytes, ephemeral: bytes, recipient: bytes) -> bytes:
    return HKDF(algorithm=hashes.SHA256(), length=32, salt=ephemeral + recipient, info=_INFO).derive(shared)


def _binding(tenant_id: str, address: SourceAddress) -> dict[str, object]:
    return {
        "tenant": tenant_id,
        "host": address.host,
        "port": address.port,
        "database": address.database,
        "user": address.user,
    }


def new_private_key() -> str:
    """A fresh private sealing key as text (base64url of its 32 raw bytes)."""
    key = X25519PrivateKey.generate()
    return _b64(key.private_bytes(_RAW, serialization.PrivateFormat.Raw, serialization.NoEncryption()))


def public_key_of(private_key: str) -> str:
    """The public key (text) of a private sealing key (text)."""
    return _b64(_public_bytes(_private(private_key, "the key").public_key()))


def _private(text: str, origin: str) -> X25519PrivateKey:
    try:
        raw = _unb64(text.strip())
        if len(raw) != 32:
            raise ValueError
        return X25519PrivateKey.from_private_bytes(raw)
    except (ValueError, binascii.Error):
        # The key itself is never echoed: only where it came from.
        raise InvalidInput(
            f"{origin} is not a sealing private key (32 bytes, base64url); generate a pair with {GENERATE}"
        ) from None


class Sealer:
    """Seals source secrets for the extractor; holds only its public key."""

    def __init__(self, public_key: str, *, origin: str = "the sealing public key") -> None:
        try:
            raw = _unb64(public_key.strip())
            if len(raw) != 32:
                raise ValueError
            self._recipient = X25519PublicKey.from_public_bytes(raw)
        except (ValueError, binascii.Error):
            raise InvalidInput(
                f"{origin} is not a sealing public key (32 bytes, base64url); it is printed by {GENERATE}"
            ) from None
        self._recipient_bytes = raw

    def seal(self, password: SecretStr, *, tenant_id: str, address: SourceAddress) -> str:
        """`password`, bound to the tenant and address, as text only the extractor can open."""
        body = {**_binding(tenant_id, address), "password": password.get_secret_value()}
        ephemeral = X25519PrivateKey.generate()
        ephemeral_public = _public_bytes(ephemeral.public_key())
        key = _aead_key(ephemeral.exchange(self._recipient), ephemeral_public, self._recipient_bytes)
        header = _MAGIC + _key_id(self._recipient_bytes) + ephemeral_public
        sealed = ChaCha20Poly1305(key).encrypt(_NONCE, json.dumps(body).encode(), header)
        return _b64(header + sealed)


class Unsealer:
    """Opens seals with the extractor's private keys (the first is current; the others still open)."""

    def __init__(self, private_keys: list[str], *, origin: str = "the sealing private key") -> None:
        if not private_keys:
            raise InvalidInput(f"{origin} is empty: put a sealing private key there; generate one with {GENERATE}")
        self._keys: dict[bytes, X25519PrivateKey] = {}
        for position, text in enumerate(private_keys, start=1):
            key = _private(text, f"key {position} of {origin}")
            self._keys[_key_id(_public_bytes(key.public_key()))] = key
        self.public_key = _b64(_public_bytes(_private(private_keys[0], origin).public_key()))

    def open(self, sealed: str, *, tenant_id: str, address: SourceAddress, source: str) -> SecretStr:
        """The password of `source`, after checking the seal was made for this tenant and this address."""
        try:
            raw = _unb64(sealed)
        except (ValueError, binascii.Error):
            raw = b""
        header, body = raw[:43], raw[43:]
        if len(raw) < 43 + 16 or not header.startswith(_MAGIC):
            raise TerminalError(f"the password of {source} is not a lakegate seal: register the source again")
        key = self._keys.get(header[3:11])
        if key is None:
            raise TerminalError(
                f"the password of {source} was sealed for another extractor key: list that key after the current "
                "one in LAKEGATE_EXTRACTOR_SEAL_KEYS, or register the source again"
            )
        recipient = _public_bytes(key.public_key())
        ephemeral = header[11:43]
        try:
            shared = key.exchange(X25519PublicKey.from_public_bytes(ephemeral))
            opened = json.loads(ChaCha20Poly1305(_aead_key(shared, ephemeral, recipient)).decrypt(_NONCE, body, header))
        except (InvalidTag, ValueError):
            raise TerminalError(f"the sealed password of {source} is damaged: register the source again") from None
        if {k: opened.get(k) for k in ("tenant", "host", "port", "database", "user")} != _binding(tenant_id, address):
            raise TerminalError(
                f"the password of {source} was sealed for another tenant or address, so it is not used: register the "
                "source again with its own password"
            )
        return SecretStr(str(opened["password"]))
