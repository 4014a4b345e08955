"""What the tests of daemon.config share: the fixture file, its secrets, and loaders."""

import shutil
from pathlib import Path
from textwrap import dedent

import pytest

from daemon.config import Config, load_config
from daemon.errors import ConfigError

ROOT = Path(__file__).resolve().parents[2]
FIXTURES = ROOT / "tests" / "data" / "config"

SECRET_KEY = "secret-key-0123456789-0123456789-abcdef"
API_TOKEN = "api-token-VISIBLE-ONLY-IN-TESTS"
ENTRA_SECRET = "entra-secret-VISIBLE-ONLY-IN-TESTS"
PASSWORD = "imap-password-VISIBLE-ONLY-IN-TESTS"
FILE_SECRET = "google-client-secret-from-file"
ENV = {"TEST_SECRET_KEY": SECRET_KEY, "TEST_API_TOKEN": API_TOKEN,
       "TEST_ENTRA_SECRET": ENTRA_SECRET, "TEST_SUPPORT_PASSWORD": PASSWORD}
ALL_SECRETS = (SECRET_KEY, API_TOKEN, ENTRA_SECRET, PASSWORD, FILE_SECRET)

MAILDIR_ACCOUNT = """
[[accounts]]
id = "demo"
email = "demo@example.com"
auth = "maildir"
maildir = "Maildir"
"""


@pytest.fixture
def here(tmp_path, monkeypatch):
    """A fresh folder that is also the working directory, so file names print short."""
    monkeypatch.chdir(tmp_path)
    return tmp_path


def load(folder: Path, text: str, environ=None, **kwargs) -> Config:
    (folder / "postroom.toml").write_text(dedent(text))
    return load_config("postroom.toml", environ=ENV if environ is None else environ, **kwargs)


def problems(folder: Path, text: str, environ=None) -> list[str]:
    with pytest.raises(ConfigError) as info:
        load(folder, text, environ)
    return [str(p) for p in info.value.problems]


@pytest.fixture
def full(tmp_path, monkeypatch) -> Config:
    """The fixture config, loaded from a different working directory."""
    folder = tmp_path / "etc"
    shutil.copytree(FIXTURES, folder)
    elsewhere = tmp_path / "cwd"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    return load_config(folder / "postroom.toml", environ=ENV)
