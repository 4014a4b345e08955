"""Functions the tests of several directories share; the shared fixtures are in
tests/conftest.py.

* :func:`wait_for_status`: event-driven waits on any status with a ``changed`` event
  (an account's :class:`~daemon.actors.status.AccountStatus`, the outbox's
  :class:`~daemon.actors.outbox.OutboxStatus`): no sleeps, no polling.
* :func:`write_config`: the one TOML writer (demo runtime and seed, SQLite, any accounts).
* :func:`make_message` / :func:`drop`: a small customer message, delivered into a Maildir
  the way an MTA does.
"""

from __future__ import annotations

__all__ = ["DEMO", "MAILDIR_SUPPORT", "drop", "make_message", "wait_for_status",
           "write_config"]

import json
import shutil
import textwrap
from collections.abc import Callable
from email.message import EmailMessage
from pathlib import Path
from typing import Any, Protocol, TypeVar

import trio


class _Changing(Protocol):
    @property
    def changed(self) -> trio.Event: ...


S = TypeVar("S", bound=_Changing)


async def wait_for_status(status: S, predicate: Callable[[S], Any], *,
                          seconds: float | None = None) -> None:
    """Return once ``predicate(status)`` holds; re-checked on every status change.

    Args:
        seconds: fail (``trio.TooSlowError``) after this long; None leaves the deadline
            to the caller (the drills set their own, and under ``autojump_clock`` a
            deadline here would be virtual time).
    """
    with trio.fail_after(seconds) if seconds is not None else trio.CancelScope():
        while not predicate(status):
            await status.changed.wait()


REPO = Path(__file__).resolve().parents[1]
DEMO = REPO / "config" / "demo"


#: The default ``accounts`` of :func:`write_config`: one Maildir account, ``support``.
MAILDIR_SUPPORT = """
[[accounts]]
id = "support"
name = "Support Team"
email = "support@demo.example"
aliases = ["help@demo.example"]
auth = "maildir"
maildir = "Maildir"
"""


def write_config(root: Path, *, http: bool = True, plugins: list[str] | None = None,
                 extra_daemon: str = "", store_query: str = "",
                 accounts: str = MAILDIR_SUPPORT) -> Path:
    """Write ``root/postroom.toml`` with the demo's runtime and seed files; return its path.

    The one config writer of the tests: SQLite in ``root/postroom.db``, JSON logs, a
    5-second shutdown grace, ``root/Maildir`` made.

    Args:
        http: enable the HTTP listener (on a free loopback port).
        plugins: modules for ``[daemon] plugins``.
        extra_daemon: more ``[daemon]`` lines.
        store_query: appended to the SQLite URL, e.g. ``?busy_timeout_ms=50``.
        accounts: the ``[[imap_connections]]`` and ``[[accounts]]`` tables, as TOML.
    """
    root.mkdir(parents=True, exist_ok=True)
    shutil.copy(DEMO / "runtime.json", root / "runtime.json")
    shutil.copy(DEMO / "seed.json", root / "seed.json")
    module_list = json.dumps(plugins or [])
    (root / "postroom.toml").write_text(textwrap.dedent(f"""\
        [daemon]
        store = "sqlite:///postroom.db{store_query}"
        runtime = "runtime.json"
        seed_objects = "seed.json"
        log_format = "json"
        shutdown_grace_seconds = 5
        plugins = {module_list}
        {extra_daemon}

        [http]
        enabled = {"true" if http else "false"}
        bind = "127.0.0.1:0"
        """) + textwrap.dedent(accounts))
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
