"""SMTP delivery from Trio: smtplib in worker threads, errors mapped at one boundary.

smtplib is blocking (and aiosmtplib does not run on Trio), so an :class:`SmtpSession`
runs every step in a worker thread (``trio.to_thread.run_sync``), one at a time, under a
shared :class:`trio.CapacityLimiter` (:func:`smtp_limiter`). A session connects on first
use and is reused for the next message of the same batch; after any error it is closed
and the next message connects afresh.

TLS (RFC 8314 prefers implicit TLS; RFC 3207 defines STARTTLS):

* ``implicit``: TLS from the first byte (port 465);
* ``starttls``: EHLO, STARTTLS, EHLO again; a server that does not offer STARTTLS is
  refused, so credentials and mail never travel in plain text by accident;
* ``none``: plain text, accepted only towards a loopback host.

Certificates are checked against the system store, or ``ca_file`` when set.
Authentication (RFC 4954) uses smtplib's ``login``: PLAIN (RFC 4616) or LOGIN, whichever
the server offers, only when the account has a password. OAuth accounts use ``AUTH
XOAUTH2`` (``base64("user=" U "\x01auth=Bearer " T "\x01\x01")`` as the initial
response); a server refusing the token first sends a base64 JSON error challenge, which
is answered with an empty line so that it finishes with its 535. The token is fetched
in Trio (from the OAuth manager) before the worker thread connects; a refused token is
refreshed once and the login tried again on a new connection.

One message is one SMTP transaction: ``MAIL FROM`` (with ``SIZE=`` when the server
supports RFC 1870, so an oversize message is refused before its bytes travel),
``RCPT TO`` for the one recipient, ``DATA``. The envelope sender is the account's own
address, so bounces come back to the monitored mailbox, where the importer links them to
the message follower (RFC 5321 §4.5.5).

Error mapping (:func:`translate`, first matching row wins)::

    library error                           postroom error
    SMTPAuthenticationError (535...)        AuthError      "login refused by h:p: 535 ..."
    reply 4xx (MAIL, RCPT, DATA)            SmtpDeferred   (TransientError) retry later
    reply 5xx (MAIL, RCPT, DATA)            SmtpRejected   (PermanentError) never retried
    SMTPConnectError / SMTPHeloError        ConnectError   the server would not talk to us
    SMTPServerDisconnected                  ConnectError
    ssl.SSLCertVerificationError, SSLError  ConnectError   "certificate verify failed ..."
    TimeoutError, ConnectionRefusedError,   ConnectError
    other OSError
    SMTPNotSupportedError, SMTPException    ProtocolError  (TransientError)

Every message names the host and port and quotes the server's reply, never a password:
the login step runs without exception chaining, so no traceback frame holding the
password reaches a log renderer.
"""

from __future__ import annotations

__all__ = [
    "DEFAULT_SMTP_THREADS",
    "SmtpDeferred",
    "SmtpRejected",
    "SmtpSession",
    "SmtpSettings",
    "SmtpTransport",
    "map_errors",
    "smtp_limiter",
    "translate",
]

import smtplib
import socket
import ssl
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import asynccontextmanager, contextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import trio

from daemon.config import Account, ImapConnection, Secret, is_loopback
from daemon.errors import (
    AuthError,
    ConnectError,
    PermanentError,
    PostroomError,
    ProtocolError,
    TransientError,
    translated,
)
from daemon.limiters import shared_limiter
from daemon.store.base import OutboxItem

T = TypeVar("T")

#: Default size of the worker-thread pool shared by every SMTP session.
DEFAULT_SMTP_THREADS = 20

#: The limiter shared by every SMTP session in this Trio run (created on first use).
smtp_limiter = shared_limiter("smtp_limiter", DEFAULT_SMTP_THREADS)


class _SmtpReply(PostroomError):
    """An error carrying the server's reply.

    Attributes:
        code, text: the server's reply.
        recipient: set when the reply was to ``RCPT TO`` for this address.
    """

    def __init__(self, message: str, *, code: int, text: str, recipient: str | None = None,
                 account: str | None = None) -> None:
        super().__init__(message, account=account)
        self.code = code
        self.text = text
        self.recipient = recipient


