"""One IMAP connection, driven from Trio: connect, TLS, login, and every blocking call.

imapclient is blocking and not thread-safe, so an :class:`ImapSession` is owned by one actor
and every call goes through :meth:`ImapSession.call`, one at a time, in a worker thread.
That method is the only boundary where library errors become postroom errors
(:func:`daemon.imap.errors.map_errors`).

Threads. All accounts share one :class:`trio.CapacityLimiter` (:func:`imap_limiter`,
default :data:`DEFAULT_IMAP_THREADS`). It bounds the threads busy with *short* calls
(connect, SELECT, SEARCH, FETCH, STORE); it is generous because those calls are I/O-bound
and a slow server should not make a fast one wait. Waiting in IDLE holds no thread at all
(:mod:`daemon.imap.idle`), which is what lets 1,000 idle mailboxes share one process.

Timeouts. Every socket gets ``connect_timeout_seconds`` for connect, TLS handshake and
greeting, then ``read_timeout_seconds`` for every read and write, so a dead link fails a
call instead of hanging it.

Cancellation. A call is run with ``abandon_on_cancel=True``: on cancel the Trio side returns
at once and the socket is shut down under the thread's feet, so the thread fails within
microseconds and closes the socket itself. The session is then unusable (``broken``); its
owner leaves the ``async with`` block, which is the only sensible thing to do anyway.

TLS (RFC 8314 recommends implicit TLS; RFC 3501 §6.2.1 / RFC 2595 define STARTTLS):

* ``implicit``: TLS from the first byte (port 993);
* ``starttls``: plain greeting, then STARTTLS before anything else; a server that does not
  offer it is refused (no silent downgrade);
* ``none``: plain text, allowed only to a loopback address.

Certificates are verified against the system store, or against ``ca_file`` only when it is
set (an on-premise server with a private CA). ``verify_certificates = false`` exists for
labs and logs a warning on every connect.
"""

from __future__ import annotations

__all__ = [
    "DEFAULT_IMAP_THREADS",
    "ImapSession",
    "LoginMethod",
    "SelectInfo",
    "imap_limiter",
    "open_session",
    "take_untagged",
    "tls_context",
]

import functools
import os
import socket
import ssl
import threading
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager, suppress
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, TypeVar

import structlog
import trio
from imapclient import IMAPClient, SocketTimeout

from daemon.config import is_loopback
from daemon.errors import ConfigError, ConfigProblem, ConnectError, ProtocolError
from daemon.imap.errors import map_errors
from daemon.limiters import shared_limiter

if TYPE_CHECKING:
    from daemon.config.connections import TlsMode

log = structlog.get_logger("postroom.imap")

T = TypeVar("T")

#: Default size of the worker-thread pool shared by all IMAP accounts (see module docstring).
DEFAULT_IMAP_THREADS = 100

#: The limiter shared by every IMAP account in this Trio run (created on first use).
imap_limiter = shared_limiter("imap_limiter", DEFAULT_IMAP_THREADS)


class LoginMethod(Protocol):
    """Authenticate ``session``; raise :class:`~daemon.errors.AuthError` when refused.

    The step between TLS and SELECT; :mod:`daemon.imap.login` has the implementations.
    """

    async def __call__(self, session: ImapSession) -> None: ...


def take_untagged(client: IMAPClient, name: str) -> list[Any]:
    """Remove and return the untagged ``name`` responses (e.g. ``"EXISTS"``) imaplib kept.

    imaplib files every untagged response it reads into ``IMAP4.untagged_responses`` (a
    dict of lists by response name), including ones that came with another command's
    reply and that imapclient never hands back. That is the only way to learn that an
    ``EXISTS`` arrived with a SEARCH's response. This function is the one place postroom
    reads that private dict; call it in the worker thread that owns the client.

    Returns:
        The responses' data, oldest first; empty when none arrived since the last call.
    """
    responses: list[Any] = client._imap.untagged_responses.pop(name, [])
    return responses


class ConnectionSettings(Protocol):
    """What :func:`open_session` reads from ``daemon.config.ImapConnection``."""

    imap_host: str
    imap_port: int
    imap_tls: TlsMode
    ca_file: Path | None
    verify_certificates: bool
    connect_timeout_seconds: float
    read_timeout_seconds: float


@dataclass(frozen=True, slots=True)
class SelectInfo:
    """What SELECT told us about a folder (RFC 3501 §6.3.1, RFC 7162 §3.1.2.1)."""

    uidvalidity: int
    uidnext: int | None
    exists: int
    highestmodseq: int | None = None


