"""How each account sends: SMTP, the demo's Maildir, or (for now) not at all.

A transport opens a *session* for a batch of one account's outbox items::

    async with transport.session() as sender:
        reply = await sender.send(item)      # raises Transient/Permanent/AuthError

Which transport an account gets (:func:`transport_for`):

* ``auth`` names an ``[[imap_connections]]`` entry: SMTP through its ``smtp_host``,
  ``smtp_port`` and ``smtp_tls`` with the account's ``username``/``password``
  (:class:`~daemon.outbox.smtp.SmtpTransport`).
* ``auth = "maildir"`` (the demo): the message is written to the Maildir++ folder
  ``<maildir>/.Sent`` (``new/``), so the demo shows its outgoing mail without a network.
  The file name carries the outbox id, so writing the same item twice is impossible:
  this transport is exactly-once.
* ``auth`` names an ``imap_smtp`` OAuth app: SMTP ``AUTH XOAUTH2`` through the app's
  SMTP server, as the account's email, with access tokens from the daemon's
  :class:`~daemon.oauth.manager.OAuthManager` (passed as ``oauth``).
* ``auth`` names a Microsoft app with ``base_scope = "api"`` and a Graph token source is
  given: Graph (:class:`~daemon.graph.send.GraphTransport`; Graph saves the Sent Items
  copy, so there is no IMAP APPEND).
* other OAuth apps (an ``api`` app without a token source): items fail at once with that
  reason (a permanent error), rather than sitting in the queue where they would be
  retried for two days and crowd out other accounts' mail.
"""

from __future__ import annotations

__all__ = ["MaildirSent", "Sender", "Transport", "Unavailable", "transport_for"]

import hashlib
import os
from collections.abc import AsyncIterator
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

import trio

from daemon.config import MAILDIR, Account, Config, ImapConnection, OAuthApp
from daemon.errors import PermanentError
from daemon.outbox.smtp import SmtpSettings, SmtpTransport
from daemon.store.base import OutboxItem

if TYPE_CHECKING:
    from daemon.graph.client import GraphTokens
    from daemon.oauth.manager import OAuthManager

#: The Maildir++ folder the demo "sends" into.
SENT_FOLDER = ".Sent"


class Sender(Protocol):
    """Delivers items within one session."""

    async def send(self, item: OutboxItem) -> str:
        """Deliver ``item``; return the server's (or the transport's) final reply.

        Raises:
            TransientError: try again later (4xx, connection failures).
            PermanentError: never retry (5xx, nothing can send this).
            AuthError: the credentials were refused.
        """


class Transport(Protocol):
    def session(self) -> AbstractAsyncContextManager[Sender]: ...


class MaildirSent:
    """Writes each item to ``<maildir>/.Sent/new/`` (tmp/ then rename, as MTAs deliver)."""

    #: Writing an item twice is impossible (the name carries the outbox id): a send cut
    #: short by a crash is reconciled by sending again.
    idempotent = True

    def __init__(self, maildir: Path) -> None:
        self.folder = maildir / SENT_FOLDER

    def __repr__(self) -> str:
        return f"<MaildirSent {self.folder}>"

    @asynccontextmanager
    async def session(self) -> AsyncIterator[MaildirSent]:
        yield self

    async def send(self, item: OutboxItem) -> str:
        """Write the item's bytes (a worker thread); idempotent per outbox id."""
        return await trio.to_thread.run_sync(self._write, item)

    def _write(self, item: OutboxItem) -> str:
        for sub in ("tmp", "new", "cur"):
            (self.folder / sub).mkdir(parents=True, exist_ok=True)
        digest = hashlib.sha256(item.message_id.encode()).hexdigest()[:12]
        name = f"outbox-{item.id}.{digest}.postroom"
        for sub in ("new", "cur"):
            for existing in (self.folder / sub).glob(name + "*"):
                return f"already in {existing}"
        tmp = self.folder / "tmp" / name
        with open(tmp, "wb") as f:
            f.write(item.raw)
            f.flush()
            os.fsync(f.fileno())
        target = self.folder / "new" / name
        os.replace(tmp, target)
        return f"written to {target}"


class Unavailable:
    """A transport for accounts that cannot send yet: every item fails with ``reason``."""

    def __init__(self, reason: str) -> None:
        self.reason = reason

    def __repr__(self) -> str:
        return f"<Unavailable {self.reason!r}>"

    @asynccontextmanager
    async def session(self) -> AsyncIterator[Unavailable]:
        yield self

    async def send(self, item: OutboxItem) -> str:
        await trio.lowlevel.checkpoint()
        raise PermanentError(self.reason, account=item.account)


def transport_for(config: Config, account: Account, *, oauth: OAuthManager | None = None,
                  graph_tokens: GraphTokens | None = None) -> Transport:
    """The transport for ``account`` (see the module docstring).

    ``oauth`` gives XOAUTH2 access tokens for ``imap_smtp`` apps; ``graph_tokens``:
    ``(account, app) -> TokenProvider`` for Graph accounts.
    """
    if account.auth == MAILDIR:
        assert account.maildir is not None
        return MaildirSent(account.maildir)
    connection = config.connection_for(account)
    if isinstance(connection, ImapConnection):
        settings = SmtpSettings.for_account(
            account, connection, local_hostname=config.daemon.message_id_domain)
        return SmtpTransport(settings, account=account.id, envelope_from=account.email)
    if isinstance(connection, OAuthApp) and connection.base_scope == "imap_smtp" \
            and oauth is not None:
        settings = SmtpSettings.for_account(
            account, connection.mail_servers(), local_hostname=config.daemon.message_id_domain,
            username=account.email, xoauth2=partial(oauth.access_token, account.id))
        return SmtpTransport(settings, account=account.id, envelope_from=account.email)
    if (graph_tokens is not None and isinstance(connection, OAuthApp)
            and connection.base_scope == "api" and connection.provider == "microsoft"):
        from daemon.graph.send import GraphTransport

        return GraphTransport(connection, account, graph_tokens(account, connection))
    return Unavailable(f"account {account.id!r} authenticates with OAuth app "
                       f"{account.auth!r}; sending through Microsoft Graph (sendMail) "
                       "is not implemented yet")
