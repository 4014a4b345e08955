"""daemon.config.accounts: the [[accounts]] array."""

from pathlib import Path

from daemon.config import Account, OAuthApp, Secret
from tests.config.conftest import problems


def test_account_field_checks(here):
    text = """
    [[accounts]]
    id = "bad id"
    email = "support(at)example.com"
    auth = "maildir"
    maildir = "m"
    aliases = ["ok@example.com", "not-an-address"]
    timezone = "Mars/Olympus"
    language = "English"
    idle_renew_seconds = 1800
    poll_interval_seconds = 0
    auto_reply = { enabled = true }
    """
    assert problems(here, text) == [
        'postroom.toml: accounts[0].id: "bad id" may contain only letters, digits, "_", "." '
        'and "-"',
        'postroom.toml: accounts[0].email: "support(at)example.com" does not look like an '
        "email address",
        'postroom.toml: accounts[0].aliases[1]: "not-an-address" does not look like an email '
        "address",
        'postroom.toml: accounts[0].language: "English" is not a language tag (e.g. "en", '
        '"sv", "pt-BR")',
        'postroom.toml: accounts[0].timezone: "Mars/Olympus" is not a time zone name (e.g. '
        '"Europe/Stockholm")',
        "postroom.toml: accounts[0].idle_renew_seconds: must be at most 1740 (29 minutes): "
        "RFC 2177 servers may end an IDLE after 30 minutes",
        "postroom.toml: accounts[0].poll_interval_seconds: must be greater than 0",
        "postroom.toml: accounts[0].auto_reply.body: required when enabled = true",
    ]


def test_models_can_be_built_directly():
    account = Account(id="a", email="a@example.com", auth="maildir", maildir="/tmp/m",
                      password=None)
    assert account.maildir == Path("/tmp/m")
    app = OAuthApp(id="g", provider="google", client_id="c", client_secret=Secret("s"))
    assert app.base_scope == "imap_smtp"
