"""Fixtures for outgoing mail: a real store and processor, a real SMTP server on loopback.

* ``ca`` (session): a trustme CA; ``smtp``: a :class:`tests.fakes.smtp.FakeSmtp` with
  STARTTLS and AUTH (user ``support`` / :data:`SMTP_PASSWORD`), started and stopped per
  test.
* ``make_env``: ``await make_env(smtp=..., account={...}, runtime={...})`` builds a
  :class:`Env`: a validated config whose account sends through ``smtp``, a SQLite store
  with seed objects, the real processor wired to :func:`daemon.outbox.mail_queuer`, and a
  plugin manager holding ``plugins_contrib.update_limeobject``.
* :func:`customer_mail` builds an incoming message; :meth:`Env.conversation_with_three`
  feeds the standard one (Ann writes, Lisa and Bob in Cc: three followers).
"""

from __future__ import annotations

import copy
import json
from collections.abc import AsyncIterator, Callable, Iterator
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import pytest
import trustme

from daemon.actors.processor import Processor
from daemon.app import open_daemon_store
from daemon.config import parse_config
from daemon.messages import Outcome, RawMessage, source_key
from daemon.outbox.queue import Outgoing, mail_queuer
from daemon.outbox.reply import ReplyRequest, ReplyResult, queue_reply
from daemon.plugins.manager import make_plugin_manager
from daemon.store.base import OutboxItem
from tests.fakes.smtp import FakeSmtp

NOW = datetime(2026, 11, 24, 12, 0, tzinfo=UTC)
SECRET = b"s" * 32
SMTP_PASSWORD = "smtp-pass-Zq81"
INSTALLATION = "inst-out"
FAR_FUTURE = datetime(2100, 1, 1, tzinfo=UTC)

ACTION = {
    "action": {"id": "limepkg_standard_actions.update-limeobject",
               "params": {"limeObject": {"helpdeskstatus": {"constant": "waiting_customer"}},
                          "confirm": {"options": {}}, "nextCommand": {"params": {}}}},
    "label": "Send and set status to waiting on customer",
    "icon": "waiting_room",
}
RUNTIME: dict[str, Any] = {
    "personalizedEmails": True,
    "identificationMethod": "messageId",
    "allowAutomaticEmails": False,
    "conversationParents": [{
        "relationConversation": "conversation", "accounts": ["support"],
        "limetype": "helpdesk", "relationDocument": "document",
        "sendMessageActions": [ACTION],
        "properties": [
            {"property": "subject", "messageProperty": "subject"},
            {"property": "person", "messageProperty": "fromAddress",
             "searchPath": "person.email"},
            {"property": "company", "searchPath": "person.company"},
            {"property": "helpdesknumber", "default": "HD-1001"},
            {"property": "helpdeskstatus", "default": "new"},
        ]}],
}
SEED = {
    "company": [{"_ref": "acme", "name": "Acme Printing AB"},
                {"_ref": "globex", "name": "Globex Ltd"}],
    "person": [
        {"name": "Ann Andersson", "email": "ann@acme.example", "company": {"$ref": "acme"}},
        {"name": "Lisa Lund", "email": "lisa@acme.example", "company": {"$ref": "acme"}},
        {"name": "Bob Baker", "email": "bob@globex.example", "company": {"$ref": "globex"}},
    ],
    "coworker": [
        {"name": "Alex Agent", "email": "alex@a.example", "groups": ["support"]},
        {"name": "Sam Seller", "email": "sam@a.example", "groups": "sales, marketing"},
    ],
}


def customer_mail(subject: str = "Printer jammed", *,
                  sender: str = "Ann Andersson <ann@acme.example>",
                  to: str = "support@a.example", cc: str | None = None,
                  message_id: str = "m1@acme.example", in_reply_to: str | None = None,
                  references: str | None = None, body: str = "The printer jams.\n",
                  date: str = "Tue, 24 Nov 2026 11:00:00 +0000",
                  attachment: tuple[str, bytes] | None = None) -> bytes:
    m = EmailMessage()
    m["From"] = sender
    m["To"] = to
    if cc:
        m["Cc"] = cc
    m["Subject"] = subject
    m["Date"] = date
    m["Message-ID"] = f"<{message_id}>"
    if in_reply_to:
        m["In-Reply-To"] = f"<{in_reply_to}>"
    if references:
        m["References"] = references
    m.set_content(body)
    if attachment:
        m.add_attachment(attachment[1], "application", "octet-stream",
                         filename=attachment[0])
    return bytes(m)


class Clock:
    """A settable clock for ``now`` callables."""

    def __init__(self, start: datetime = NOW) -> None:
        self.value = start

    def __call__(self) -> datetime:
        return self.value

    def advance(self, seconds: float) -> None:
        self.value += timedelta(seconds=seconds)