class SmtpDeferred(_SmtpReply, TransientError):
    """The server answered 4xx: try again later."""


class SmtpRejected(_SmtpReply, PermanentError):
    """The server answered 5xx: this message will never be accepted as it is."""


@dataclass(frozen=True)
class SmtpSettings:
    """Where and how to send for one account (from its ``imap_connections`` entry).

    Attributes:
        host, port, tls: the server and ``implicit`` | ``starttls`` | ``none``.
        ca_file: a private CA to trust instead of the system store.
        verify_certificates: False only for labs.
        connect_timeout, read_timeout: seconds for connect + TLS + greeting, then for
            every read or write.
        username, password: for AUTH; no AUTH without a password (or ``xoauth2``).
        xoauth2: ``await xoauth2(force_refresh=False)`` returns an access token; when set,
            AUTH XOAUTH2 as ``username`` is used instead of a password.
        local_hostname: the EHLO name (never looked up, which can hang without DNS).
    """

    host: str
    port: int
    tls: str = "starttls"
    ca_file: Path | None = None
    verify_certificates: bool = True
    connect_timeout: float = 15.0
    read_timeout: float = 60.0
    username: str | None = None
    password: Secret | None = field(default=None, repr=False)
    local_hostname: str = "localhost"
    xoauth2: Callable[..., Awaitable[Secret]] | None = field(default=None, repr=False,
                                                              compare=False)

    @property
    def where(self) -> str:
        return f"{self.host}:{self.port}"

    @classmethod
    def for_account(cls, account: Account, connection: ImapConnection, *,
                    local_hostname: str = "localhost", username: str | None = None,
                    xoauth2: Callable[..., Awaitable[Secret]] | None = None) -> SmtpSettings:
        """The settings for ``account`` sending through ``connection`` (an ImapConnection)."""
        return cls(host=connection.smtp_host, port=connection.smtp_port,
                   tls=connection.smtp_tls, ca_file=connection.ca_file,
                   verify_certificates=connection.verify_certificates,
                   connect_timeout=connection.connect_timeout_seconds,
                   read_timeout=connection.read_timeout_seconds,
                   username=username or account.login,
                   password=None if xoauth2 else account.password,
                   local_hostname=local_hostname, xoauth2=xoauth2)


# -- the error boundary ------------------------------------------------------------------


def _reply_text(value: bytes | str) -> str:
    text = value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)
    return " ".join(text.split())


def _by_code(code: int, text: str, what: str, where: str, account: str | None, *,
             recipient: str | None = None) -> PostroomError:
    message = f"{where} refused {what}: {code} {text}".rstrip()
    if 400 <= code < 500:
        return SmtpDeferred(message, code=code, text=text, recipient=recipient,
                            account=account)
    if 500 <= code < 600:
        return SmtpRejected(message, code=code, text=text, recipient=recipient,
                            account=account)
    return ProtocolError(message, account=account)


def translate(exc: BaseException, where: str, account: str | None = None
              ) -> PostroomError | None:
    """The postroom error for an smtplib, ssl or socket exception; None for anything else.

    See the table in the module docstring.
    """
    if isinstance(exc, smtplib.SMTPAuthenticationError):
        return AuthError(f"login refused by {where}: {exc.smtp_code} "
                         f"{_reply_text(exc.smtp_error)}", account=account)
    if isinstance(exc, smtplib.SMTPRecipientsRefused):
        recipient, (code, reply) = next(iter(exc.recipients.items()))
        return _by_code(code, _reply_text(reply), f"recipient {recipient}", where, account,
                        recipient=recipient)
    if isinstance(exc, smtplib.SMTPConnectError | smtplib.SMTPHeloError):
        return ConnectError(f"{where} would not talk to us: {exc.smtp_code} "
                            f"{_reply_text(exc.smtp_error)}", account=account)
    if isinstance(exc, smtplib.SMTPSenderRefused):
        return _by_code(exc.smtp_code, _reply_text(exc.smtp_error),
                        f"sender {exc.sender}", where, account)
    if isinstance(exc, smtplib.SMTPResponseException):
        return _by_code(exc.smtp_code, _reply_text(exc.smtp_error), "the message", where,
                        account)
    if isinstance(exc, smtplib.SMTPServerDisconnected):
        return ConnectError(f"connection to {where} lost: {exc}", account=account)
    if isinstance(exc, ssl.SSLCertVerificationError):
        reason = exc.verify_message or exc.reason or str(exc)
        return ConnectError(f"certificate verify failed for {where}: {reason}",
                            account=account)
    if isinstance(exc, ssl.SSLError):
        return ConnectError(f"TLS failed with {where}: {exc.reason or exc}", account=account)
    if isinstance(exc, TimeoutError | socket.timeout):
        return ConnectError(f"timed out talking to {where}", account=account)
    if isinstance(exc, ConnectionRefusedError):
        return ConnectError(f"connection refused by {where}", account=account)
    if isinstance(exc, OSError):
        return ConnectError(f"connection to {where} failed: {exc.strerror or exc}",
                            account=account)
    if isinstance(exc, smtplib.SMTPException):
        return ProtocolError(f"{where}: {exc}", account=account)
    return None


