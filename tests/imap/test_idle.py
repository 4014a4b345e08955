"""IDLE without a thread (daemon/imap/idle.py), against a byte-exact scripted server.

The scenarios are the ones a real server produces only by chance: the EXISTS arriving in
the same segment as the ``+ idling`` continuation (so it sits in imaplib's buffer and the
socket never becomes readable again), a literal inside an untagged response, keep-alives.
"""

from __future__ import annotations

from types import SimpleNamespace

import pytest
import trio
import trio.testing

from daemon.errors import ConnectError
from daemon.imap import idle as idle_module
from daemon.imap.connection import imap_limiter
from daemon.imap.idle import IdleEnd, _classify, idle_until_change
from tests.fakes.scripted_imap import ScriptedImap

HOUR = 3600.0

SCENARIOS = [
    # (name, idle_reply, after_idle)
    ("exists in the continuation's segment", b"+ idling\r\n* 3 EXISTS\r\n", []),
    ("keep-alives, then exists", b"+ idling\r\n",
     [b"* OK Still here\r\n", b"* 1 FETCH (FLAGS (\\Seen))\r\n", b"* 4 EXISTS\r\n"]),
    ("exists split across segments", b"+ idling\r\n* 5 EXI", [b"STS\r\n"]),
    ("a literal before the exists", b"+ idling\r\n",
     [b"* 1 FETCH (UID 9 BODY[HEADER.FIELDS (X)] {8}\r\nX: 1\r\n\r\n)\r\n* 2 EXISTS\r\n"]),
]


@pytest.mark.parametrize("tls", [False, True], ids=["plain", "tls"])
@pytest.mark.parametrize(("name", "reply", "after"), SCENARIOS, ids=[s[0] for s in SCENARIOS])
async def test_new_mail_ends_idle(scripted, server_tls, ca_file, tls, name, reply, after):
    server = ScriptedImap(idle_reply=reply, after_idle=after,
                          ssl_context=server_tls if tls else None)
    session = await scripted(server, imap_tls="implicit" if tls else "none",
                             ca_file=ca_file if tls else None)
    _, wakeups = trio.open_memory_channel(1)

    with trio.fail_after(5):
        end = await idle_until_change(session, renew_after=HOUR, wakeups=wakeups)

    assert end is IdleEnd.NEW_MAIL
    assert server.commands[-1] == b"DONE"
    assert session.in_idle is False


async def test_wakeup_ends_idle_and_holds_no_thread_while_waiting(scripted):
    server = ScriptedImap(idle_reply=b"+ idling\r\n")
    session = await scripted(server)
    send, wakeups = trio.open_memory_channel(1)
    idling = trio.Event()

    async def wake_when_idle() -> None:
        await idling.wait()
        await trio.testing.wait_all_tasks_blocked()
        assert imap_limiter().borrowed_tokens == 0
        await send.send(None)

    async with trio.open_nursery() as nursery:
        nursery.start_soon(wake_when_idle)
        with trio.fail_after(5):
            end = await idle_until_change(session, renew_after=HOUR, wakeups=wakeups,
                                          on_idle=idling.set)
    assert end is IdleEnd.WAKEUP
    assert server.commands[-1] == b"DONE"


@pytest.mark.parametrize(("lines", "new_mail"), [
    ([b"* OK Still here"], False),
    ([b"* 3 EXPUNGE", b"* 2 FETCH (FLAGS (\\Seen))", b"* 1 RECENT"], False),
    ([b"* OK Still here", b"* 7 EXISTS"], True),
    ([b"* 7 exists"], True),
])
def test_only_exists_counts_as_new_mail(lines, new_mail):
    session = SimpleNamespace(where="127.0.0.1:1", account="a")
    assert _classify(session, lines) is new_mail


def test_bye_line_raises_with_the_servers_words():
    session = SimpleNamespace(where="127.0.0.1:1", account="a")
    with pytest.raises(ConnectError, match=r"^127.0.0.1:1 closed the connection: BYE Bye now"):
        _classify(session, [b"* 3 EXISTS", b"* BYE Bye now"])


async def test_bye_raises_connect_error(scripted):
    server = ScriptedImap(idle_reply=b"+ idling\r\n* BYE Server shutting down.\r\n")
    session = await scripted(server)
    _, wakeups = trio.open_memory_channel(1)
    with trio.fail_after(5), pytest.raises(ConnectError, match="Server shutting down"):
        await idle_until_change(session, renew_after=HOUR, wakeups=wakeups)


async def test_quiet_idle_returns_for_renewal_after_exactly_renew_after(scripted,
                                                                         autojump_clock):
    server = ScriptedImap(idle_reply=b"+ idling\r\n")
    session = await scripted(server)
    _, wakeups = trio.open_memory_channel(1)
    idle_began = []

    end = await idle_until_change(session, renew_after=600, wakeups=wakeups,
                                  on_idle=lambda: idle_began.append(trio.current_time()))
    assert end is IdleEnd.RENEW
    assert trio.current_time() - idle_began[0] == 600
    assert server.commands[-2:] == [server.commands[-2], b"DONE"]
    assert server.commands[-2].endswith(b" IDLE")


async def test_without_a_peekable_buffer_idle_falls_back_to_a_worker_thread(scripted,
                                                                           monkeypatch):
    """(imapclient's own idle_check, like any poll, cannot see bytes already buffered, so
    the new mail is sent only once the client is waiting.)"""
    monkeypatch.setattr(idle_module, "_peekable", lambda session: False)
    monkeypatch.setattr(idle_module, "FALLBACK_SLICE", 0.05)
    release = trio.Event()
    server = ScriptedImap(idle_reply=b"+ idling\r\n", after_idle=[b"* 9 EXISTS\r\n"],
                          release_after_idle=release)
    session = await scripted(server)
    _, wakeups = trio.open_memory_channel(1)

    async def release_when_waiting() -> None:
        await trio.testing.wait_all_tasks_blocked()
        assert imap_limiter().borrowed_tokens == 1  # the fallback does hold a thread
        release.set()

    async with trio.open_nursery() as nursery:
        with trio.fail_after(5):
            end = await idle_until_change(
                session, renew_after=HOUR, wakeups=wakeups,
                on_idle=lambda: nursery.start_soon(release_when_waiting))
    assert end is IdleEnd.NEW_MAIL