class Env:
    """One configured installation: config, store, processor, composers."""

    def __init__(self, config: Any, store: Any, processor: Processor, pm: Any,
                 clock: Clock) -> None:
        self.config = config
        self.store = store
        self.processor = processor
        self.pm = pm
        self.clock = clock
        self._n = 0

    def out(self, account: str = "support") -> Outgoing:
        return Outgoing.from_config(self.config, SECRET, account, now=self.clock)

    async def feed(self, raw: bytes, account: str = "support") -> Outcome:
        self._n += 1
        return await self.processor.process(RawMessage(
            account=account, source_key=source_key("test", account, self._n), raw=raw,
            received_at=self.clock()))

    async def conversation_with_three(self) -> int:
        """Ann writes, Lisa and Bob in Cc: a conversation with three followers."""
        outcome = await self.feed(customer_mail(
            cc="Lisa Lund <lisa@acme.example>, Bob Baker <bob@globex.example>"))
        assert outcome.conversation_message_id is not None
        message = await self.store.run(
            lambda tx: tx.get("conversationmessage", outcome.conversation_message_id))
        return message.get("conversation")

    async def reply(self, conversation_id: int, html: str = "<p>We are on it.</p>", *,
                    coworker: str = "alex@a.example", account: str = "support",
                    **fields: Any) -> ReplyResult:
        coworker_id = (await self.one("coworker", email=coworker)).id
        request = ReplyRequest(conversation_id=conversation_id, coworker_id=coworker_id,
                               html=html, **fields)
        return await self.store.run(queue_reply, self.out(account), request)

    async def find(self, limetype: str, **where: Any) -> list[Any]:
        return await self.store.run(lambda tx: tx.find(limetype, where))

    async def one(self, limetype: str, **where: Any) -> Any:
        (found,) = await self.find(limetype, **where)
        return found

    async def queued(self) -> list[OutboxItem]:
        return await self.store.run(lambda tx: tx.due(FAR_FUTURE, 1000))

    async def outbox(self, outbox_id: int) -> OutboxItem:
        return await self.store.run(lambda tx: tx.get_outbox(outbox_id))


def make_data(tmp_path: Path, *, smtp: FakeSmtp | None, account: dict[str, Any] | None,
              runtime: dict[str, Any] | None, seed: dict[str, Any] | None,
              daemon: dict[str, Any] | None = None) -> dict[str, Any]:
    (tmp_path / "runtime.json").write_text(json.dumps({**RUNTIME, **(runtime or {})}))
    (tmp_path / "seed.json").write_text(json.dumps(seed or SEED))
    connection: dict[str, Any] = {
        "id": "mail", "imap_host": "127.0.0.1", "imap_port": 1, "imap_tls": "none",
        "smtp_host": "127.0.0.1", "smtp_port": smtp.port if smtp else 1,
        "smtp_tls": smtp.tls if smtp else "none", "connect_timeout_seconds": 5,
        "read_timeout_seconds": 10}
    if smtp is not None and smtp.tls != "none":
        connection["ca_file"] = str(smtp.ca_file)
    return {
        "daemon": {"store": "sqlite:///postroom.db", "installation_id": INSTALLATION,
                   "mail_domain": "a.example", "runtime": "runtime.json",
                   "seed_objects": "seed.json", **(daemon or {})},
        "http": {"enabled": False},
        "imap_connections": [connection],
        "accounts": [{"id": "support", "name": "Support", "email": "support@a.example",
                      "aliases": ["help@a.example"], "auth": "mail", "username": "support",
                      "password_env": "SMTP_PASSWORD", "groups": ["support"],
                      "timezone": "Europe/Stockholm", **(account or {})}],
    }


@pytest.fixture
def smtp(ca: trustme.CA, tmp_path: Path) -> Iterator[FakeSmtp]:
    server = FakeSmtp(ca, tmp_path, users={"support": SMTP_PASSWORD})
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
async def make_env(tmp_path: Path) -> AsyncIterator[Callable[..., Any]]:
    opened: list[Any] = []

    async def make(*, smtp: FakeSmtp | None = None, account: dict[str, Any] | None = None,
                   runtime: dict[str, Any] | None = None, seed: dict[str, Any] | None = None,
                   data: dict[str, Any] | None = None, clock: Clock | None = None) -> Env:
        raw = copy.deepcopy(data) if data is not None else make_data(
            tmp_path, smtp=smtp, account=account, runtime=runtime, seed=seed)
        config = parse_config(raw, file="postroom.toml", base_dir=tmp_path,
                              environ={"SMTP_PASSWORD": SMTP_PASSWORD})
        store = await open_daemon_store(config)
        opened.append(store)
        clock = clock or Clock()
        pm = make_plugin_manager(load_entry_points=False,
                                 modules=["plugins_contrib.update_limeobject"])
        processor = Processor(config, store, pm, secret=SECRET,
                              queue_mail=mail_queuer(config, SECRET, now=clock), now=clock)
        return Env(config, store, processor, pm, clock)

    yield make
    for store in opened:
        await store.aclose()
