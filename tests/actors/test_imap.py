"""The IMAP mailbox actor against a real Dovecot (tests/fakes/dovecot.py).

Every wait is on an event (a commit in the fake processor, a status change), bounded by
``trio.fail_after``; nothing sleeps to let things happen.
"""

from __future__ import annotations

from datetime import UTC, date, datetime

import pytest
import trio
import trustme
from structlog.testing import capture_logs

from daemon.actors.imap import run_imap_account
from daemon.actors.status import AccountHandle, AccountState, AccountStatus
from daemon.config import Secret
from daemon.errors import ConnectError
from daemon.imap import folder as folder_module
from daemon.imap import idle as idle_module
from daemon.imap.connection import imap_limiter, open_session
from daemon.imap.login import password_login
from daemon.messages import OutcomeStatus
from tests.actors.conftest import make_account, make_connection, wait_for_state
from tests.fakes.dovecot import Dovecot, make_message
from tests.fakes.processor import POISON, FakeProcessor
from tests.helpers import wait_for_status

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


async def test_idle_is_renewed_and_still_delivers(dovecot, imap_connection, start_account,
                                                  processor: FakeProcessor, monkeypatch):
    renewed = trio.Event()

    class Spy:
        def debug(self, event: str, **fields) -> None:
            if event == "imap.idle.renew":
                renewed.set()

        info = warning = error = debug

    monkeypatch.setattr(idle_module, "log", Spy())
    user = dovecot.add_user()
    handle = await start_account(make_account(user, idle_renew_seconds=0.05), imap_connection)
    with trio.fail_after(10):
        await wait_for_state(handle.status, AccountState.IDLE)
        first_round = handle.status.last_sync
        await renewed.wait()
        await wait_for_status(handle.status, lambda s: s.last_sync != first_round)
        await wait_for_state(handle.status, AccountState.IDLE)  # IDLE issued again
    raw = make_message("After renewal")
    await append(dovecot, user, raw)
    with trio.fail_after(1):
        await processor.wait_for_message(mid(raw))


async def test_polling_when_idle_is_disabled_syncs_on_wakeup(
        dovecot, imap_connection, start_account, processor: FakeProcessor):
    user = dovecot.add_user()
    handle = await start_account(make_account(user, idle=False, poll_interval_seconds=3600),
                                 imap_connection)
    with trio.fail_after(10):
        await wait_for_state(handle.status, AccountState.IDLE)
    assert handle.status.extra["idle"] is False
    raw = make_message("Polled")
    await append(dovecot, user, raw)
    handle.wake()
    with trio.fail_after(2):
        committed = await processor.wait_for_message(mid(raw))
    assert committed.outcome.status is OutcomeStatus.IMPORTED


# -- what gets imported, and in which order ------------------------------------------------

async def test_first_enable_imports_unread_mail_since_import_since(
        dovecot, imap_connection, start_account, processor: FakeProcessor):
    user = dovecot.add_user()
    old_unread = make_message("Old and unread")
    seen = make_message("Already read")
    fresh = make_message("New and unread")
    await append(dovecot, user, old_unread, when=datetime(2020, 5, 1, tzinfo=UTC))
    await append(dovecot, user, seen, flags=(SEEN,))
    await append(dovecot, user, fresh)

    account = make_account(user, import_since=date(2024, 1, 1))
    handle = await start_account(account, imap_connection)
    with trio.fail_after(5):
        await caught_up(handle, 1)
    later = make_message("Arrived after enabling, read elsewhere first")
    await append(dovecot, user, later, flags=(SEEN,))
    with trio.fail_after(2):
        await processor.wait_for_message(mid(later))

    assert [c.message_id for c in processor.committed] == [mid(fresh), mid(later)]
    on_server = {mid(raw): flags for flags, raw in (await messages(dovecot, user)).values()}
    assert SEEN not in on_server[mid(old_unread)]  # left alone


async def test_backlog_is_fetched_in_bounded_ascending_batches(
        dovecot, imap_connection, start_account, processor: FakeProcessor, store,
        monkeypatch):
    monkeypatch.setattr(folder_module, "SEARCH_WINDOW", 7)
    monkeypatch.setattr(folder_module, "META_BATCH", 3)
    monkeypatch.setattr(folder_module, "DOWNLOAD_BUDGET", 1500)
    user = dovecot.add_user()
    backlog = [make_message(f"Backlog {i}") for i in range(20)]
    for i, raw in enumerate(backlog):
        await append(dovecot, user, raw, flags=(SEEN,) if i % 5 == 0 else ())

    account = make_account(user)
    handle = await start_account(account, imap_connection)
    unread = [raw for i, raw in enumerate(backlog) if i % 5 != 0]
    with trio.fail_after(10):
        await caught_up(handle, len(unread))

    assert [c.message_id for c in processor.committed] == [mid(raw) for raw in unread]
    uids = [int(c.message.source_key.rsplit(":", 1)[1]) for c in processor.committed]
    assert uids == sorted(uids)
    last_uid = await store.run(lambda tx: tx.get_checkpoint(account.id, "imap:INBOX:last_uid"))
    assert last_uid == "20"
    assert all(SEEN in flags for flags, _ in (await messages(dovecot, user)).values())


