"""The IMAP mailbox actor against a real Dovecot (tests/fakes/dovecot.py).

Every wait is on an event (a commit in the fake processor, a status change), bounded by
``trio.fail_after``; nothing sleeps to let things happen.
"""

from __future__ import annotations

from datetime import UTC, date, datetime

import pytest
import trio

from daemon.actors.imap import run_imap_account
from daemon.actors.status import AccountHandle, AccountState, AccountStatus
from daemon.errors import AuthError, ConfigError, ConnectError
from daemon.imap import folder as folder_module
from daemon.imap.connection import imap_limiter
from daemon.messages import OutcomeStatus
from daemon.secrets import Secret
from tests.actors.conftest import (
    make_account,
    make_connection,
    wait_for_state,
    wait_for_status,
)
from tests.fakes.dovecot import Dovecot, make_message
from tests.fakes.processor import POISON, FakeProcessor

pytestmark = pytest.mark.dovecot

SEEN = b"\\Seen"


async def append(server: Dovecot, user, raw: bytes, folder: str = "INBOX", **kw) -> int:
    return await trio.to_thread.run_sync(lambda: server.append(user, raw, folder, **kw))


async def messages(server: Dovecot, user, folder: str = "INBOX"):
    return await trio.to_thread.run_sync(server.messages, user, folder)


def mid(raw: bytes) -> str:
    return raw.split(b"Message-ID: ", 1)[1].split(b"\r\n", 1)[0].decode()


async def caught_up(handle: AccountHandle, count: int) -> None:
    """Wait until ``count`` messages are counted and the actor is idle again (flags set)."""
    def done(s: AccountStatus) -> bool:
        total = s.imported + s.duplicates + s.discarded + s.failed
        return total >= count and s.state is AccountState.IDLE
    await wait_for_status(handle.status, done)


# -- new mail while idling ---------------------------------------------------------------

async def test_message_appended_during_idle_is_stored_within_a_second(
        dovecot, imap_connection, start_account, processor: FakeProcessor):
    user = dovecot.add_user()
    handle = await start_account(make_account(user), imap_connection)
    with trio.fail_after(10):
        await wait_for_state(handle.status, AccountState.IDLE)
    assert handle.status.extra["idle"] is True
    assert imap_limiter().borrowed_tokens == 0  # idling holds no worker thread

    raw = make_message("Printer on fire")
    await append(dovecot, user, raw)
    with trio.fail_after(1):
        committed = await processor.wait_for_message(mid(raw))

    assert committed.outcome.status is OutcomeStatus.IMPORTED
    assert committed.message.raw == raw
    with trio.fail_after(5):
        await caught_up(handle, 1)
    [(flags, _)] = (await messages(dovecot, user)).values()
    assert SEEN in flags


async def test_many_idle_mailboxes_hold_no_threads(dovecot, imap_connection, start_account,
                                                   processor: FakeProcessor):
    users = [dovecot.add_user() for _ in range(25)]
    handles = [await start_account(make_account(u), imap_connection) for u in users]
    with trio.fail_after(20):
        for handle in handles:
            await wait_for_state(handle.status, AccountState.IDLE)
    assert imap_limiter().borrowed_tokens == 0

    raw = make_message("To the last one")
    await append(dovecot, users[-1], raw)
    with trio.fail_after(2):
        await processor.wait_for_message(mid(raw))
