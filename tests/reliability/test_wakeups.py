"""Found by the store drill: mail that arrives during the round's last SEARCH waited for
the IDLE renewal (10 minutes by default) instead of being imported at once.

Dovecot announces a message that arrives while ``UID SEARCH UID *`` runs with
``* n EXISTS`` at the end of that SEARCH's response, after the search saw the old view,
and never again; the actor then went to IDLE and waited for news that had already come.
The test makes the race certain: the message is APPENDed from inside the SEARCH call.
"""

from __future__ import annotations

from functools import partial
from pathlib import Path

import pytest
import trio
from imapclient import IMAPClient

from daemon.actors.imap import run_imap_account
from daemon.actors.status import AccountHandle, AccountState, AccountStatus
from daemon.store import AsyncStore, open_store
from daemon.supervisor import RestartPolicy, supervise
from tests.actors.conftest import make_account, make_connection
from tests.fakes.dovecot import Dovecot, make_message
from tests.fakes.processor import FakeProcessor
from tests.helpers import wait_for_status

pytestmark = [pytest.mark.dovecot, pytest.mark.reliability]


async def test_issue_6_mail_arriving_during_the_last_search_is_imported_at_once(
        dovecot: Dovecot, tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    user = dovecot.add_user()
    sneaky: list[bytes] = []
    real_search = IMAPClient.search

    def search(client: IMAPClient, criteria: object = "ALL", charset: str | None = None
               ) -> list[int]:
        if criteria == ["UID", "*"] and sneaky:  # "what is the highest UID now?"
            dovecot.append(user, sneaky.pop())
        return real_search(client, criteria, charset)

    monkeypatch.setattr(IMAPClient, "search", search)
    account = make_account(user)
    handle = AccountHandle(AccountStatus(account=account.id, kind="imap"))
    async with AsyncStore(open_store(f"sqlite:///{tmp_path}/postroom.db")) as store:
        processor = FakeProcessor(store)
        run = partial(run_imap_account, account, make_connection(dovecot),
                      submit=processor.submit, store=store, handle=handle)
        async with trio.open_nursery() as nursery:
            await nursery.start(partial(supervise, run, handle, RestartPolicy()))
            with trio.fail_after(10):
                await wait_for_status(handle.status, lambda s: s.state is AccountState.IDLE)
            sneaky.append(make_message("Arrives during the SEARCH"))
            await trio.to_thread.run_sync(dovecot.append, user, make_message("Wakes it up"))
            with trio.fail_after(5):  # not idle_renew_seconds (600)
                await processor.wait_for(lambda done: len(done) == 2)
            nursery.cancel_scope.cancel()
    assert sneaky == []  # the race really was set up
    assert [c.message.raw.split(b"Subject: ")[1].split(b"\r\n")[0] for c in processor.committed] \
        == [b"Wakes it up", b"Arrives during the SEARCH"]
