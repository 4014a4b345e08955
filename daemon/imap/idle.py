"""IMAP IDLE (RFC 2177) without a thread: wait for the socket from Trio, then read.

The problem: imapclient's ``idle_check(timeout)`` blocks a thread for as long as the server
is quiet. With 1,000 mailboxes that is 1,000 parked threads. Instead:

1. ``IDLE`` is sent from a worker thread (a quick round trip up to the ``+`` continuation).
2. The Trio task checks whether a response is already *buffered* in the client, and
   otherwise waits with :func:`trio.lowlevel.wait_readable` on the socket. No thread.
3. When bytes are there, a worker thread reads the complete response lines (blocking, under
   the socket's read timeout; the rest of a line arrives within a round trip).

Why step 2 checks buffers first: a socket is "readable" only for bytes still in the kernel.
Bytes already pulled into user space are invisible to ``wait_readable``, and they exist in
two places: imaplib's ``file`` (an :class:`io.BufferedReader` that reads 8 KiB at a time,
so ``+ idling`` and ``* 3 EXISTS`` sent together both land there), and, with TLS, the
``SSLObject``'s decrypted-but-unread record. :func:`_peek_nowait` looks at both at once: it
calls ``file.peek()`` with the socket briefly non-blocking. A non-empty buffer is returned
as is; an empty one triggers exactly one non-blocking read, which drains any pending TLS
plaintext or kernel bytes *into* the buffer (nothing is lost) or reports "would block".
A readable socket that yields only TLS housekeeping (a session ticket) reads as "would
block" and we simply wait again.

What wakes us: ``* n EXISTS`` (new mail; RFC 3501 §7.3.1) or a ``handle.wakeups`` item.
``* OK Still here`` keep-alives, EXPUNGE and flag FETCHes are read and ignored. ``* BYE``
(server shutting down) raises :class:`~daemon.errors.ConnectError`.

Renewal: IDLE is ended (DONE) after ``renew_after`` seconds, well inside the 29 minutes of
RFC 2177 §3 and NAT timeouts (default 10 minutes); the actor runs a sync round and issues
it again. Responses that arrive with the DONE's tagged reply are checked for EXISTS too.

Fallback: on a Python whose imaplib no longer exposes a ``BufferedReader`` (3.14 made
``file`` a property over its own buffer), the wait degrades to ``idle_check`` in a worker
thread, in slices of :data:`FALLBACK_SLICE` seconds, and logs ``imap.idle.thread_fallback``
once.

Cancellation: waiting is cancellable at any point. If cancelled while IDLE is active the
session stays ``in_idle`` and its owner closes it without LOGOUT.
"""

from __future__ import annotations

__all__ = ["FALLBACK_SLICE", "IdleEnd", "idle_until_change"]

import enum
import io
import re
import ssl
from collections.abc import Awaitable, Callable
from typing import Any

import structlog
import trio

from daemon.errors import ConnectError
from daemon.imap.connection import ImapSession

log = structlog.get_logger("postroom.imap")

#: Seconds per ``idle_check`` call in the thread fallback (bounds cancellation latency).
FALLBACK_SLICE = 5.0

_EXISTS = re.compile(rb"^\* \d+ EXISTS\b", re.IGNORECASE)
_BYE = re.compile(rb"^\* BYE\b", re.IGNORECASE)
_LITERAL = re.compile(rb"\{(\d+)\}$")
_fallback_logged = False


class IdleEnd(enum.Enum):
    """Why :func:`idle_until_change` returned."""

    NEW_MAIL = "new_mail"  # the server announced EXISTS
    WAKEUP = "wakeup"      # someone asked for a sync (handle.wakeups)
    RENEW = "renew"        # renew_after passed quietly; IDLE ended so it can be re-issued


async def idle_until_change(session: ImapSession, *, renew_after: float,
                            wakeups: trio.abc.ReceiveChannel[Any],
                            on_idle: Callable[[], None] | None = None) -> IdleEnd:
    """IDLE on the selected folder until new mail, a wake-up or ``renew_after`` seconds.

    The caller re-issues it (after a sync round, which is cheap and catches anything a
    server failed to announce) to keep IDLE going.

    Args:
        session: a session with the folder selected and the IDLE capability.
        renew_after: seconds before IDLE is ended so it can be renewed.
        wakeups: any item received means "sync now" (the item is consumed).
        on_idle: called once the server has accepted IDLE and the wait begins.

    Returns:
        Why it returned. IDLE has been ended (DONE sent, tagged OK read) by then.

    Raises:
        ConnectError: the server said BYE or the connection failed.
        ProtocolError: the server refused IDLE.

    A checkpoint; holds no worker thread while waiting.
    """
    await _start(session)
    if on_idle is not None:
        on_idle()
    end = IdleEnd.RENEW
    with trio.move_on_after(renew_after):
        winner = await _first(lambda: _wait_for_new_mail(session), wakeups.receive)
        end = IdleEnd.NEW_MAIL if winner == 0 else IdleEnd.WAKEUP
    responses = await _done(session)
    if end is IdleEnd.RENEW and any(_is_exists(r) for r in responses):
        end = IdleEnd.NEW_MAIL
    log.debug("imap.idle.wake" if end is not IdleEnd.RENEW else "imap.idle.renew",
              reason=end.value)
    return end


