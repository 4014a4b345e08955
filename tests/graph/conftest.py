"""Fixtures for the Graph tests: the emulator, a store, a fake processor, config models.

* ``emulator``: :class:`tests.fakes.graph.GraphEmulator` served on loopback (real HTTP);
* ``store`` / ``processor``: a SQLite AsyncStore and :class:`FakeProcessor` over it;
* ``webhooks``: a :class:`WebhookRegistry` and the daemon's real webhook routes served on
  loopback (``webhooks.url``), for actor tests without the whole daemon;
* :func:`graph_app` / :func:`graph_account`: real ``daemon.config`` models.
"""

from __future__ import annotations

import socket
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import hypercorn.config
import pytest
import trio

from daemon.config import Account, OAuthApp, Secret
from daemon.graph.notifications import WebhookRegistry
from daemon.http.graph_webhooks import with_graph_webhooks
from daemon.http.server import ConnectionCap, serve
from daemon.messages import Outcome, RawMessage
from daemon.store import AsyncStore, open_store
from tests.fakes.graph import GraphEmulator, serve_emulator
from tests.fakes.processor import FakeProcessor

MAILBOX = "support@example.com"
SECRET = b"k" * 32


def graph_app(emulator: GraphEmulator, **overrides: Any) -> OAuthApp:
    values: dict[str, Any] = dict(id="graph", provider="microsoft", client_id="client",
                                  client_secret=Secret("s3cret"), tenant_id="tenant",
                                  graph_base_url=emulator.base_url)
    values.update(overrides)
    return OAuthApp(**values)


def graph_account(**overrides: Any) -> Account:
    values: dict[str, Any] = dict(id="support", email=MAILBOX, auth="graph")
    values.update(overrides)
    return Account(**values)


def mail(subject: str = "Hello", *, message_id: str | None = None, body: str = "Hi.",
         extra: str = "", size: int | None = None) -> bytes:
    mid = message_id or f"<{subject.replace(' ', '-').lower()}@customer.example>"
    raw = (f"From: Ann <ann@customer.example>\r\nTo: {MAILBOX}\r\nSubject: {subject}\r\n"
           f"Message-ID: {mid}\r\nDate: Tue, 1 Dec 2026 10:00:00 +0000\r\n{extra}"
           "MIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n"
           f"{body}\r\n").encode()
    if size is not None:
        raw += (b"x" * 76 + b"\r\n") * (size // 78 + 1)
    return raw


def submit_many_of(processor: FakeProcessor) -> Any:
    async def submit_many(messages: Sequence[RawMessage]) -> list[Outcome]:
        return [await processor.submit(m) for m in messages]
    return submit_many


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
async def emulator() -> AsyncIterator[GraphEmulator]:
    async with serve_emulator(GraphEmulator()) as em:
        yield em


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[AsyncStore]:
    async with AsyncStore(open_store(f"sqlite:///{tmp_path}/postroom.db")) as astore:
        yield astore


@pytest.fixture
def processor(store: AsyncStore) -> FakeProcessor:
    return FakeProcessor(store)


@dataclass
class Webhooks:
    registry: WebhookRegistry
    url: str


async def _not_found(scope: Any, receive: Any, send: Any) -> None:
    if scope["type"] == "lifespan":
        while True:
            event = await receive()
            await send({"type": event["type"] + ".complete"})
            if event["type"] == "lifespan.shutdown":
                return
    await send({"type": "http.response.start", "status": 404, "headers": []})
    await send({"type": "http.response.body", "body": b""})


@pytest.fixture
async def webhooks(store: AsyncStore) -> AsyncIterator[Webhooks]:
    """The real webhook routes on loopback, in front of a 404 app."""
    registry = WebhookRegistry(store, SECRET)
    config = hypercorn.config.Config()
    config.bind = ["127.0.0.1:0"]
    config.graceful_timeout = 0.5
    stop = trio.Event()
    async with trio.open_nursery() as nursery:
        urls = await nursery.start(lambda task_status: serve(
            with_graph_webhooks(_not_found, registry), config, ConnectionCap(100),
            shutdown_trigger=stop.wait, task_status=task_status))
        yield Webhooks(registry, urls[0])
        stop.set()
        nursery.cancel_scope.cancel()


class InlineStore:
    """Runs transactions in the Trio thread, so MockClock's autojump sees every wait."""

    def __init__(self, store: Any) -> None:
        self.store = store

    async def run(self, fn: Any, *args: Any) -> Any:
        await trio.lowlevel.checkpoint()
        with self.store.transaction() as tx:
            return fn(tx, *args)


@dataclass
class InProcess:
    """The emulator and the webhook routes without sockets (for MockClock tests)."""

    emulator: GraphEmulator
    registry: WebhookRegistry
    store: InlineStore
    processor: FakeProcessor
    transport: Any
    webhook_url: str = "http://postroom.test"


@pytest.fixture
async def in_process(tmp_path: Path, nursery: trio.Nursery) -> AsyncIterator[InProcess]:
    """Emulator <-> daemon routes over ``httpx.ASGITransport``; transactions inline."""
    import httpx

    raw = open_store(f"sqlite:///{tmp_path}/postroom.db")
    store = InlineStore(raw)
    registry = WebhookRegistry(store, SECRET)  # type: ignore[arg-type]
    emulator = GraphEmulator()
    emulator.base_url = "http://127.0.0.1:9/v1.0"  # never dialled: ASGITransport
    emulator.push_client = httpx.AsyncClient(transport=httpx.ASGITransport(
        app=with_graph_webhooks(_not_found, registry)))
    emulator._nursery = nursery
    try:
        yield InProcess(emulator, registry, store, FakeProcessor(store),
                        httpx.ASGITransport(app=emulator))
    finally:
        emulator._nursery = None
        await emulator.push_client.aclose()
        raw.close()
