"""How an IMAP session authenticates: the pluggable step between TLS and SELECT.

A :class:`~daemon.imap.connection.LoginMethod` (defined next to the session that calls
it) is an async callable given the connected (not yet authenticated)
:class:`~daemon.imap.connection.ImapSession`. It is async so that a method needing a fresh
credential first (XOAUTH2: an access token from msal, fetched in its own thread under its
own lock) can await it, then run the blocking step through ``session.call``.

:func:`password_login` is IMAP LOGIN (RFC 3501 §6.2.3). :func:`xoauth2_login` is
``AUTHENTICATE XOAUTH2`` (Google's and Microsoft's SASL mechanism:
``base64("user=" U "\x01auth=Bearer " T "\x01\x01")``) through imapclient's
``oauth2_login``, with a token fetched first from a :data:`TokenSource` (the OAuth
manager: from memory, or refreshed in its own thread under the account's lock).

Passwords: the secret is revealed inside the worker thread only, and the login call runs
with ``chain=False`` so a refused or failed login raises an error without the library's
traceback (whose frames hold the password) attached.
"""

from __future__ import annotations

__all__ = ["TokenSource", "password_login", "xoauth2_login"]

from collections.abc import Awaitable, Callable

from imapclient import IMAPClient

from daemon.config import Secret
from daemon.errors import AuthError
from daemon.imap.connection import ImapSession, LoginMethod

#: ``await tokens(force_refresh=False)``: a valid access token as a Secret.
TokenSource = Callable[..., Awaitable[Secret]]


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


def xoauth2_login(username: str, tokens: TokenSource) -> LoginMethod:
    """IMAP ``AUTHENTICATE XOAUTH2`` as ``username`` with a token from ``tokens``.

    A refused token (revoked or expired at the server before its announced expiry) is
    refreshed once and tried again; a second refusal raises.

    Args:
        username: the mailbox to open (for a shared mailbox: its address, with the
            delegated user's token).
        tokens: where access tokens come from.

    Returns:
        A :class:`LoginMethod`; awaiting it is a checkpoint. Raises ``AuthError`` with the
        server's reason, or what ``tokens`` raises (``ReauthenticationRequired``,
        ``OAuthAppFailing``, a transient ``ProviderUnavailable``).
    """
    async def login(session: ImapSession) -> None:
        assert session.client is not None
        token = await tokens()
        try:
            await session.call(_oauth2_login, session.client, username, token, chain=False)
        except AuthError:
            token = await tokens(force_refresh=True)
            await session.call(_oauth2_login, session.client, username, token, chain=False)

    return login


def _oauth2_login(client: IMAPClient, username: str, token: Secret) -> None:
    client.oauth2_login(username, token.reveal())
