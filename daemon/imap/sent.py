"""The Sent folder over IMAP: APPEND (RFC 3501 §6.3.11) each sent message, flagged ``\\Seen``.

SMTP does not file what it sends, so the outbox keeps a copy in the account's Sent folder
as mail clients do. :class:`ImapSentFolder` is the IMAP implementation of the outbox's
:class:`daemon.outbox.sentcopy.SentFolder`; one IMAP session serves a whole batch. A
folder that does not exist is created once, on the first APPEND it refuses.
"""

from __future__ import annotations

__all__ = ["ImapSentFolder", "open_sent_folder"]

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from functools import partial

from daemon.errors import ProtocolError
from daemon.imap.connection import ConnectionSettings, ImapSession, LoginMethod, open_session


class ImapSentFolder:
    """``folder`` of an open :class:`ImapSession`, for :meth:`append` and :meth:`holds`."""

    def __init__(self, session: ImapSession, folder: str) -> None:
        self.session = session
        self.folder = folder

    def __repr__(self) -> str:
        return f"<ImapSentFolder {self.folder!r}>"

    async def append(self, raw: bytes) -> None:
        """File ``raw``, flagged ``\\Seen``; create the folder when it is missing.

        A checkpoint. Raises ConnectError or ProtocolError (:mod:`daemon.imap.errors`).
        """
        session = self.session
        client = session.client
        assert client is not None
        try:
            await session.call(client.append, self.folder, raw, (b"\\Seen",))
        except ProtocolError:
            if await session.call(client.folder_exists, self.folder):
                raise
            await session.call(client.create_folder, self.folder)
            await session.call(client.append, self.folder, raw, (b"\\Seen",))

    async def holds(self, message_id: str) -> bool | None:
        """Whether the folder holds a message with ``message_id``; None when the folder
        does not exist. A checkpoint; raises as :meth:`append` does."""
        session = self.session
        client = session.client
        assert client is not None
        if not await session.call(client.folder_exists, self.folder):
            return None
        await session.call(partial(client.select_folder, readonly=True), self.folder)
        bare = message_id.strip().strip("<>")
        return bool(await session.call(client.search, ["HEADER", "Message-ID", bare]))


@asynccontextmanager
async def open_sent_folder(connection: ConnectionSettings, login: LoginMethod, *, account: str,
                           folder: str) -> AsyncIterator[ImapSentFolder]:
    """Log in with ``login`` over ``connection`` and yield ``folder`` for appending.

    Raises ConnectError, AuthError or ProtocolError when the session cannot be opened.
    """
    async with open_session(connection, login, account=account) as session:
        yield ImapSentFolder(session, folder)
