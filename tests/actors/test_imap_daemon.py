"""The whole daemon on an IMAP account against a real Dovecot, with the real processor.

The actor's own tests use a fake processor; this file checks the pieces together: a TOML
configuration, run_daemon, IDLE intake, threading, the failure folder.
"""

from __future__ import annotations

import textwrap

import trio

from daemon.actors.status import AccountState
from daemon.app import run_daemon
from daemon.config import load_config
from tests.fakes.dovecot import Dovecot, MailUser, make_message
from tests.helpers import wait_for_status, write_config


def imap_account(server: Dovecot, user: MailUser) -> str:
    """The ``accounts`` of :func:`tests.helpers.write_config`: ``support`` on ``server``."""
    return textwrap.dedent(f"""
        [[imap_connections]]
        id = "dovecot"
        imap_host = "{server.host}"
        imap_port = {server.imap_port}
        imap_tls = "none"
        smtp_host = "{server.host}"
        smtp_tls = "none"

        [[accounts]]
        id = "support"
        email = "{user.name}@example.com"
        auth = "dovecot"
        username = "{user.name}"
        password_env = "POSTROOM_TEST_IMAP_PASSWORD"
        backoff_cap_seconds = 1
        """)


async def test_imap_account_imports_threads_and_quarantines(dovecot: Dovecot, tmp_path,
                                                            monkeypatch):
    user = dovecot.add_user()
    monkeypatch.setenv("POSTROOM_TEST_IMAP_PASSWORD", user.password)
    dovecot.append(user, make_message("Old and read", message_id="<read@x>"),
                   flags=(b"\\Seen",))
    dovecot.append(user, make_message("Printer broken", message_id="<first@x>"))
    config = load_config(write_config(tmp_path, http=False, accounts=imap_account(dovecot, user),
                                      plugins=["tests.crm.test_pipeline:breaker"]))
    stop = trio.Event()
    async with trio.open_nursery() as nursery:
        daemon = await nursery.start(lambda task_status: run_daemon(
            config, stop=stop, handle_signals=False, task_status=task_status))
        status = daemon.handles["support"].status
        await wait_for_status(status, lambda s: s.state is AccountState.IDLE
                              and s.imported == 1, seconds=10)
        # While the actor IDLEs: a reply, and a message that breaks processing.
        await trio.to_thread.run_sync(dovecot.append, user, make_message(
            "Re: Printer broken", message_id="<second@x>",
            extra_headers="In-Reply-To: <first@x>\r\n"))
        await trio.to_thread.run_sync(dovecot.append, user, make_message(
            "BREAK ME", message_id="<poison@x>"))
        await wait_for_status(status, lambda s: s.imported + s.failed >= 3
                              and s.state is AccountState.IDLE,  # flags and moves done
                              seconds=10)
        messages = await daemon.store.run(lambda tx: tx.find("conversationmessage"))
        failed = await daemon.store.run(lambda tx: tx.list_raw(status="failed"))
        stop.set()

    assert sorted(m.get("emailid") for m in messages) == ["first@x", "second@x"]
    assert len({m.get("conversation") for m in messages}) == 1
    (poison,) = failed
    assert b"BREAK ME" in poison.raw
    inbox = dovecot.messages(user)
    quarantine = dovecot.messages(user, "postroom-failed")
    assert [b"BREAK ME" in raw for _, raw in quarantine.values()] == [True]
    assert all(b"\\Seen" in flags for flags, _ in inbox.values())
    assert not any(b"BREAK ME" in raw for _, raw in inbox.values())
