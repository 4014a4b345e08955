"""daemon.config.secretkey: a configured key, or one generated next to a SQLite store."""

import dataclasses
import stat

import pytest

from daemon.config import load_secret_key, parse_config
from daemon.errors import ConfigError

KEY = "k" * 40


def _config(tmp_path, daemon: dict, environ=None):
    return parse_config({"daemon": daemon}, file="postroom.toml", base_dir=tmp_path,
                        environ=environ or {})


def test_configured_key_is_used_and_nothing_is_written(tmp_path):
    config = _config(tmp_path, {"store": "sqlite:///state/p.db", "secret_key_env": "KEY"},
                     {"KEY": KEY})
    key = load_secret_key(config)
    assert len(key) == 32
    assert key == load_secret_key(_config(tmp_path, {"secret_key_env": "KEY"}, {"KEY": KEY}))
    assert not (tmp_path / "state").exists()


def test_sqlite_key_is_generated_once_next_to_the_database(tmp_path):
    config = _config(tmp_path, {"store": "sqlite:///state/p.db"})
    first = load_secret_key(config)
    key_file = tmp_path / "state" / "p.db.key"
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    assert len(key_file.read_text().strip()) == 64
    assert load_secret_key(config) == first
    other = _config(tmp_path, {"store": "sqlite:///other.db"})
    assert load_secret_key(other) != first


def test_postgres_without_a_key_is_refused(tmp_path):
    # The loader already refuses this file; a Config built around it must be refused too.
    config = _config(tmp_path, {"store": "sqlite:///p.db"})
    postgres = config.daemon.model_copy(update={"store": "postgresql://127.0.0.1/x"})
    with pytest.raises(ConfigError) as info:
        load_secret_key(dataclasses.replace(config, daemon=postgres))
    assert [str(p) for p in info.value.problems] == [
        f"{tmp_path / 'postroom.toml'}: daemon.secret_key_env: required when the store is not "
        "SQLite"]
