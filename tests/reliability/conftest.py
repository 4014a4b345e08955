"""Shared pieces of the fault drills (docs/reliability.md).

* ``dovecot`` (session) is the one of tests/conftest.py; each drill adds its own user.
* :func:`write_drill_config`: one IMAP account (``support``) and, optionally, one Maildir
  account (``local``), written by :func:`tests.helpers.write_config` (no HTTP).
* :func:`reference_census`: what an *uninterrupted* import of the same messages stores,
  computed with the daemon's own processor on a separate store. The drills compare
  against it, so "lost" and "duplicated" mean "differs from a run without faults", not a
  guess of which generated messages the classifier keeps.
* :func:`take_census`: what a store holds (conversation messages by ``emailid``, raw
  records by status, source keys, checkpoints).
* :func:`caught_up_to`: the predicate for :func:`tests.helpers.wait_for_status` that an
  IMAP account imported everything (the daemon in the test's own Trio run is
  :func:`daemon.app.open_daemon`).
* :func:`report`: a drill's figures, printed in a "fault drills" section at the end of
  the pytest run (so CI logs show ``lost=0 duplicated=0`` even when everything passes).
"""

from __future__ import annotations

import os
import textwrap
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import pytest
import trio

from daemon.actors.processor import Processor
from daemon.actors.status import AccountState, AccountStatus
from daemon.app import build_plugin_manager, open_daemon_store
from daemon.config import Config, load_config, load_secret_key
from daemon.imap.folder import checkpoint_key
from daemon.messages import Checkpoint, RawMessage, source_key
from daemon.store import open_store
from tests.fakes.dovecot import MailUser
from tests.helpers import write_config

ACCOUNT = "support"
MAILDIR_ACCOUNT = "local"
PASSWORD_ENV = "POSTROOM_DRILL_PASSWORD"
FAILURE_FOLDER = "postroom-failed"

#: ``POSTROOM_DRILLS=long`` runs the long forms (marked ``slow``) instead of skipping them.
LONG = os.environ.get("POSTROOM_DRILLS", "").lower() == "long"


def long_form_only() -> pytest.MarkDecorator:
    return pytest.mark.skipif(not LONG, reason="long form: set POSTROOM_DRILLS=long")


_FIGURES: list[str] = []


def report(line: str) -> None:
    """Record a drill's figures; pytest prints them at the end of the run, pass or fail."""
    print(line)
    _FIGURES.append(line)


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if _FIGURES:
        terminalreporter.section("fault drills")
        for line in _FIGURES:
            terminalreporter.write_line(line)


@dataclass(frozen=True)
class Imap:
    """Where the daemon's IMAP account connects, and how patient it is."""

    port: int
    user: MailUser
    backoff_cap: float = 2.0
    read_timeout: float = 10.0
    connect_timeout: float = 5.0


def write_drill_config(root: Path, imap: Imap, *, store_query: str = "",
                       maildir: bool = False) -> Path:
    """Write ``root/postroom.toml`` (+ runtime and seed files) with
    :func:`tests.helpers.write_config`; return its path.

    Args:
        root: an empty directory; the store is ``root/postroom.db``.
        imap: the IMAP account's server port, user and timings.
        store_query: appended to the SQLite URL, e.g. ``?busy_timeout_ms=50``.
        maildir: also configure the Maildir account ``local`` (``root/Maildir``).
    """
    accounts = textwrap.dedent(f"""
        [[imap_connections]]
        id = "dovecot"
        imap_host = "127.0.0.1"
        imap_port = {imap.port}
        imap_tls = "none"
        smtp_host = "127.0.0.1"
        smtp_tls = "none"
        connect_timeout_seconds = {imap.connect_timeout}
        read_timeout_seconds = {imap.read_timeout}

        [[accounts]]
        id = "{ACCOUNT}"
        email = "support@demo.example"
        aliases = ["help@demo.example"]
        auth = "dovecot"
        username = "{imap.user.name}"
        password_env = "{PASSWORD_ENV}"
        failure_folder = "{FAILURE_FOLDER}"
        backoff_cap_seconds = {imap.backoff_cap}
        stable_after_seconds = 30
        """)
    if maildir:
        accounts += textwrap.dedent(f"""
            [[accounts]]
            id = "{MAILDIR_ACCOUNT}"
            email = "local@demo.example"
            auth = "maildir"
            maildir = "Maildir"
            failure_folder = "{FAILURE_FOLDER}"
            backoff_cap_seconds = {imap.backoff_cap}
            stable_after_seconds = 30
            """)
    return write_config(root, http=False, store_query=store_query, accounts=accounts)


