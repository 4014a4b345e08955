"""Helpers for end-to-end tests: a throw-away config with a Maildir and SQLite."""

from __future__ import annotations

import json
import shutil
import textwrap
from email.message import EmailMessage
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
DEMO = REPO / "config" / "demo"


def write_config(root: Path, *, http: bool = True, plugins: list[str] | None = None,
                 extra_daemon: str = "") -> Path:
    """A TOML file for one Maildir account under ``root``; returns its path."""
    shutil.copy(DEMO / "runtime.json", root / "runtime.json")
    shutil.copy(DEMO / "seed.json", root / "seed.json")
    module_list = json.dumps(plugins or [])
    (root / "postroom.toml").write_text(textwrap.dedent(f"""\
        [daemon]
        store = "sqlite:///postroom.db"
        runtime = "runtime.json"
        seed_objects = "seed.json"
        log_format = "json"
        shutdown_grace_seconds = 5
        plugins = {module_list}
        {extra_daemon}

        [http]
        enabled = {"true" if http else "false"}
        bind = "127.0.0.1:0"

        [[accounts]]
        id = "support"
        name = "Support Team"
        email = "support@demo.example"
        aliases = ["help@demo.example"]
        auth = "maildir"
        maildir = "Maildir"
        """))
    for sub in ("new", "cur", "tmp"):
        (root / "Maildir" / sub).mkdir(parents=True, exist_ok=True)
    return root / "postroom.toml"


def make_message(n: int, *, reply_to: int | None = None, sender: str = "ann@acme.example"
                 ) -> bytes:
    """A small, unique customer message number ``n``."""
    m = EmailMessage()
    m["From"] = f"Customer {n} <{sender}>"
    m["To"] = "support@demo.example"
    m["Subject"] = f"Request number {n}" if reply_to is None else f"Re: Request {reply_to}"
    m["Message-ID"] = f"<msg-{n}@customers.example>"
    m["Date"] = "Tue, 24 Nov 2026 08:00:00 +0000"
    if reply_to is not None:
        m["In-Reply-To"] = f"<msg-{reply_to}@customers.example>"
    m.set_content(f"Body of message {n}.\n")
    return bytes(m)


def drop(maildir: Path, name: str, raw: bytes) -> None:
    """Deliver like an MTA: write in tmp/, then rename into new/."""
    tmp = maildir / "tmp" / name
    tmp.write_bytes(raw)
    tmp.rename(maildir / "new" / name)


@pytest.fixture
def workdir(tmp_path: Path) -> Path:
    return tmp_path
