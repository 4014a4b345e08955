"""A copy of sent mail in the server's Sent folder, as mail clients keep one.

SMTP does not file what it sends, so after delivery the outbox actor APPENDs (RFC 3501
§6.3.11) each sent message, flagged ``\\Seen``, to the account's ``sent_folder`` over
IMAP, for accounts that have IMAP (``auth`` names an ``[[imap_connections]]`` entry) and
set ``sent_folder``. One IMAP session serves a whole batch.

The copy is best effort: it happens after the item is marked sent, and a failure is
logged and recorded as an event, never retried (retrying could only ever risk a second
*send*, which is worse than a missing copy). A folder that does not exist is created once.
"""

from __future__ import annotations

__all__ = ["append_sent", "wants_sent_copy"]

from collections.abc import Sequence

from daemon.config import Account, Config, ImapConnection
from daemon.errors import ProtocolError
from daemon.imap.connection import ImapSession, open_session
from daemon.imap.login import password_login


def wants_sent_copy(config: Config, account: Account) -> bool:
    """True when ``account`` has IMAP, a password and a ``sent_folder``."""
    if not account.sent_folder or account.password is None:
        return False
    try:
        return isinstance(config.connection_for(account), ImapConnection)
    except KeyError:
        return False


async def append_sent(config: Config, account: Account, messages: Sequence[bytes]) -> None:
    """APPEND ``messages`` to the account's ``sent_folder`` in one IMAP session.

    A checkpoint. Raises ConnectError, AuthError or ProtocolError (from
    :mod:`daemon.imap.errors`) when the copy could not be made.
    """
    if not messages:
        return
    connection = config.connection_for(account)
    # What wants_sent_copy checked before the caller asked for the copy.
    assert isinstance(connection, ImapConnection)
    assert account.password is not None and account.sent_folder
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