# -- failures ------------------------------------------------------------------------------

async def test_failing_message_moves_to_failure_folder_and_next_is_processed(
        dovecot, imap_connection, start_account, processor: FakeProcessor, store):
    user = dovecot.add_user()
    poisoned = make_message("Poison", extra_headers=POISON.decode() + "\r\n")
    healthy = make_message("Healthy")
    await append(dovecot, user, poisoned)
    await append(dovecot, user, healthy)

    account = make_account(user)
    handle = await start_account(account, imap_connection)
    with trio.fail_after(5):
        await caught_up(handle, 2)

    assert processor.statuses() == [OutcomeStatus.FAILED, OutcomeStatus.IMPORTED]
    record = await store.run(lambda tx: tx.get_raw(processor.committed[0].message.source_key))
    assert record.status == "failed" and record.raw == poisoned and record.error
    inbox = list((await messages(dovecot, user)).values())
    assert [(mid(raw), SEEN in flags) for flags, raw in inbox] == [(mid(healthy), True)]
    failed = list((await messages(dovecot, user, "postroom-failed")).values())
    assert [raw for _, raw in failed] == [poisoned]
    assert handle.status.failed == 1 and handle.status.imported == 1


async def test_too_large_message_is_recorded_and_moved_without_download(
        dovecot, imap_connection, start_account, processor: FakeProcessor, store):
    user = dovecot.add_user()
    big = make_message("Huge attachment", size=20_000)
    small = make_message("Small")
    await append(dovecot, user, big)
    await append(dovecot, user, small)

    account = make_account(user, max_message_bytes=5_000, failure_folder="Too big")
    handle = await start_account(account, imap_connection)
    with trio.fail_after(5):
        await caught_up(handle, 2)

    first = processor.committed[0].message
    assert first.raw == b"" and first.too_large == len(big)
    record = await store.run(lambda tx: tx.get_raw(first.source_key))
    assert record.status == "failed" and "too large" in record.error
    moved = [raw for _, raw in (await messages(dovecot, user, "Too big")).values()]
    assert moved == [big]
    assert [mid(raw) for _, raw in (await messages(dovecot, user)).values()] == [mid(small)]


async def test_wrong_password_parks_in_auth_error_and_other_account_keeps_working(
        dovecot, imap_connection, start_account, processor: FakeProcessor):
    good, bad = dovecot.add_user(), dovecot.add_user()
    wrong = "not-the-password-" + bad.password
    with capture_logs() as logs:
        bad_handle = await start_account(make_account(bad, password=Secret(wrong)),
                                         imap_connection)
        good_handle = await start_account(make_account(good), imap_connection)
        with trio.fail_after(10):
            await wait_for_state(bad_handle.status, AccountState.AUTH_ERROR)
            await wait_for_state(good_handle.status, AccountState.IDLE)
        raw = make_message("Still flowing")
        await append(dovecot, good, raw)
        with trio.fail_after(2):
            await processor.wait_for_message(mid(raw))

    error = bad_handle.status.last_error
    assert "AuthError" in error and "AUTHENTICATIONFAILED" in error
    assert f"127.0.0.1:{dovecot.imap_port}" in error
    assert wrong not in repr(logs) and wrong not in error


# -- reconnecting --------------------------------------------------------------------------

async def test_dovecot_restart_reconnects_and_catches_up(
        own_dovecot, start_account, processor: FakeProcessor):
    server = own_dovecot
    user = server.add_user()
    handle = await start_account(make_account(user), make_connection(server))
    with trio.fail_after(10):
        await wait_for_state(handle.status, AccountState.IDLE)

    await trio.to_thread.run_sync(server.stop)
    raw = make_message("Delivered while the server was down")
    await trio.to_thread.run_sync(server.deliver_to_maildir, user, raw)
    await trio.to_thread.run_sync(server.start)

    with trio.fail_after(10):
        committed = await processor.wait_for_message(mid(raw))
    assert committed.outcome.status is OutcomeStatus.IMPORTED
    assert handle.status.reconnects >= 1


async def test_new_uidvalidity_resyncs_without_duplicates(
        dovecot, imap_connection, start_account, processor: FakeProcessor, store):
    user = dovecot.add_user()
    first = make_message("Before the mailbox was recreated")
    await append(dovecot, user, first, "Support")
    old_validity = await trio.to_thread.run_sync(dovecot.uidvalidity, user, "Support")
    account = make_account(user, folder="Support")
    handle = await start_account(account, imap_connection)
    with trio.fail_after(5):
        await caught_up(handle, 1)

    await trio.to_thread.run_sync(dovecot.delete_folder, user, "Support")
    await append(dovecot, user, first, "Support")  # restored from a backup, unread again
    second = make_message("After the mailbox was recreated")
    await append(dovecot, user, second, "Support")
    new_validity = await trio.to_thread.run_sync(dovecot.uidvalidity, user, "Support")
    assert new_validity != old_validity
    # Dovecot may not tell a live session its folder was replaced; the next round (at the
    # IDLE renewal, or now, as "Sync emails" asks) SELECTs afresh and sees it.
    handle.wake()

    with trio.fail_after(10):
        await processor.wait_for_message(mid(second))
        await caught_up(handle, 3)
    assert [(c.message_id, c.outcome.status) for c in processor.committed] == [
        (mid(first), OutcomeStatus.IMPORTED),
        (mid(first), OutcomeStatus.DUPLICATE),
        (mid(second), OutcomeStatus.IMPORTED)]
    imported = await store.run(lambda tx: tx.list_raw(account=account.id, status="imported"))
    assert len(imported) == 2
    stored = await store.run(lambda tx: tx.get_checkpoint(account.id, "imap:Support:uidvalidity"))
    assert stored == str(new_validity)
    assert all(SEEN in flags for flags, _ in (await messages(dovecot, user, "Support")).values())