async def _start(session: ImapSession) -> None:
    assert session.client is not None
    await session.call(session.client.idle)
    session.in_idle = True


async def _done(session: ImapSession) -> list[Any]:
    """Send DONE, read up to the tagged OK; return the untagged responses seen meanwhile."""
    assert session.client is not None
    _text, responses = await session.call(session.client.idle_done)
    session.in_idle = False
    return list(responses)


def _is_exists(response: Any) -> bool:
    """For imapclient's parsed responses, e.g. ``(3, b'EXISTS')``."""
    return (isinstance(response, tuple) and len(response) >= 2
            and isinstance(response[1], bytes) and response[1].upper() == b"EXISTS")


async def _first(*waiters: Callable[[], Awaitable[Any]]) -> int:
    """Run the waiters concurrently; return the index of the first to finish.

    The others are cancelled. An exception from any waiter propagates as itself (not
    wrapped in an ExceptionGroup).
    """
    winner: list[int] = []
    errors: list[Exception] = []

    async def run(index: int, waiter: Callable[[], Awaitable[Any]],
                  scope: trio.CancelScope) -> None:
        try:
            await waiter()
        except Exception as exc:
            errors.append(exc)
        else:
            winner.append(index)
        scope.cancel()

    async with trio.open_nursery() as nursery:
        for index, waiter in enumerate(waiters):
            nursery.start_soon(run, index, waiter, nursery.cancel_scope)
    if errors:
        raise errors[0]
    return winner[0]


# -- waiting for the server ------------------------------------------------------------

async def _wait_for_new_mail(session: ImapSession) -> None:
    """Return once the server sent EXISTS; raise ConnectError on BYE or a dead link."""
    if not _peekable(session):
        await _wait_in_thread(session)
        return
    waited = False
    while True:
        peeked = _peek_nowait(session)
        if peeked is None or (peeked == b"" and not waited):
            await trio.lowlevel.wait_readable(session.socket())
            waited = True
            continue
        # Bytes are buffered, or the socket was readable yet gave nothing (EOF): either
        # way a blocking read settles it within the read timeout. Shielded: a renewal or
        # a wake-up arriving now must not abandon the connection half-way through a line.
        with trio.CancelScope(shield=True):
            lines = await session.call(_read_available_lines, session)
        waited = False
        if _classify(session, lines):
            return


def _peekable(session: ImapSession) -> bool:
    """Whether imaplib reads through a BufferedReader we can peek at (Python <= 3.13)."""
    assert session.client is not None
    return isinstance(getattr(session.client._imap, "file", None), io.BufferedReader)


def _classify(session: ImapSession, lines: list[bytes]) -> bool:
    """True if any line announces new mail; raise on BYE."""
    for line in lines:
        if _BYE.match(line):
            text = line[2:].decode("utf-8", "replace")
            raise ConnectError(f"{session.where} closed the connection: {text}",
                               account=session.account)
    return any(_EXISTS.match(line) for line in lines)


def _peek_nowait(session: ImapSession) -> bytes | None:
    """Bytes buffered for imaplib without blocking (see the module docstring).

    Returns:
        The buffered bytes; ``b""`` if nothing is buffered and the socket had nothing
        either (or is at EOF); None if a read would block (TLS wants more records).
    """
    assert session.client is not None
    reader: io.BufferedReader = session.client._imap.file
    sock = session.socket()
    sock.setblocking(False)
    try:
        return reader.peek(1)
    except (BlockingIOError, ssl.SSLWantReadError, ssl.SSLWantWriteError):
        return None
    except OSError:
        return b""  # let the blocking read raise the real (mapped) error
    finally:
        sock.settimeout(session.settings.read_timeout_seconds)


def _read_available_lines(session: ImapSession) -> list[bytes]:
    """In a worker thread: read one response, then any others already buffered."""
    assert session.client is not None  # IDLE runs on an open session
    imap = session.client._imap
    lines = [_read_response(imap)]
    while _peek_nowait(session):
        lines.append(_read_response(imap))
    return lines


def _read_response(imap: Any) -> bytes:
    """One untagged response line, with any literals it announces read and appended."""
    line: bytes = imap._get_line()
    while (literal := _LITERAL.search(line)) is not None:
        line = line + imap.read(int(literal.group(1))) + imap._get_line()
    return line


async def _wait_in_thread(session: ImapSession) -> None:
    """Fallback: imapclient's own ``idle_check`` in a worker thread, sliced."""
    global _fallback_logged
    if not _fallback_logged:
        _fallback_logged = True
        log.warning("imap.idle.thread_fallback",
                    reason="imaplib has no BufferedReader; IDLE holds a worker thread")
    assert session.client is not None
    while True:
        responses = await session.call(session.client.idle_check, FALLBACK_SLICE)
        for response in responses:
            if isinstance(response, tuple) and response and response[0] == b"BYE":
                raise ConnectError(f"{session.where} closed the connection",
                                   account=session.account)
        if any(_is_exists(r) for r in responses):
            return
