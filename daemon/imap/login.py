"""How an IMAP session authenticates: the pluggable step between TLS and SELECT.

A :class:`~daemon.imap.connection.LoginMethod` (defined next to the session that calls
it) is an async callable given the connected (not yet authenticated)
:class:`~daemon.imap.connection.ImapSession`. It is async so that a method needing a fresh
credential first (XOAUTH2: an access token from msal, fetched in its own thread under its
own lock) can await it, then run the blocking step through ``session.call``.

:func:`password_login` is IMAP LOGIN (RFC 3501 §6.2.3). An XOAUTH2 method would look like::

    def xoauth2_login(username: str, tokens: TokenProvider) -> LoginMethod:
        async def login(session: ImapSession) -> None:
            token = await tokens.access_token(scopes=IMAP_SCOPES)
            await session.call(session.client.oauth2_login, username, token.reveal(),
                               chain=False)
        return login

Passwords: the secret is revealed inside the worker thread only, and the login call runs
with ``chain=False`` so a refused or failed login raises an error without the library's
traceback (whose frames hold the password) attached.
"""

from __future__ import annotations

__all__ = ["password_login"]

from imapclient import IMAPClient

from daemon.config import Secret
from daemon.imap.connection import ImapSession, LoginMethod


def password_login(username: str, password: Secret) -> LoginMethod:
    """IMAP LOGIN with a username and password.

    Args:
        username: the login name (often the email address).
        password: the password; revealed only in the worker thread that sends it.

    Returns:
        A :class:`LoginMethod`. Awaiting it is a checkpoint; it raises ``AuthError`` with
        the server's reason (``[AUTHENTICATIONFAILED] ...``) when refused.
    """
    async def login(session: ImapSession) -> None:
        assert session.client is not None
        await session.call(_login, session.client, username, password, chain=False)

    return login


def _login(client: IMAPClient, username: str, password: Secret) -> None:
    client.login(username, password.reveal())
