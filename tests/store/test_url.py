"""open_store dispatch and redact_url."""

from __future__ import annotations

import sys

import pytest

from daemon.store import open_store, redact_url


@pytest.mark.parametrize(("url", "expected"), [
    ("sqlite:////var/lib/postroom/postroom.db", "sqlite:////var/lib/postroom/postroom.db"),
    ("sqlite:///x.db?busy_timeout_ms=5", "sqlite:///x.db?busy_timeout_ms=5"),
    ("postgresql://postroom@db:5432/crm", "postgresql://postroom@db:5432/crm"),
    ("postgresql://postroom:pa%3Ass@db:5432/crm?schema=p",
     "postgresql://postroom:***@db:5432/crm?schema=p"),
    ("postgresql://u:p@q@db/crm", "postgresql://u:***@db/crm"),
    ("postgres://db/crm?user=u&password=pw&sslmode=require",
     "postgres://db/crm?user=u&password=***&sslmode=require"),
    ("postgresql:///crm?host=/run/postgresql&PASSWORD=pw",
     "postgresql:///crm?host=/run/postgresql&PASSWORD=***"),
    ("not a url", "not a url"),
])
def test_redact_url(url: str, expected: str):
    assert redact_url(url) == expected


@pytest.mark.parametrize("url", ["mysql://db/x", "file:///x.db", "sqlite3:///x.db", ""])
def test_unknown_schemes_are_refused(url: str):
    with pytest.raises(ValueError, match="scheme"):
        open_store(url)


def test_importing_the_store_does_not_import_psycopg():
    # daemon.store is imported by the CLI; SQLite users should not pay for psycopg.
    import subprocess

    code = "import sys, daemon.store; print('psycopg' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True)
    assert out.stdout.strip() == "False"