def tls_context(settings: ConnectionSettings) -> ssl.SSLContext | None:
    """The client TLS context for ``settings``, or None for ``imap_tls = "none"``.

    Contexts are shared: building one loads the CA store (about 60 ms and 0.8 MB with the
    system store), which 1,000 accounts reconnecting at once must not pay 1,000 times. A
    context is reused for the same CA file (and modification time) and verification flag;
    the host name is checked per connection (``server_hostname``), not per context.

    Raises:
        ConfigError: ``none`` towards a host that is not loopback, or an unknown mode.
    """
    mode = settings.imap_tls
    if mode == "none":
        if not is_loopback(settings.imap_host):
            raise ConfigError([ConfigProblem(
                "config", "imap_connections.imap_tls",
                f'"none" is only allowed for loopback hosts, not {settings.imap_host}')])
        return None
    if mode not in ("implicit", "starttls"):
        raise ConfigError([ConfigProblem(
            "config", "imap_connections.imap_tls",
            f'must be "implicit", "starttls" or "none", not "{mode}"')])
    ca_file = str(settings.ca_file) if settings.ca_file else None
    stamp = os.stat(ca_file).st_mtime_ns if ca_file else 0
    return _shared_context(ca_file, stamp, bool(settings.verify_certificates))


@functools.lru_cache(maxsize=64)
def _shared_context(ca_file: str | None, _stamp: int, verify: bool) -> ssl.SSLContext:
    context = ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cafile=ca_file)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    if not verify:
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    return context