def drill_environ(imap: Imap) -> dict[str, str]:
    """The environment the daemon needs (the account's password)."""
    return {**os.environ, PASSWORD_ENV: imap.user.password}


def load_drill_config(path: Path, imap: Imap) -> Config:
    return load_config(path, environ=drill_environ(imap))


# -- what a store holds ------------------------------------------------------------------

@dataclass(frozen=True)
class Census:
    """The contents of a store that the drills judge.

    Attributes:
        emailids: conversation messages counted by ``emailid`` (the Message-ID).
        statuses: raw records counted by status (imported, discarded, duplicate, failed).
        source_keys: every raw record's source key.
        checkpoints: the IMAP account's checkpoints by name (``last_uid`` ...).
    """

    emailids: Counter[str]
    statuses: Counter[str]
    source_keys: frozenset[str]
    checkpoints: dict[str, str | None]

    def lost_and_duplicated(self, reference: Census) -> tuple[int, int]:
        """Conversation messages the reference has and this lacks, and extra copies."""
        lost = sum((reference.emailids - self.emailids).values())
        duplicated = sum((self.emailids - reference.emailids).values())
        return lost, duplicated


def take_census(db: Path, *, limit: int = 100_000) -> Census:
    """Read ``db`` (blocking; from Trio use ``trio.to_thread.run_sync``)."""
    store = open_store(f"sqlite:///{db}")
    try:
        with store.transaction() as tx:
            messages = tx.find("conversationmessage")
            raws = tx.list_raw(limit=limit)
            checkpoints = {name: tx.get_checkpoint(ACCOUNT, checkpoint_key("INBOX", name))
                           for name in ("uidvalidity", "last_uid", "flagged_uid")}
    finally:
        store.close()
    return Census(emailids=Counter(str(m.get("emailid")) for m in messages),
                  statuses=Counter(r.status for r in raws),
                  source_keys=frozenset(r.source_key for r in raws),
                  checkpoints=checkpoints)


def imap_source_key(uidvalidity: int, uid: int) -> str:
    return source_key("imap", ACCOUNT, "INBOX", uidvalidity, uid)


async def reference_census(root: Path, imap: Imap, messages: Sequence[tuple[int, bytes]],
                           uidvalidity: int) -> Census:
    """Import ``(uid, raw)`` pairs in order, without faults, into ``root``'s own store.

    Uses the daemon's processor and store exactly as ``run_daemon`` builds them, so the
    result is what an undisturbed daemon stores for these messages.
    """
    config = load_drill_config(write_drill_config(root, imap), imap)
    pm = build_plugin_manager(config)
    store = await open_daemon_store(config)
    try:
        processor = Processor(config, store, pm, secret=load_secret_key(config))
        for uid, raw in messages:
            await processor.process(RawMessage(
                account=ACCOUNT, source_key=imap_source_key(uidvalidity, uid), raw=raw,
                folder="INBOX",
                checkpoint=Checkpoint(ACCOUNT, checkpoint_key("INBOX", "last_uid"),
                                      str(uid))))
    finally:
        await store.aclose()
    return await trio.to_thread.run_sync(take_census, root / "postroom.db")


# -- the daemon in this Trio run ---------------------------------------------------------

def caught_up_to(uid: int) -> Callable[[AccountStatus], bool]:
    """An IMAP account is idle with ``last_uid`` at ``uid``: everything imported, flagged."""
    return lambda s: s.state is AccountState.IDLE and s.extra.get("last_uid") == uid
