"""OAuth grants at rest: one encrypted blob per account, nothing in clear on disk.

A :class:`Grant` is what a consent leaves behind: the delegated user who signed in, the
scopes, the refresh token (Google) or msal's serialized token cache (Microsoft, which
holds the refresh token, the id token and the access token), and the current access
token with its expiry. It is stored as **one** AES-GCM sealed string in the account's
checkpoints (key :data:`GRANT_KEY`), so the token strings never reach the database file,
its WAL or a log: the plaintext exists only in memory.

Key: HKDF-SHA256 over the daemon's secret key (:func:`daemon.config.load_secret_key`) with
an info string naming this purpose, so the same secret key can sign Message-IDs without
the two uses ever sharing key bytes. A fresh 96-bit random nonce per seal; the account id
is the associated data, so a blob copied to another account's row fails to open.

Why checkpoints, not a table of our own: a grant is per-account state read and written
whole (never queried by content), which is exactly what checkpoints are; it spares a
migration and store methods on both backends. Rotating the secret key re-seals every
grant in one transaction (:func:`reseal_grants`, ``postroom rekey-oauth``).
"""

from __future__ import annotations

__all__ = ["GRANT_KEY", "Grant", "GrantUnreadable", "TokenCipher", "delete_grant",
           "load_grant", "reseal_grants", "save_grant"]

import base64
import json
import os
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field, replace
from typing import Any

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

#: The checkpoint key under which an account's sealed grant is stored.
GRANT_KEY = "oauth:grant"

_INFO = b"postroom oauth token storage v1"
_VERSION = "v1"


class GrantUnreadable(ValueError):
    """A stored grant does not open with this key (another secret key, or tampering)."""


class TokenCipher:
    """AES-GCM with a key derived from the daemon's secret key. Holds no plaintext."""

    def __init__(self, secret_key: bytes) -> None:
        if len(secret_key) < 16:
            raise ValueError("secret_key: at least 16 bytes of key material")
        key = HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=_INFO).derive(
            secret_key)
        self._aead = AESGCM(key)

    def __repr__(self) -> str:
        return "<TokenCipher>"

    def seal(self, plaintext: bytes, *, account: str) -> str:
        """``v1:<base64(nonce + ciphertext)>``, bound to ``account``."""
        nonce = os.urandom(12)
        sealed = self._aead.encrypt(nonce, plaintext, account.encode())
        return f"{_VERSION}:{base64.b64encode(nonce + sealed).decode()}"

    def open(self, blob: str, *, account: str) -> bytes:
        """The plaintext of a :meth:`seal` result.

        Raises:
            GrantUnreadable: wrong key, wrong account, or a damaged blob.
        """
        version, _, body = blob.partition(":")
        if version != _VERSION:
            raise GrantUnreadable(f"unknown grant format {version!r}")
        try:
            raw = base64.b64decode(body, validate=True)
            return self._aead.decrypt(raw[:12], raw[12:], account.encode())
        except (InvalidTag, ValueError) as exc:
            raise GrantUnreadable("the stored OAuth grant does not open with this secret "
                                  "key") from exc


@dataclass(frozen=True)
class Grant:
    """One account's consent. Token fields are left out of the repr.

    Attributes:
        account, app, provider: whose grant, through which ``[[oauth_apps]]`` entry.
        user: the delegated user who signed in (a shared mailbox's owner is the account).
        scopes: the scopes granted.
        consented_at: epoch seconds of the sign-in.
        access_token, expires_at: the current access token and its expiry (epoch seconds).
        refresh_token: Google's refresh token (Microsoft's lives in ``msal_cache``).
        msal_cache: msal's ``SerializableTokenCache`` serialized (Microsoft only).
    """

    account: str
    app: str
    provider: str
    user: str
    scopes: tuple[str, ...] = ()
    consented_at: float = 0.0
    access_token: str = field(default="", repr=False)
    expires_at: float = 0.0
    refresh_token: str = field(default="", repr=False)
    msal_cache: str = field(default="", repr=False)

    def with_access_token(self, token: str, expires_at: float, **changes: Any) -> Grant:
        return replace(self, access_token=token, expires_at=expires_at, **changes)

    def to_bytes(self) -> bytes:
        return json.dumps(asdict(self)).encode()

    @classmethod
    def from_bytes(cls, data: bytes) -> Grant:
        values = json.loads(data)
        values["scopes"] = tuple(values.get("scopes", ()))
        return cls(**values)


def save_grant(tx: Any, cipher: TokenCipher, grant: Grant) -> None:
    """Store ``grant`` sealed (inside the caller's transaction)."""
    tx.set_checkpoint(grant.account, GRANT_KEY,
                      cipher.seal(grant.to_bytes(), account=grant.account))


def load_grant(tx: Any, cipher: TokenCipher, account: str) -> Grant | None:
    """The account's grant, or None when it never consented (or the grant was deleted).

    Raises:
        GrantUnreadable: the blob does not open with this key.
    """
    blob = tx.get_checkpoint(account, GRANT_KEY)
    if blob is None:
        return None
    return Grant.from_bytes(cipher.open(blob, account=account))


def delete_grant(tx: Any, account: str) -> None:
    tx.delete_checkpoints(account, GRANT_KEY)


def reseal_grants(tx: Any, old: TokenCipher, new: TokenCipher, accounts: Iterable[str]
                  ) -> int:
    """Re-encrypt every stored grant of ``accounts`` from ``old`` to ``new``; how many.

    Raises:
        GrantUnreadable: a grant does not open with ``old`` (nothing is written: the
            caller's transaction rolls back).
    """
    count = 0
    for account in accounts:
        grant = load_grant(tx, old, account)
        if grant is not None:
            save_grant(tx, new, grant)
            count += 1
    return count
