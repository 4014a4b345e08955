"""postroom rekey-oauth: rotating the secret key re-encrypts every stored grant."""

from __future__ import annotations

import hashlib
import textwrap
from pathlib import Path

from daemon.cli import main
from daemon.oauth.tokens import Grant, TokenCipher, load_grant, save_grant
from daemon.store import open_store

OLD, NEW = "old-secret-key-0123456789-0123456789-xx", "new-secret-key-0123456789-0123456789-yy"


def cipher(text: str) -> TokenCipher:
    return TokenCipher(hashlib.sha256(text.encode()).digest())


def test_rekey_oauth_reseals_grants_with_the_new_key(tmp_path: Path, monkeypatch, capsys):
    (tmp_path / "postroom.toml").write_text(textwrap.dedent("""\
        [daemon]
        store = "sqlite:///postroom.db"
        secret_key_env = "TEST_NEW_KEY"

        [[oauth_apps]]
        id = "gmail"
        provider = "google"
        client_id = "c"
        client_secret_env = "TEST_NEW_KEY"

        [[accounts]]
        id = "support"
        email = "ann@gmail.example"
        auth = "gmail"
        """))
    monkeypatch.setenv("TEST_NEW_KEY", NEW)
    (tmp_path / "old.key").write_text(OLD + "\n")
    grant = Grant(account="support", app="gmail", provider="google", user="ann@gmail.example",
                  refresh_token="1//refresh-token-to-keep")
    store = open_store(f"sqlite:///{tmp_path / 'postroom.db'}")
    with store.transaction() as tx:
        save_grant(tx, cipher(OLD), grant)
    store.close()
    config = str(tmp_path / "postroom.toml")
    (tmp_path / "wrong.key").write_text(NEW)
    assert main(["rekey-oauth", "--old-key-file", str(tmp_path / "wrong.key"),
                 "--config", config]) == 1
    assert "Nothing was changed" in capsys.readouterr().err
    assert main(["rekey-oauth", "--old-key-file", str(tmp_path / "old.key"),
                 "--config", config]) == 0
    assert "re-encrypted 1 OAuth grant" in capsys.readouterr().out
    store = open_store(f"sqlite:///{tmp_path / 'postroom.db'}")
    with store.transaction() as tx:
        assert load_grant(tx, cipher(NEW), "support") == grant
    store.close()