@contextmanager
def map_errors(where: str, account: str | None = None, *, chain: bool = True
               ) -> Iterator[None]:
    """Translate library errors raised inside the block (see :func:`translate`).

    Args:
        where: ``host:port``.
        account: attached to the error.
        chain: keep the library exception as ``__cause__`` (False for the login step).
    """
    with translated(lambda exc: translate(exc, where, account), chain=chain):
        yield


# -- one connection -----------------------------------------------------------------------


def tls_context(settings: SmtpSettings) -> ssl.SSLContext | None:
    """The client TLS context, or None for ``tls = "none"`` (loopback only).

    Raises:
        ConnectError: ``none`` towards a host that is not loopback.
    """
    if settings.tls == "none":
        if not is_loopback(settings.host):
            raise ConnectError(f'smtp_tls "none" is only allowed for loopback hosts, not '
                               f"{settings.host}")
        return None
    context = ssl.create_default_context(
        ssl.Purpose.SERVER_AUTH, cafile=str(settings.ca_file) if settings.ca_file else None)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    if not settings.verify_certificates:
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    return context


class SmtpSession:
    """One SMTP connection, used by one task; connects on first :meth:`send`.

    Attributes:
        settings: where and how.
        account: the account id, attached to errors.
    """

    def __init__(self, settings: SmtpSettings, *, account: str | None = None) -> None:
        self.settings = settings
        self.account = account
        self._conn: smtplib.SMTP | None = None

    async def send(self, sender: str, recipient: str, raw: bytes) -> str:
        """Deliver ``raw`` to ``recipient`` in one SMTP transaction.

        A checkpoint. Cancellation waits for the worker thread, which the socket
        timeouts bound; the session is then closed.

        Returns:
            The server's final reply, e.g. ``250 2.0.0 Ok: queued as 4F2``.

        Raises:
            SmtpDeferred, ConnectError, ProtocolError: transient; try again later.
            SmtpRejected: permanent (5xx).
            AuthError: the server refused the login.
        """
        try:
            if self._conn is None and self.settings.xoauth2 is not None:
                return await self._send_with_token(sender, recipient, raw)
            return await self._call(self._transaction, sender, recipient, raw)
        except BaseException:
            await self.aclose()
            raise

    async def _send_with_token(self, sender: str, recipient: str, raw: bytes) -> str:
        assert self.settings.xoauth2 is not None
        token = await self.settings.xoauth2()
        try:
            return await self._call(self._transaction, sender, recipient, raw, token)
        except AuthError:
            token = await self.settings.xoauth2(force_refresh=True)
            return await self._call(self._transaction, sender, recipient, raw, token)

    async def aclose(self) -> None:
        """Say QUIT if connected, then close. Always releases the connection; shielded."""
        conn, self._conn = self._conn, None
        if conn is None:
            return
        with trio.CancelScope(shield=True):
            await trio.to_thread.run_sync(_quit, conn, limiter=smtp_limiter())

    async def _call(self, fn: Callable[..., T], *args: Any) -> T:
        return await trio.to_thread.run_sync(self._in_worker, fn, args,
                                             limiter=smtp_limiter())

    def _in_worker(self, fn: Callable[..., T], args: tuple[Any, ...]) -> T:
        with map_errors(self.settings.where, self.account):
            return fn(*args)

    def _transaction(self, sender: str, recipient: str, raw: bytes,
                     token: Secret | None = None) -> str:
        conn = self._conn or self._connect(token)
        options = [f"SIZE={len(raw)}"] if conn.has_extn("size") else []
        code, reply = conn.mail(sender, options)
        if code != 250:
            _reset(conn)
            raise smtplib.SMTPSenderRefused(code, reply, sender)
        code, reply = conn.rcpt(recipient)
        if code not in (250, 251):
            _reset(conn)
            raise smtplib.SMTPRecipientsRefused({recipient: (code, reply)})
        code, reply = conn.data(raw)
        if code != 250:
            _reset(conn)
            raise smtplib.SMTPDataError(code, reply)
        return f"{code} {_reply_text(reply)}"

    def _connect(self, token: Secret | None = None) -> smtplib.SMTP:
        s = self.settings
        context = tls_context(s)
        conn: smtplib.SMTP
        # The constructor connects and reads the greeting (the host also becomes the name
        # the certificate is checked against, for STARTTLS too).
        if s.tls == "implicit":
            conn = smtplib.SMTP_SSL(s.host, s.port, local_hostname=s.local_hostname,
                                    context=context, timeout=s.connect_timeout)
        else:
            conn = smtplib.SMTP(s.host, s.port, local_hostname=s.local_hostname,
                                timeout=s.connect_timeout)
        try:
            assert conn.sock is not None  # the constructor connected
            conn.sock.settimeout(s.read_timeout)
            conn.ehlo()
            if s.tls == "starttls":
                self._starttls(conn, context)
            if token is not None:
                self._xoauth2(conn, token)
            elif s.password is not None:
                self._login(conn)
        except BaseException:
            conn.close()
            raise
        self._conn = conn
        return conn

    def _starttls(self, conn: smtplib.SMTP, context: ssl.SSLContext | None) -> None:
        if not conn.has_extn("starttls"):
            raise ConnectError(f"{self.settings.where} does not offer STARTTLS; refusing to "
                               "send in plain text", account=self.account)
        conn.starttls(context=context)
        conn.ehlo()

    def _login(self, conn: smtplib.SMTP) -> None:
        s = self.settings
        assert s.password is not None
        with map_errors(s.where, self.account, chain=False):
            conn.login(s.username or "", s.password.reveal())


    def _xoauth2(self, conn: smtplib.SMTP, token: Secret) -> None:
        s = self.settings
        initial = f"user={s.username or ''}\x01auth=Bearer {token.reveal()}\x01\x01"

        def answer(challenge: bytes | None = None) -> str:
            return initial if challenge is None else ""  # the error challenge: empty line

        with map_errors(s.where, self.account, chain=False):
            conn.auth("XOAUTH2", answer, initial_response_ok=True)


def _reset(conn: smtplib.SMTP) -> None:
    with suppress(smtplib.SMTPException, OSError):
        conn.rset()


def _quit(conn: smtplib.SMTP) -> None:
    with suppress(smtplib.SMTPException, OSError):
        conn.quit()
    with suppress(OSError):
        conn.close()


class SmtpTransport:
    """Sends an account's outbox items over SMTP.

    ``async with transport.session() as sender: await sender.send(item)``.
    """

    def __init__(self, settings: SmtpSettings, *, account: str, envelope_from: str) -> None:
        self.settings = settings
        self.account = account
        self.envelope_from = envelope_from

    def __repr__(self) -> str:
        return f"<SmtpTransport {self.account} {self.settings.where} {self.settings.tls}>"

    @asynccontextmanager
    async def session(self) -> AsyncIterator[_ItemSender]:
        session = SmtpSession(self.settings, account=self.account)
        try:
            yield _ItemSender(session, self.envelope_from)
        finally:
            await session.aclose()


@dataclass(frozen=True)
class _ItemSender:
    session: SmtpSession
    envelope_from: str

    async def send(self, item: OutboxItem) -> str:
        return await self.session.send(self.envelope_from, item.recipient, item.raw)
