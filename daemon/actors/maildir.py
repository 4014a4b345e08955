"""The Maildir mailbox actor: a local Maildir as a mailbox (the embedded default).

State owned: the account's :class:`AccountStatus`; nothing else — the Maildir itself is the
checkpoint. A message in ``new/`` is not yet processed; one in ``cur/`` is done.

Receives: wake-ups on ``handle.wakeups`` ("sync now"); otherwise it looks at ``new/``
every :data:`WATCH_INTERVAL` seconds (a directory scan costs microseconds).

Sends: the files in ``new/``, oldest name first, as :class:`RawMessage` batches of up to
:data:`BATCH` to ``submit`` (imported in order, in one transaction), waiting for the
committed outcomes. Then, and only then, each file moves:

* imported / duplicate / discarded: the file moves to ``cur/`` with the ``S`` (seen) flag;
* failed: the file moves to the Maildir++ folder ``.<failure_folder>`` (default
  ``.postroom-failed``), raw bytes and error already in the store.
* larger than ``max_message_bytes``: never read. It is submitted as a
  :class:`RawMessage` with empty ``raw`` and ``too_large`` set (as IMAP does for a
  message it does not download), so the processor records the error
  (``raw_messages`` + ``conversationmessageerror``), and the file moves to the failure
  folder; ``maildir.message.too_large`` is logged.

A crash between commit and move leaves the file in ``new/``; next time its source key is
found in the store and it is moved without importing twice.

States: ``syncing`` while working through ``new/``, ``idle`` while watching.

Errors: a missing Maildir is created. Filesystem errors propagate (the supervisor backs
off); a transient store error propagates likewise and nothing is moved.

Cancellation: between messages at any checkpoint; a message being committed finishes its
transaction in the store thread, and is found again in ``new/`` next time.
"""

from __future__ import annotations

__all__ = ["BATCH", "WATCH_INTERVAL", "ensure_maildir", "run_maildir_account"]

import os
from pathlib import Path
from typing import TYPE_CHECKING

import structlog
import trio

from daemon.actors.status import AccountHandle, AccountState
from daemon.messages import Outcome, RawMessage, SubmitMany, source_key

if TYPE_CHECKING:
    from daemon.config import Account

log = structlog.get_logger("postroom.maildir")

WATCH_INTERVAL = 0.25
BATCH = 50


def ensure_maildir(root: Path) -> None:
    """Create ``root`` with ``new``, ``cur`` and ``tmp`` if missing."""
    for sub in ("new", "cur", "tmp"):
        (root / sub).mkdir(parents=True, exist_ok=True)


def _pending(new: Path) -> list[str]:
    """File names waiting in ``new/``, oldest (lowest name) first; dot files skipped."""
    with os.scandir(new) as entries:
        return sorted(e.name for e in entries if e.is_file() and not e.name.startswith("."))


def _base_name(name: str) -> str:
    """The unique part of a Maildir file name, without the ``:2,FLAGS`` info."""
    return name.split(":", 1)[0]


def _acknowledge(root: Path, name: str, outcome: Outcome, failure_folder: str) -> None:
    """Move a processed file out of ``new/``: to ``cur/`` (seen) or the failure folder."""
    source = root / "new" / name
    if outcome.failed:
        target_dir = root / f".{failure_folder}"
        ensure_maildir(target_dir)
        target = target_dir / "cur" / f"{_base_name(name)}:2,"
    else:
        target = root / "cur" / f"{_base_name(name)}:2,S"
    os.replace(source, target)


def _acknowledge_all(root: Path, done: list[tuple[str, Outcome]], failure_folder: str
                     ) -> None:
    for name, outcome in done:
        _acknowledge(root, name, outcome, failure_folder)


async def run_maildir_account(account: Account, *, submit: SubmitMany, handle: AccountHandle,
                              task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED
                              ) -> None:
    """Watch ``account.maildir`` forever; see the module docstring."""
    structlog.contextvars.bind_contextvars(account=account.id)
    assert account.maildir is not None  # auth = "maildir" requires it
    root = Path(account.maildir)
    status = handle.status
    status.set_state(AccountState.CONNECTING)
    await trio.to_thread.run_sync(ensure_maildir, root)
    task_status.started()
    while True:
        names = await trio.to_thread.run_sync(_pending, root / "new")
        if names:
            status.set_state(AccountState.SYNCING)
            for start in range(0, len(names), BATCH):
                await _import_batch(account, root, names[start:start + BATCH], submit,
                                    handle)
            status.synced()
        elif status.state is not AccountState.IDLE:
            status.synced()
            status.set_state(AccountState.IDLE)
            log.info("mailbox.idle", imported=status.imported, failed=status.failed)
        with trio.move_on_after(WATCH_INTERVAL):
            await handle.wakeups.receive()


def _read(root: Path, names: list[str], limit: int) -> list[tuple[str, bytes, int | None]]:
    """``(name, bytes, too_large)`` of each file still in ``new/``.

    A file larger than ``limit`` bytes is not read: its bytes are empty and
    ``too_large`` is its size. Another process may take a file meanwhile; it is skipped.
    """
    found: list[tuple[str, bytes, int | None]] = []
    for name in names:
        path = root / "new" / name
        try:
            size = path.stat().st_size
            raw = b"" if size > limit else _read_at_most(path, limit + 1)
        except FileNotFoundError:
            continue
        if len(raw) > limit:  # it grew after the stat: still never read past the limit
            size, raw = max(size, len(raw)), b""
        found.append((name, raw, size if size > limit else None))
    return found


def _read_at_most(path: Path, count: int) -> bytes:
    with path.open("rb") as file:
        return file.read(count)


async def _import_batch(account: Account, root: Path, names: list[str], submit: SubmitMany,
                        handle: AccountHandle) -> None:
    files = await trio.to_thread.run_sync(_read, root, names, account.max_message_bytes)
    if not files:
        return
    for name, _, too_large in files:
        if too_large is not None:
            log.warning("maildir.message.too_large", file=name, size=too_large,
                        limit=account.max_message_bytes)
    messages = [RawMessage(account=account.id, raw=raw, folder="new", too_large=too_large,
                           source_key=source_key("maildir", account.id, _base_name(name)))
                for name, raw, too_large in files]
    outcomes = await submit(messages)
    done = [(name, outcome) for (name, _, _), outcome in zip(files, outcomes, strict=True)]
    await trio.to_thread.run_sync(_acknowledge_all, root, done, account.failure_folder)
    for _, outcome in done:
        handle.status.count(outcome)
