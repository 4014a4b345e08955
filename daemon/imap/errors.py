"""The one place where imapclient, imaplib, ssl and socket errors become postroom errors.

Every blocking IMAP call runs through :meth:`daemon.imap.connection.ImapSession.call`, which
wraps it in :func:`map_errors`. Nothing above this layer catches a library exception, and
the supervisor decides by the resulting class only (:mod:`daemon.errors`)::

    library error                        postroom error
    imapclient LoginError (NO to LOGIN)  -> AuthError     "login refused by h:p: <why>"
    ssl.SSLCertVerificationError         -> ConnectError  "certificate verify failed for h:p: <why>"
    ssl.SSLError (handshake, bad record) -> ConnectError  "TLS failed with h:p: <why>"
    TimeoutError (socket.timeout)        -> ConnectError  "timed out talking to h:p"
    ConnectionRefusedError               -> ConnectError  "connection refused by h:p"
    other OSError (reset, unreachable)   -> ConnectError  "connection to h:p failed: <why>"
    imaplib abort (EOF, BYE, garbage)    -> ConnectError  "connection to h:p lost: <why>"
    other imaplib error (NO, BAD)        -> ProtocolError "h:p: <server's words>"

The first matching row wins (most specific first). Messages carry the host, port and the
server's own words, never a password: a LOGIN command never appears in an imaplib error,
and the LOGIN path in :mod:`daemon.imap.login` additionally drops the exception chain so
no traceback frame holding the password can reach a log renderer that shows locals.
"""

from __future__ import annotations

__all__ = ["map_errors", "translate"]

import imaplib
import re
import ssl
from collections.abc import Iterator
from contextlib import contextmanager

from imapclient import exceptions as imap_exc

from daemon.errors import AuthError, ConnectError, PostroomError, ProtocolError, translated

_BYTES_REPR = re.compile(r"b'(.*)'", re.DOTALL)


def _text(exc: BaseException) -> str:
    """The exception's message; imaplib often carries bytes, shown without ``b'...'``."""
    if exc.args and isinstance(exc.args[0], bytes):
        return exc.args[0].decode("utf-8", "replace")
    text = str(exc) or type(exc).__name__
    quoted = _BYTES_REPR.fullmatch(text)  # imapclient's LoginError wraps str(bytes)
    return quoted.group(1) if quoted else text


def _ssl_reason(exc: ssl.SSLError) -> str:
    return getattr(exc, "reason", None) or _text(exc)


def translate(exc: BaseException, where: str, account: str | None = None,
              ) -> PostroomError | None:
    """The postroom error for a library exception, or None if it is not one of ours to map.

    Args:
        exc: what imapclient, imaplib, ssl or socket raised.
        where: ``host:port``, named in every message.
        account: the account id, attached to the error.

    Returns:
        A new, unraised error (see the table in the module docstring), or None for
        anything else (a bug should surface as itself).
    """
    if isinstance(exc, imap_exc.LoginError):
        return AuthError(f"login refused by {where}: {_text(exc)}", account=account)
    if isinstance(exc, ssl.SSLCertVerificationError):
        reason = getattr(exc, "verify_message", None) or _ssl_reason(exc)
        return ConnectError(f"certificate verify failed for {where}: {reason}", account=account)
    if isinstance(exc, ssl.SSLError):
        return ConnectError(f"TLS failed with {where}: {_ssl_reason(exc)}", account=account)
    if isinstance(exc, TimeoutError):  # socket.timeout is an alias
        return ConnectError(f"timed out talking to {where}", account=account)
    if isinstance(exc, ConnectionRefusedError):
        return ConnectError(f"connection refused by {where}", account=account)
    if isinstance(exc, OSError):
        return ConnectError(f"connection to {where} failed: {exc.strerror or _text(exc)}",
                            account=account)
    if isinstance(exc, imaplib.IMAP4.abort):
        return ConnectError(f"connection to {where} lost: {_text(exc)}", account=account)
    if isinstance(exc, imaplib.IMAP4.error):
        return ProtocolError(f"{where}: {_text(exc)}", account=account)
    return None


@contextmanager
def map_errors(where: str, account: str | None = None, *, chain: bool = True,
               ) -> Iterator[None]:
    """Translate library exceptions raised inside the block (see the module docstring).

    Args:
        where: ``host:port`` for the messages.
        account: the account id attached to the error.
        chain: ``raise ... from exc`` (the default, keeps the cause for debugging). The
            login step passes False: the cause's traceback holds the password in a frame.

    Raises:
        AuthError, ConnectError, ProtocolError: as mapped. Anything unmapped (including
        postroom errors raised inside the block) passes through unchanged.
    """
    with translated(lambda exc: translate(exc, where, account), chain=chain):
        yield
