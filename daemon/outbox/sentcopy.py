"""A copy of sent mail in the server's Sent folder, as mail clients keep one.

SMTP does not file what it sends, so after delivery the outbox actor APPENDs (RFC 3501
§6.3.11) each sent message, flagged ``\\Seen``, to the account's ``sent_folder`` over
IMAP, for accounts that have IMAP (``auth`` names an ``[[imap_connections]]`` entry) and
set ``sent_folder``. One IMAP session serves a whole batch.

The copy is best effort: it happens after the item is marked sent, and a failure is
logged and recorded as an event, never retried (retrying could only ever risk a second
*send*, which is worse than a missing copy). A folder that does not exist is created once.

:func:`found_in_sent` looks a Message-ID up in that folder: after a node died in the
at-least-once window, a server that files what it sends (or our copy, had it been made)
shows whether the message already went out.
"""

from __future__ import annotations

__all__ = ["append_sent", "found_in_sent", "wants_sent_copy"]

from collections.abc import Sequence
from functools import partial
from typing import Any

from daemon.config import ImapConnection
from daemon.errors import ProtocolError
from daemon.imap.connection import ImapSession, open_session
from daemon.imap.login import password_login


def wants_sent_copy(config: Any, account: Any) -> bool:
    """True when ``account`` has IMAP, a password and a ``sent_folder``."""
    if not account.sent_folder or account.password is None:
        return False
    try:
        return isinstance(config.connection_for(account), ImapConnection)
    except KeyError:
        return False


async def append_sent(config: Any, account: Any, messages: Sequence[bytes]) -> None:
    """APPEND ``messages`` to the account's ``sent_folder`` in one IMAP session.

    A checkpoint. Raises ConnectError, AuthError or ProtocolError (from
    :mod:`daemon.imap.errors`) when the copy could not be made.
    """
    if not messages:
        return
    connection = config.connection_for(account)
    login = password_login(account.login, account.password)
    async with open_session(connection, login, account=account.id) as session:
        for raw in messages:
            await _append(session, account.sent_folder, raw)


async def _append(session: ImapSession, folder: str, raw: bytes) -> None:
    client = session.client
    assert client is not None
    try:
        await session.call(client.append, folder, raw, (b"\\Seen",))
    except ProtocolError:
        if await session.call(client.folder_exists, folder):
            raise
        await session.call(client.create_folder, folder)
        await session.call(client.append, folder, raw, (b"\\Seen",))


async def found_in_sent(config: Any, account: Any, message_id: str) -> bool | None:
    """Whether the account's ``sent_folder`` holds a message with ``message_id``.

    A checkpoint. None when it cannot tell: no IMAP or no ``sent_folder``, the folder
    does not exist, or IMAP failed (the caller then sends again and records the risk).
    """
    if not wants_sent_copy(config, account):
        return None
    connection = config.connection_for(account)
    login = password_login(account.login, account.password)
    bare = message_id.strip().strip("<>")
    try:
        async with open_session(connection, login, account=account.id) as session:
            client = session.client
            assert client is not None
            if not await session.call(client.folder_exists, account.sent_folder):
                return None
            await session.call(partial(client.select_folder, readonly=True),
                               account.sent_folder)
            found = await session.call(client.search, ["HEADER", "Message-ID", bare])
    except Exception:
        return None
    return bool(found)
