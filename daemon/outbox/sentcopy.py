"""A copy of sent mail in the account's Sent folder, as mail clients keep one.

SMTP does not file what it sends, so after delivery the outbox actor files each sent
message in the account's ``sent_folder`` through a :class:`SentFolder`: one small
interface the IMAP transport implements (:class:`daemon.imap.sent.ImapSentFolder`,
APPEND flagged ``\\Seen``) and a Graph transport can implement the same way. Accounts
that have IMAP (``auth`` names an ``[[imap_connections]]`` entry) and set ``sent_folder``
keep copies; one session serves a whole batch.

The copy is best effort: it happens after the item is marked sent, and a failure is
logged and recorded as an event, never retried (retrying could only ever risk a second
*send*, which is worse than a missing copy). A folder that does not exist is created once.

:func:`found_in_sent` looks a Message-ID up in that folder: after a node died in the
at-least-once window, a server that files what it sends (or our copy, had it been made)
shows whether the message already went out.
"""

from __future__ import annotations

__all__ = ["SentFolder", "append_sent", "found_in_sent", "sent_folder_for",
           "wants_sent_copy"]

from collections.abc import Sequence
from contextlib import AbstractAsyncContextManager
from typing import Any, Protocol

from daemon.config import Account, Config, ImapConnection
from daemon.imap.login import password_login
from daemon.imap.sent import open_sent_folder


def wants_sent_copy(config: Config, account: Account) -> bool:
    """True when ``account`` has IMAP, a password and a ``sent_folder``."""
    if not account.sent_folder or account.password is None:
        return False
    try:
        return isinstance(config.connection_for(account), ImapConnection)
    except KeyError:
        return False


class SentFolder(Protocol):
    """One account's Sent folder, open for a batch of copies."""

    async def append(self, raw: bytes) -> None:
        """File ``raw`` (a sent message, as sent), flagged seen.

        A checkpoint. Raises ConnectError or ProtocolError when the copy was not made.
        """

    async def holds(self, message_id: str) -> bool | None:
        """Whether a message with ``message_id`` is filed there; None: no such folder."""


def sent_folder_for(config: Any, account: Any
                    ) -> AbstractAsyncContextManager[SentFolder] | None:
    """``async with`` it to get ``account``'s Sent folder; None when it keeps no copies."""
    if not wants_sent_copy(config, account):
        return None
    connection = config.connection_for(account)
    # What wants_sent_copy checked before the caller asked for the copy.
    assert isinstance(connection, ImapConnection)
    assert account.password is not None and account.sent_folder
    login = password_login(account.login, account.password)
    return open_sent_folder(connection, login, account=account.id, folder=account.sent_folder)


async def append_sent(config: Any, account: Any, messages: Sequence[bytes]) -> None:
    """File ``messages`` in the account's Sent folder, in one session.

    A checkpoint. Raises ConnectError, AuthError or ProtocolError when the copy could not
    be made; does nothing when the account keeps no copies.
    """
    opened = sent_folder_for(config, account) if messages else None
    if opened is None:
        return
    async with opened as folder:
        for raw in messages:
            await folder.append(raw)


async def found_in_sent(config: Config, account: Account, message_id: str) -> bool | None:
    """Whether the account's ``sent_folder`` holds a message with ``message_id``.

    A checkpoint. None when it cannot tell: no IMAP or no ``sent_folder``, the folder
    does not exist, or IMAP failed (the caller then sends again and records the risk).
    """
    opened = sent_folder_for(config, account)
    if opened is None:
        return None
    try:
        async with opened as folder:
            return await folder.holds(message_id)
    except Exception:
        return None
