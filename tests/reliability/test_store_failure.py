"""Drill 3, the store failing under the intake: database locked, then disk full.

Two accounts run in this process (``run_daemon``): an IMAP account on a real Dovecot and
a Maildir account, both on one SQLite store. While the store cannot commit, new mail
arrives on both. Each account must go to ``backoff`` (and retry: at least two rounds of
backoff while the fault lasts) and must acknowledge nothing that is not committed: no
file leaves ``new/``, no message turns ``\\Seen``. Once the fault clears, every message is
imported exactly once and acknowledged.

The two faults:

* **locked**: a second connection holds ``BEGIN EXCLUSIVE``; the store URL sets
  ``busy_timeout_ms=50``, so the daemon's ``BEGIN IMMEDIATE`` gives up quickly with
  SQLITE_BUSY (``StoreBusyError``).
* **disk full**: simulated inside SQLite, not with a tiny filesystem (that needs a mount):
  ``PRAGMA max_page_count`` on the daemon's own connection caps the file at its current
  size, so any transaction that needs a new page fails with a genuine SQLITE_FULL
  ("database or disk is full"), through the same error translation a full disk takes.
  Raising the cap again is "freeing space".
"""

from __future__ import annotations

import sqlite3
from collections import Counter
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest
import trio

from daemon.actors.status import AccountState, AccountStatus
from daemon.app import Daemon, open_daemon
from daemon.store.asyncstore import AsyncStore
from tests.fakes.dovecot import Dovecot, MailUser, make_message
from tests.helpers import wait_for_status
from tests.reliability.conftest import (
    ACCOUNT,
    MAILDIR_ACCOUNT,
    Imap,
    caught_up_to,
    load_drill_config,
    report,
    take_census,
    write_drill_config,
)

pytestmark = [pytest.mark.dovecot, pytest.mark.reliability]

SEEN = b"\\Seen"
PER_ACCOUNT = 5
#: Bodies big enough to need new database pages (the disk-full fault bites on those).
SIZE = 20_000
#: A fault: an async context manager that breaks the store for the duration of its block.
FaultWindow = Callable[[Daemon, Path], AbstractAsyncContextManager[None]]


@asynccontextmanager
async def database_locked(daemon: Daemon, db: Path) -> AsyncIterator[None]:
    """Hold SQLite's write lock from a second connection for the duration of the block."""
    conn = sqlite3.connect(db, isolation_level=None, check_same_thread=False, timeout=10)
    try:
        await trio.to_thread.run_sync(conn.execute, "BEGIN EXCLUSIVE")
        yield
        conn.execute("ROLLBACK")
    finally:
        conn.close()


@asynccontextmanager
async def disk_full(daemon: Daemon, db: Path) -> AsyncIterator[None]:
    """Cap the daemon's database at its current size (SQLITE_FULL on growth), then lift it."""
    await set_max_page_count(daemon.store, 1)  # SQLite clamps it to the current size
    try:
        yield
    finally:
        await set_max_page_count(daemon.store, 1_073_741_823)


async def set_max_page_count(store: AsyncStore, pages: int) -> None:
    # A per-connection setting, so it must run on the daemon's own connection: through
    # the store's transaction runner, using the transaction's statement helper.
    await store.run(lambda tx: tx._x(f"PRAGMA max_page_count = {int(pages)}").fetchall())


@dataclass
class Mail:
    """What the drill delivered: Message-IDs per account and the IMAP UIDs."""

    user: MailUser
    maildir: Path
    imap_ids: list[str]
    maildir_ids: list[str]
    uids: list[int]


def message_id(raw: bytes) -> str:
    return raw.split(b"Message-ID: <", 1)[1].split(b">", 1)[0].decode()


async def deliver(dovecot: Dovecot, mail: Mail, tag: str) -> None:
    """APPEND :data:`PER_ACCOUNT` messages to IMAP and drop as many into Maildir ``new/``."""
    imap_raws = [make_message(f"{tag} imap {n}", size=SIZE) for n in range(PER_ACCOUNT)]
    mail.uids += await trio.to_thread.run_sync(dovecot.append_many, mail.user, imap_raws)
    mail.imap_ids += [message_id(raw) for raw in imap_raws]
    for n in range(PER_ACCOUNT):
        raw = make_message(f"{tag} maildir {n}", size=SIZE)
        name = f"{tag}-{n:03d}.drill"
        (mail.maildir / "tmp" / name).write_bytes(raw)
        (mail.maildir / "tmp" / name).rename(mail.maildir / "new" / name)
        mail.maildir_ids.append(message_id(raw))