async def test_repeated_uidvalidity_changes_park_the_account_until_woken(
        dovecot, imap_connection, start_account, processor: FakeProcessor, store):
    user = dovecot.add_user()
    account = make_account(user)

    def pretend_many_resyncs(tx) -> None:
        tx.set_checkpoint(account.id, "imap:INBOX:uidvalidity", "1")
        tx.set_checkpoint(account.id, "imap:INBOX:resyncs",
                          str(folder_module.MAX_CONSECUTIVE_RESYNCS))

    await store.run(pretend_many_resyncs)
    raw = make_message("Waiting for a human")
    await append(dovecot, user, raw)
    handle = await start_account(account, imap_connection)
    with trio.fail_after(5):
        await wait_for_state(handle.status, AccountState.DISABLED)
    assert "UIDVALIDITY of INBOX changed" in handle.status.last_error
    assert processor.committed == []

    handle.wake()
    with trio.fail_after(5):
        await processor.wait_for_message(mid(raw))
    resyncs = await store.run(lambda tx: tx.get_checkpoint(account.id, "imap:INBOX:resyncs"))
    assert resyncs == "1"


# -- TLS -----------------------------------------------------------------------------------

@pytest.mark.parametrize("tls", ["implicit", "starttls"])
async def test_tls_with_private_ca(dovecot, start_account, processor: FakeProcessor, tls):
    user = dovecot.add_user()
    raw = make_message(f"Over {tls}")
    await append(dovecot, user, raw)
    handle = await start_account(make_account(user), make_connection(dovecot, tls))
    with trio.fail_after(5):
        await processor.wait_for_message(mid(raw))
        await caught_up(handle, 1)


@pytest.mark.parametrize("tls", ["implicit", "starttls"])
async def test_wrong_ca_is_refused_with_a_clear_error(dovecot, store, tmp_path, tls):
    user = dovecot.add_user()
    other_ca = tmp_path / "other-ca.pem"
    trustme.CA().cert_pem.write_to_path(other_ca)
    connection = make_connection(dovecot, tls, ca_file=other_ca)
    handle = AccountHandle(AccountStatus(account="wrong-ca", kind="imap"))

    with pytest.raises(ConnectError) as caught:
        await run_imap_account(make_account(user), connection, submit=_never,
                               store=store, handle=handle)
    assert str(caught.value).startswith(
        f"certificate verify failed for 127.0.0.1:{connection.imap_port}: ")


async def _never(message):
    raise AssertionError("nothing may be submitted")


# -- progress: the folder reports by callback, the actor turns it into status -----------

async def test_folder_sync_reports_progress_by_callback(dovecot, imap_connection, store,
                                                        processor: FakeProcessor):
    user = dovecot.add_user()
    account = make_account(user)
    raws = [make_message(f"Progress {n}") for n in range(2)]
    uids = [await append(dovecot, user, raw) for raw in raws]
    reports: list[folder_module.SyncProgress] = []
    login = password_login(account.login, account.password)
    async with open_session(imap_connection, login, account=account.id) as session:
        sync = folder_module.FolderSync(session, account, store=store,
                                        submit=processor.submit, on_progress=reports.append)
        assert await sync.sync() == 2
    uidvalidity = sync.state.uidvalidity
    assert uidvalidity is not None
    assert reports[0] == folder_module.SyncProgress("INBOX", uidvalidity, 0)  # the SELECT
    committed = [r for r in reports if r.outcome is not None]
    assert [(r.last_uid, r.outcome.status) for r in committed] == [
        (uid, OutcomeStatus.IMPORTED) for uid in uids]
    assert reports[-1].last_uid == uids[-1] and reports[-1].outcome is None  # settled


async def test_the_actor_shows_the_folders_progress_in_its_status(
        dovecot, imap_connection, start_account, processor: FakeProcessor):
    user = dovecot.add_user()
    uid = await append(dovecot, user, make_message("Shown in status"))
    handle = await start_account(make_account(user), imap_connection)
    with trio.fail_after(10):
        await caught_up(handle, 1)
    shown = handle.status.as_json()
    assert shown["counts"]["imported"] == 1
    assert shown["folder"] == "INBOX" and shown["last_uid"] == uid
    assert isinstance(shown["uidvalidity"], int)
