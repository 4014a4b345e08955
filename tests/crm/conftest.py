"""A processor over a real SQLite store, fed raw bytes directly (no intake)."""

from __future__ import annotations

import copy
from collections.abc import Callable
from datetime import UTC, datetime
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import pytest

from daemon.actors.processor import Processor
from daemon.app import build_plugin_manager, open_daemon_store
from daemon.config import parse_config
from daemon.messages import Outcome, RawMessage, source_key

NOW = datetime(2026, 11, 24, 12, 0, tzinfo=UTC)
SECRET = b"k" * 32

BASE: dict[str, Any] = {
    "daemon": {"store": "sqlite:///postroom.db", "installation_id": "inst-a",
               "mail_domain": "a.example"},
    "http": {"enabled": False},
    "accounts": [{"id": "support", "name": "Support", "email": "support@a.example",
                  "aliases": ["help@a.example"], "auth": "maildir", "maildir": "Maildir"}],
}
RUNTIME: dict[str, Any] = {
    "identificationMethod": "messageId",
    "allowAutomaticEmails": False,
    "conversationParents": [{
        "relationConversation": "conversation", "accounts": [], "limetype": "helpdesk",
        "relationDocument": "document", "sendMessageActions": [],
        "properties": [
            {"property": "subject", "messageProperty": "subject"},
            {"property": "person", "messageProperty": "fromAddress",
             "searchPath": "person.email"},
            {"property": "company", "searchPath": "person.company"},
            {"property": "source", "default": "email"},
        ]}],
}
SEED = {"company": [{"_ref": "acme", "name": "Acme"}],
        "person": [{"name": "Ann", "email": "ann@acme.example", "company": {"$ref": "acme"}}]}


class Harness:
    """Feed messages, read objects."""

    def __init__(self, processor: Processor, config: Any) -> None:
        self.processor = processor
        self.config = config
        self.store = processor.store
        self._n = 0

    async def feed(self, raw: bytes, *, account: str = "support",
                   received_at: datetime | None = NOW) -> Outcome:
        self._n += 1
        return await self.processor.process(RawMessage(
            account=account, source_key=source_key("test", account, self._n), raw=raw,
            received_at=received_at))

    async def find(self, limetype: str, **where: Any) -> list[Any]:
        return await self.store.run(lambda tx: tx.find(limetype, where))

    async def one(self, limetype: str, **where: Any) -> Any:
        (found,) = await self.find(limetype, **where)
        return found

    async def raw(self, source_key: str) -> Any:
        return await self.store.run(lambda tx: tx.get_raw(source_key))

    async def outbox(self) -> list[Any]:
        """Every queued outgoing email, oldest first."""
        return await self.store.run(lambda tx: tx.due(NOW.replace(year=2100), limit=1000))


@pytest.fixture
def make_harness(tmp_path: Path) -> Callable[..., Any]:
    """``await make_harness(runtime={...}, account={...}, queue_mail=...)``."""
    opened = []

    async def make(*, runtime: dict | None = None, account: dict | None = None,
                   queue_mail: Any = None, plugins: list[str] | None = None,
                   daemon: dict | None = None, root: Path | None = None,
                   with_outbox: bool = False, crm: dict | None = None) -> Harness:
        import json

        from daemon.outbox.queue import mail_queuer

        base_dir = root or tmp_path
        base_dir.mkdir(exist_ok=True)
        data = copy.deepcopy(BASE)
        data["daemon"].update(daemon or {})
        data["accounts"][0].update(account or {})
        data["daemon"]["plugins"] = plugins or []
        if crm is not None:
            data["crm"] = crm
        (base_dir / "runtime.json").write_text(json.dumps({**RUNTIME, **(runtime or {})}))
        (base_dir / "seed.json").write_text(json.dumps(SEED))
        data["daemon"]["runtime"] = "runtime.json"
        data["daemon"]["seed_objects"] = "seed.json"
        config = parse_config(data, file="postroom.toml", base_dir=base_dir)
        store = await open_daemon_store(config)
        opened.append(store)
        if with_outbox:
            queue_mail = mail_queuer(config, SECRET, now=lambda: NOW)
        processor = Processor(config, store, build_plugin_manager(config), secret=SECRET,
                              queue_mail=queue_mail, now=lambda: NOW)
        return Harness(processor, config)

    yield make
    for store in opened:
        store.store.close()


def mail(subject: str = "Help please", *, sender: str = "Ann <ann@acme.example>",
         to: str = "support@a.example", cc: str | None = None, message_id: str | None = None,
         in_reply_to: str | None = None, references: str | None = None,
         body: str = "Please help.\n", headers: dict[str, str] | None = None) -> bytes:
    m = EmailMessage()
    m["From"] = sender
    m["To"] = to
    if cc:
        m["Cc"] = cc
    m["Subject"] = subject
    m["Date"] = "Tue, 24 Nov 2026 11:00:00 +0000"
    if message_id:
        m["Message-ID"] = f"<{message_id}>"
    if in_reply_to:
        m["In-Reply-To"] = f"<{in_reply_to}>"
    if references:
        m["References"] = references
    for name, value in (headers or {}).items():
        m[name] = value
    m.set_content(body)
    return bytes(m)