class ImapSession:
    """One logged-in IMAP connection, used by one actor at a time.

    Attributes:
        where: ``host:port``, for messages.
        account: the account id, attached to errors.
        client: the imapclient object (touch it only inside :meth:`call`).
        broken: True once the connection failed or a call was abandoned.
        in_idle: True between IDLE and DONE (:mod:`daemon.imap.idle` keeps it right).
    """

    def __init__(self, settings: ConnectionSettings, *, account: str) -> None:
        self.settings = settings
        self.where = f"{settings.imap_host}:{settings.imap_port}"
        self.account = account
        self.client: IMAPClient | None = None
        self.broken = False
        self.in_idle = False
        self._capabilities: frozenset[bytes] = frozenset()
        self._lock = threading.Lock()
        self._in_thread = False
        self._abandoned = False

    # -- calls -------------------------------------------------------------------------

    async def call(self, fn: Callable[..., T], *args: Any, chain: bool = True) -> T:
        """Run ``fn(*args)`` in a worker thread, translating library errors.

        A checkpoint. If cancelled, the thread is abandoned, the socket shut down and the
        session marked ``broken``.

        Args:
            fn: a blocking function using :attr:`client`.
            chain: keep the library exception as ``__cause__`` (False for the login step).

        Raises:
            ConnectError: the session is already broken, or the connection failed (the
                session is then ``broken``).
            AuthError, ProtocolError: as mapped by :func:`map_errors`.
        """
        if self.broken:
            raise ConnectError(f"connection to {self.where} is closed", account=self.account)
        try:
            return await trio.to_thread.run_sync(
                self._in_worker, fn, args, chain, limiter=imap_limiter(),
                abandon_on_cancel=True)
        except trio.Cancelled:
            self._abandon()
            raise
        except ConnectError:
            self.broken = True
            raise

    def _in_worker(self, fn: Callable[..., T], args: tuple[Any, ...], chain: bool) -> T:
        with self._lock:
            if self._abandoned:
                raise ConnectError(f"connection to {self.where} was abandoned")
            self._in_thread = True
        try:
            with map_errors(self.where, self.account, chain=chain):
                return fn(*args)
        finally:
            with self._lock:
                self._in_thread = False
                if self._abandoned:
                    self._close_now()

    def _abandon(self) -> None:
        """Cancelled mid-call: wake the thread by shutting the socket; it closes the rest."""
        self.broken = True
        with self._lock:
            self._abandoned = True
            if self._in_thread:
                self._shutdown_socket()
            else:
                self._close_now()

    # -- capabilities and folders ------------------------------------------------------

    def has(self, capability: str) -> bool:
        """Whether the server advertised ``capability`` after login (no round trip)."""
        return capability.upper().encode() in self._capabilities

    async def refresh_capabilities(self) -> None:
        """Ask for (or reuse) the post-login capability list. A checkpoint."""
        assert self.client is not None
        caps = await self.call(self.client.capabilities)
        self._capabilities = frozenset(c.upper() for c in caps)

    async def select(self, folder: str) -> SelectInfo:
        """SELECT ``folder`` read-write. A checkpoint.

        Raises:
            ProtocolError: the folder does not exist or gave no UIDVALIDITY.
            ConnectError: the connection failed.
        """
        assert self.client is not None
        resp = await self.call(self.client.select_folder, folder)
        if b"UIDVALIDITY" not in resp:
            raise ProtocolError(f"{self.where}: SELECT {folder} gave no UIDVALIDITY",
                                account=self.account)
        return SelectInfo(uidvalidity=int(resp[b"UIDVALIDITY"]),
                          uidnext=_int_or_none(resp.get(b"UIDNEXT")),
                          exists=int(resp.get(b"EXISTS", 0)),
                          highestmodseq=_int_or_none(resp.get(b"HIGHESTMODSEQ")))

    # -- opening and closing -----------------------------------------------------------

    async def connect(self, login: LoginMethod) -> None:
        """Connect, secure, log in and enable CONDSTORE when offered. A checkpoint.

        Raises:
            ConfigError: ``imap_tls`` is invalid for this host.
            ConnectError: unreachable, TLS or certificate failure, no STARTTLS on offer.
            AuthError: the server refused the login.
        """
        settings = self.settings
        context = tls_context(settings)
        if context is not None and not settings.verify_certificates:
            log.warning("imap.tls.unverified", host=settings.imap_host)
        timeout = SocketTimeout(connect=settings.connect_timeout_seconds,
                                read=settings.read_timeout_seconds)
        implicit = settings.imap_tls == "implicit"
        await self.call(self._open_client, implicit, context, timeout)
        if settings.imap_tls == "starttls":
            await self.call(self._starttls, context)
        await login(self)
        await self.refresh_capabilities()
        if self.has("CONDSTORE") and self.has("ENABLE"):
            assert self.client is not None  # _open_client set it
            await self.call(self.client.enable, "CONDSTORE")
        log.info("imap.connected", host=settings.imap_host, port=settings.imap_port,
                 tls=settings.imap_tls, idle=self.has("IDLE"),
                 condstore=self.has("CONDSTORE"))

    def _open_client(self, implicit: bool, context: ssl.SSLContext | None,
                     timeout: SocketTimeout) -> None:
        client = IMAPClient(self.settings.imap_host, self.settings.imap_port, ssl=implicit,
                            ssl_context=context, timeout=timeout)
        client.normalise_times = False  # keep INTERNALDATE's own time zone
        self.client = client

    def _starttls(self, context: ssl.SSLContext) -> None:
        assert self.client is not None
        if not self.client.has_capability("STARTTLS"):
            raise ConnectError(f"{self.where} does not offer STARTTLS; refusing to send the "
                               "login in plain text", account=self.account)
        self.client.starttls(context)

    async def aclose(self) -> None:
        """Say LOGOUT if the connection is healthy, then close it. Always releases it.

        Shielded and bounded (2 s): safe to call while being cancelled.
        """
        with trio.CancelScope(shield=True):
            if self.client is not None and not self.broken and not self.in_idle:
                with trio.move_on_after(2):
                    try:
                        await self.call(self.client.logout)
                    except Exception as exc:  # closing anyway; a failed LOGOUT changes nothing
                        log.debug("imap.logout.failed", error=str(exc))
            with self._lock:
                if not self._in_thread:
                    self._close_now()
            self.broken = True

    def socket(self) -> socket.socket:
        """The connected socket, for waiting on readability (never read it directly)."""
        assert self.client is not None
        sock: socket.socket = self.client.socket()
        return sock

    def _shutdown_socket(self) -> None:
        """Shut the OS socket down (not TLS-level) so a blocked thread returns."""
        if self.client is None:
            return
        with suppress(OSError):
            socket.socket.shutdown(self.client.socket(), socket.SHUT_RDWR)

    def _close_now(self) -> None:
        if self.client is None:
            return
        self._shutdown_socket()
        with suppress(OSError):
            self.client.socket().close()


@asynccontextmanager
async def open_session(settings: ConnectionSettings, login: LoginMethod, *, account: str,
                       ) -> AsyncIterator[ImapSession]:
    """Connect and log in; yield the session; close it on the way out.

    Args:
        settings: the ``imap_connections`` entry.
        login: how to authenticate (:func:`daemon.imap.login.password_login`, or XOAUTH2).
        account: the account id, for errors and logs.

    Raises:
        ConfigError, ConnectError, AuthError: see :meth:`ImapSession.connect`.
    """
    session = ImapSession(settings, account=account)
    try:
        await session.connect(login)
        yield session
    finally:
        await session.aclose()


def _int_or_none(value: Any) -> int | None:
    return None if value is None else int(value)
