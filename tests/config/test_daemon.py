"""daemon.config.daemon: the [daemon] table."""

import pytest

from tests.config.conftest import load, problems


@pytest.mark.parametrize(("written", "expected"), [
    ("sqlite:///demo.db", "sqlite:///{here}/demo.db"),
    ("sqlite:///sub/demo.db?busy_timeout_ms=50", "sqlite:///{here}/sub/demo.db?busy_timeout_ms=50"),
    ("sqlite:////var/lib/postroom/postroom.db", "sqlite:////var/lib/postroom/postroom.db"),
    ("sqlite:///:memory:", "sqlite:///:memory:"),
    ("postgresql://postroom@127.0.0.1:5432/test", "postgresql://postroom@127.0.0.1:5432/test"),
])
def test_store_urls(here, written, expected):
    config = load(here, f'[daemon]\nstore = "{written}"\nsecret_key_env = "TEST_SECRET_KEY"\n')
    assert config.daemon.store == expected.format(here=here)


@pytest.mark.parametrize(("written", "reason"), [
    ("mysql://db/postroom", 'must be "sqlite:///path" or "postgresql://...", not a mysql URL'),
    ("postroom.db", 'must be "sqlite:///path" or "postgresql://...", not a no URL'),
    ("sqlite:///", '"sqlite:///" needs a file name, e.g. "sqlite:///postroom.db"'),
    ("postgresql://u:hunter2@db/p", "the URL must not contain a password: set PGPASSWORD or "
                                    "use a passfile (libpq reads both)"),
    ("postgresql://db/p?password=hunter2", "the URL must not contain a password: set "
                                           "PGPASSWORD or use a passfile (libpq reads both)"),
])
def test_bad_store_urls(here, written, reason):
    found = problems(here, f'[daemon]\nstore = "{written}"\nsecret_key_env = "TEST_SECRET_KEY"\n')
    assert found == [f"postroom.toml: daemon.store: {reason}"]
    assert "hunter2" not in "".join(found)


def test_daemon_and_http_field_checks(here):
    (here / "short").write_text("too-short")
    text = """
    [daemon]
    runtime = "missing.json"
    seed_objects = "/nonexistent/seed.json"
    public_base_url = "crm.example.com"
    secret_key_file = "short"
    installation_id = "a/b"
    mail_domain = "-bad-"
    log_format = "xml"
    plugins = ["ok.module", "not a module"]

    [http]
    bind = "8025"

    [[imap_connections]]
    id = "c"
    imap_host = "127.0.0.1"
    imap_port = 0
    smtp_host = "127.0.0.1"
    ca_file = "ca.pem"
    """
    assert problems(here, text) == [
        f'postroom.toml: daemon.runtime: no such file "{here}/missing.json"',
        'postroom.toml: daemon.public_base_url: "crm.example.com" must be an http:// or '
        "https:// URL",
        "postroom.toml: daemon.secret_key: must be at least 32 characters long",
        'postroom.toml: daemon.installation_id: "a/b" may contain only letters, digits, "_", '
        '"." and "-"',
        'postroom.toml: daemon.mail_domain: "-bad-" is not a domain name',
        "postroom.toml: daemon.log_format: must be 'auto', 'json' or 'console'",
        'postroom.toml: daemon.plugins: "not a module" is not a module path (e.g. '
        '"mycompany.postroom" or "mycompany.postroom:plugin")',
        'postroom.toml: daemon.seed_objects: no such file "/nonexistent/seed.json"',
        'postroom.toml: http.bind: "8025" must be "host:port", e.g. "127.0.0.1:8025" or '
        '"[::1]:8025"',
        "postroom.toml: imap_connections[0].imap_port: must be greater than 0",
        f'postroom.toml: imap_connections[0].ca_file: no such file "{here}/ca.pem"',
    ]