def backed_off_twice(since: int) -> Callable[[AccountStatus], bool]:
    return lambda s: s.state is AccountState.BACKOFF and s.reconnects >= since + 2


def maildir_done(count: int) -> Callable[[AccountStatus], bool]:
    return lambda s: s.state is AccountState.IDLE and s.imported >= count


async def run_store_drill(dovecot: Dovecot, tmp_path: Path, fault: FaultWindow,
                          name: str) -> None:
    user = dovecot.add_user()
    imap = Imap(port=dovecot.imap_port, user=user, backoff_cap=1.0)
    root = tmp_path / "drill"
    config = load_drill_config(write_drill_config(
        root, imap, store_query="?busy_timeout_ms=50", maildir=True), imap)
    mail = Mail(user, root / "Maildir", [], [], [])
    db = root / "postroom.db"
    async with open_daemon(config) as daemon:
        imap_status = daemon.handles[ACCOUNT].status
        maildir_status = daemon.handles[MAILDIR_ACCOUNT].status
        with trio.fail_after(30):
            await deliver(dovecot, mail, "before")  # both accounts work before the fault
            await wait_for_status(imap_status, caught_up_to(max(mail.uids)))
            await wait_for_status(maildir_status, maildir_done(PER_ACCOUNT))
            async with fault(daemon, db):
                await deliver(dovecot, mail, "during")
                await wait_for_status(imap_status, backed_off_twice(imap_status.reconnects))
                await wait_for_status(maildir_status,
                                      backed_off_twice(maildir_status.reconnects))
                pending = sorted(p.name for p in (mail.maildir / "new").iterdir())
                on_server = await trio.to_thread.run_sync(dovecot.messages, user)
            await wait_for_status(imap_status, caught_up_to(max(mail.uids)))
            await wait_for_status(maildir_status, maildir_done(2 * PER_ACCOUNT))
        errors = {imap_status.last_error, maildir_status.last_error}
        backoffs = (imap_status.reconnects, maildir_status.reconnects)

    census = await trio.to_thread.run_sync(take_census, db)
    expected = Counter(mail.imap_ids + mail.maildir_ids)
    lost = sum((expected - census.emailids).values())
    duplicated = sum((census.emailids - expected).values())
    unseen = [uid for uid, (flags, _) in on_server.items() if SEEN not in flags]
    report(f"store drill ({name}): backoffs imap={backoffs[0]} maildir={backoffs[1]}; "
           f"held back {len(pending)} files and {len(unseen)} unread on the server; "
           f"afterwards lost={lost} duplicated={duplicated}; last error {sorted(errors)}")
    assert all(e is not None and e.startswith("StoreBusyError") for e in errors)
    # While the store could not commit, nothing was acknowledged.
    assert pending == [f"during-{n:03d}.drill" for n in range(PER_ACCOUNT)]
    assert unseen == mail.uids[PER_ACCOUNT:]
    # Afterwards, everything exactly once, and acknowledged.
    assert (lost, duplicated) == (0, 0)
    assert census.emailids == expected
    assert census.statuses == Counter(imported=4 * PER_ACCOUNT)
    assert not any((mail.maildir / "new").iterdir())
    on_server = await trio.to_thread.run_sync(dovecot.messages, user)
    assert all(SEEN in flags for flags, _ in on_server.values())


async def test_database_locked_backs_off_and_acknowledges_nothing(dovecot: Dovecot,
                                                                  tmp_path: Path):
    await run_store_drill(dovecot, tmp_path, database_locked, "locked")


async def test_disk_full_backs_off_and_acknowledges_nothing(dovecot: Dovecot,
                                                            tmp_path: Path):
    await run_store_drill(dovecot, tmp_path, disk_full, "disk full")

