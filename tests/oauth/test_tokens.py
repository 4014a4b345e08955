"""daemon.oauth.tokens: grants sealed with AES-GCM; nothing in clear on disk."""

from pathlib import Path

import pytest

from daemon.oauth.tokens import (
    Grant,
    GrantUnreadable,
    TokenCipher,
    delete_grant,
    load_grant,
    reseal_grants,
    save_grant,
)
from daemon.store import open_store

ACCESS = "eyJ0eXAiOiJKV1QiLCJhbGciOi-ACCESS-TOKEN-7f3a"
REFRESH = "1//0g-REFRESH-TOKEN-c0ffee-91ab"
CACHE = '{"RefreshToken": {"x": {"secret": "M.R3_BAY.-MSAL-RT-5e5e"}}}'


def grant(account: str = "support") -> Grant:
    return Grant(account=account, app="m365", provider="microsoft", user="ann@contoso.example",
                 scopes=("https://outlook.office.com/IMAP.AccessAsUser.All",),
                 access_token=ACCESS, expires_at=1_900_000_000.0, refresh_token=REFRESH,
                 msal_cache=CACHE)


def test_a_sealed_grant_opens_only_with_the_same_key_and_account():
    cipher = TokenCipher(b"k" * 32)
    blob = cipher.seal(grant().to_bytes(), account="support")
    assert Grant.from_bytes(cipher.open(blob, account="support")) == grant()
    with pytest.raises(GrantUnreadable):
        cipher.open(blob, account="sales")
    with pytest.raises(GrantUnreadable):
        TokenCipher(b"j" * 32).open(blob, account="support")
    assert ACCESS not in repr(grant()) and REFRESH not in repr(grant())


def test_token_strings_appear_nowhere_in_the_database_file_or_its_wal(tmp_path: Path):
    url = f"sqlite:///{tmp_path / 'postroom.db'}"
    store = open_store(url)
    cipher = TokenCipher(b"k" * 32)
    try:
        with store.transaction() as tx:
            save_grant(tx, cipher, grant())
        with store.transaction() as tx:
            assert load_grant(tx, cipher, "support") == grant()
        on_disk = b"".join(p.read_bytes() for p in tmp_path.iterdir() if p.is_file())
        assert b"oauth:grant" in on_disk  # the row is there...
        for secret in (ACCESS, REFRESH, "MSAL-RT-5e5e", "ann@contoso.example"):
            assert secret.encode() not in on_disk  # ...but none of its contents
    finally:
        store.close()


def test_rotating_the_key_reseals_every_grant_and_deleting_forgets_it(tmp_path: Path):
    store = open_store(f"sqlite:///{tmp_path / 'postroom.db'}")
    old, new = TokenCipher(b"o" * 32), TokenCipher(b"n" * 32)
    try:
        with store.transaction() as tx:
            save_grant(tx, old, grant("support"))
            save_grant(tx, old, grant("sales"))
        with store.transaction() as tx:
            assert reseal_grants(tx, old, new, ["support", "sales", "nobody"]) == 2
        with store.transaction() as tx:
            assert load_grant(tx, new, "sales") == grant("sales")
            with pytest.raises(GrantUnreadable):
                load_grant(tx, old, "support")
            delete_grant(tx, "support")
            assert load_grant(tx, new, "support") is None
    finally:
        store.close()
