"""A real SMTP server on loopback for tests: aiosmtpd with STARTTLS, implicit TLS and AUTH.

:class:`FakeSmtp` runs aiosmtpd's threaded controller (its own asyncio loop in a thread,
so it does not care that the tests run on Trio) with certificates from a trustme CA:

* ``tls="starttls"``: plain greeting, STARTTLS required before AUTH and MAIL;
* ``tls="implicit"``: TLS from the first byte (port 465 style);
* ``tls="none"``: plain text, no STARTTLS offered (to test that we refuse to downgrade).

With ``users`` every session must AUTH (PLAIN or LOGIN; ``mechanisms`` narrows them).
With ``xoauth2`` (a ``(user, token) -> bool`` check, e.g. against an OAuth emulator)
``AUTH XOAUTH2`` is offered: a good token is ``235``; a bad one gets Google's base64 JSON
error challenge first, then ``535 5.7.8`` once the client answers with an empty line.

Scripted behaviour, set from the test at any time:

* :meth:`FakeSmtp.stop` / :meth:`FakeSmtp.start`: the server is down (connections are
  refused) and comes back on the same port;
* :meth:`FakeSmtp.defer` (``451`` on DATA for the next ``n`` messages);
* :meth:`FakeSmtp.reject` (``550`` on RCPT for an address, every time).

Accepted messages are in :attr:`FakeSmtp.received` (appended before the ``250`` goes out,
so a client that saw the ``250`` will find its message there).
"""

from __future__ import annotations

__all__ = ["FakeSmtp", "Received", "free_port"]

import base64
import json
import socket
import ssl
import threading
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from email import message_from_bytes
from email.message import Message
from email.policy import default
from pathlib import Path
from typing import Any

import trustme
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword

HOST = "127.0.0.1"


def free_port() -> int:
    with socket.socket() as s:
        s.bind((HOST, 0))
        return s.getsockname()[1]


@dataclass(frozen=True)
class Received:
    """One accepted message as the server saw it."""

    mail_from: str
    rcpt_tos: tuple[str, ...]
    data: bytes
    user: str | None
    tls: bool

    @property
    def message(self) -> Message:
        return message_from_bytes(self.data, policy=default)


class _Handler:
    def __init__(self, fake: FakeSmtp) -> None:
        self.fake = fake

    async def handle_RCPT(self, server: Any, session: Any, envelope: Any, address: str,
                          rcpt_options: list[str]) -> str:
        with self.fake.lock:
            reply = self.fake.rejected.get(address.lower())
            self.fake.attempts.append(("RCPT", address))
        if reply:
            return reply
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        with self.fake.lock:
            self.fake.attempts.append(("DATA", ",".join(envelope.rcpt_tos)))
            if self.fake.deferrals > 0:
                self.fake.deferrals -= 1
                return self.fake.defer_reply
            user = session.auth_data.login.decode() if session.auth_data else None
            tls = server.transport.get_extra_info("ssl_object") is not None
            self.fake.received.append(Received(
                envelope.mail_from, tuple(envelope.rcpt_tos), bytes(envelope.content),
                user, tls))
            number = len(self.fake.received)
        return f"250 2.0.0 Ok: queued as Q{number}"


class _OAuthHandler(_Handler):
    """Adds ``AUTH XOAUTH2`` (aiosmtpd finds ``auth_<MECHANISM>`` methods on the handler)."""

    async def auth_XOAUTH2(self, server: Any, args: list[str]) -> AuthResult:
        blob: Any = args[1] if len(args) > 1 else await server.challenge_auth("")
        try:
            text = base64.b64decode(blob).decode() if isinstance(blob, str) else blob.decode()
        except ValueError:
            text = ""
        fields = dict(part.split("=", 1) for part in text.split("\x01") if "=" in part)
        user, token = fields.get("user", ""), fields.get("auth", "").removeprefix("Bearer ")
        check = self.fake.xoauth2
        assert check is not None
        with self.fake.lock:
            self.fake.attempts.append(("AUTH XOAUTH2", user))
        if check(user, token):
            return AuthResult(success=True, auth_data=LoginPassword(user.encode(), b""))
        error = json.dumps({"status": "401", "schemes": "bearer",
                            "scope": "https://mail.google.com/"}).encode()
        await server.challenge_auth(base64.b64encode(error).decode(), encode_to_b64=False)
        return AuthResult(success=False, handled=False,
                          message="535 5.7.8 Username and Password not accepted")


class FakeSmtp:
    """See the module docstring.

    Args:
        ca: the trustme CA that signs the server certificate (trusted via :attr:`ca_file`).
        workdir: where the CA file is written.
        tls: ``starttls`` | ``implicit`` | ``none``.
        users: login -> password; empty means no AUTH.
        mechanisms: the AUTH mechanisms offered (subset of PLAIN, LOGIN).
        xoauth2: ``(user, token) -> bool``; offers AUTH XOAUTH2 (and requires AUTH).
    """

    def __init__(self, ca: trustme.CA, workdir: Path, *, tls: str = "starttls",
                 users: dict[str, str] | None = None,
                 mechanisms: tuple[str, ...] = ("PLAIN", "LOGIN"),
                 xoauth2: Callable[[str, str], bool] | None = None) -> None:
        self.host = HOST
        self.port = free_port()
        self.tls = tls
        self.users = dict(users or {})
        self.mechanisms = mechanisms
        self.xoauth2 = xoauth2
        self.ca_file = workdir / "smtp-ca.pem"
        ca.cert_pem.write_to_path(str(self.ca_file))
        self._context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        ca.issue_cert(HOST, "localhost").configure_cert(self._context)
        self.lock = threading.Lock()
        self.received: list[Received] = []
        self.attempts: list[tuple[str, str]] = []
        self.rejected: dict[str, str] = {}
        self.deferrals = 0
        self.defer_reply = "451 4.3.0 Temporary failure, try again later"
        self._controller: Controller | None = None

    # -- up and down ---------------------------------------------------------------------

    def start(self) -> None:
        """Listen (again) on :attr:`port`."""
        assert self._controller is None, "already running"
        kwargs: dict[str, Any] = {"hostname": self.host, "port": self.port,
                                  "server_hostname": "smtp.test", "ready_timeout": 5}
        if self.tls == "starttls":
            kwargs |= {"tls_context": self._context, "require_starttls": True,
                       "auth_require_tls": True}
        elif self.tls == "implicit":
            kwargs |= {"ssl_context": self._context, "auth_require_tls": False}
        else:
            kwargs |= {"auth_require_tls": False}
        if self.users or self.xoauth2:
            offered = self.mechanisms if self.users else ()
            kwargs |= {"authenticator": self._authenticate, "auth_required": True,
                       "auth_exclude_mechanism": [m for m in ("PLAIN", "LOGIN")
                                                  if m not in offered]}
        # aiosmtpd warns on every connection to a server taking AUTH without STARTTLS; that
        # is the point of the implicit-TLS and no-STARTTLS scenarios. (Set here, inside the
        # test's own warning filters, which pytest resets per test.)
        warnings.filterwarnings("ignore", message="Requiring AUTH while not requiring TLS",
                                category=UserWarning)
        handler = _OAuthHandler(self) if self.xoauth2 else _Handler(self)
        controller = Controller(handler, **kwargs)
        controller.start()
        self._controller = controller

    def stop(self) -> None:
        """Go down: close the listener and every session; new connections are refused."""
        if self._controller is not None:
            self._controller.stop()
            self._controller = None

    @property
    def running(self) -> bool:
        return self._controller is not None

    def _authenticate(self, server: Any, session: Any, envelope: Any, mechanism: str,
                      auth_data: Any) -> AuthResult:
        if not isinstance(auth_data, LoginPassword):
            return AuthResult(success=False, handled=False)
        login, password = auth_data.login.decode(), auth_data.password.decode()
        ok = self.users.get(login) == password
        return AuthResult(success=ok, handled=False, auth_data=auth_data if ok else None)

    # -- scripted failures ---------------------------------------------------------------

    def defer(self, count: int = 1, reply: str | None = None) -> None:
        """Answer DATA of the next ``count`` messages with a 4xx (default 451)."""
        with self.lock:
            self.deferrals = count
            if reply:
                self.defer_reply = reply

    def reject(self, address: str, reply: str | None = None) -> None:
        """Answer ``RCPT TO:<address>`` with a 5xx (default 550 5.1.1) from now on."""
        with self.lock:
            self.rejected[address.lower()] = reply or (
                f"550 5.1.1 <{address}>: Recipient address rejected: User unknown")

    # -- what arrived --------------------------------------------------------------------

    def to(self, address: str) -> list[Received]:
        """Accepted messages addressed to ``address``."""
        with self.lock:
            return [r for r in self.received if address.lower() in
                    (t.lower() for t in r.rcpt_tos)]
