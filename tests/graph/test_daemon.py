"""The whole daemon on Graph accounts: the real processor, the real HTTP server on
loopback, the emulator pushing to it, and replies going out through Graph."""

from __future__ import annotations

import base64
import email
import email.policy
import shutil
import textwrap
from pathlib import Path
from typing import Any

import httpx
import pytest
import trio

from daemon.app import open_daemon
from daemon.config import load_config
from daemon.graph.client import static_token
from tests.e2e.conftest import DEMO
from tests.fakes.graph import GraphEmulator, serve_emulator
from tests.graph.conftest import free_port

PERSONAL = "support@demo.example"
SHARED = "shared@demo.example"


def customer_mail(subject: str, to: str, message_id: str) -> bytes:
    return (f"From: Ann Andersson <ann@acme.example>\r\nTo: {to}\r\nSubject: {subject}\r\n"
            f"Message-ID: {message_id}\r\nDate: Tue, 1 Dec 2026 10:00:00 +0000\r\n"
            "MIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n"
            "The printer is on fire.\r\n").encode()


def write_config(root: Path, emulator: GraphEmulator, port: int) -> Path:
    shutil.copy(DEMO / "runtime.json", root / "runtime.json")
    shutil.copy(DEMO / "seed.json", root / "seed.json")
    (root / "postroom.toml").write_text(textwrap.dedent(f"""\
        [daemon]
        store = "sqlite:///postroom.db"
        runtime = "runtime.json"
        seed_objects = "seed.json"
        log_format = "json"
        shutdown_grace_seconds = 2
        webhook_base_url = "http://127.0.0.1:{port}"

        [http]
        bind = "127.0.0.1:{port}"

        [[oauth_apps]]
        id = "graph"
        provider = "microsoft"
        client_id = "client"
        client_secret_env = "POSTROOM_TEST_GRAPH_SECRET"
        tenant_id = "tenant"
        graph_base_url = "{emulator.base_url}"

        [[accounts]]
        id = "support"
        name = "Support Team"
        email = "{PERSONAL}"
        auth = "graph"
        backoff_cap_seconds = 1

        [[accounts]]
        id = "shared"
        name = "Shared Desk"
        email = "{SHARED}"
        username = "agent@demo.example"
        auth = "graph"
        graph_poll_interval_seconds = 0.2
        backoff_cap_seconds = 1
        """))
    return root / "postroom.toml"


@pytest.fixture
async def emulator() -> Any:
    async with serve_emulator(GraphEmulator()) as em:
        em.retry_window = 0.5
        yield em


@pytest.fixture
def config(tmp_path: Path, emulator: GraphEmulator, monkeypatch: pytest.MonkeyPatch) -> Any:
    monkeypatch.setenv("POSTROOM_TEST_GRAPH_SECRET", "s3cret")
    return load_config(write_config(tmp_path, emulator, free_port()))


def tokens(emulator: GraphEmulator) -> Any:
    return lambda account, app: static_token(emulator.token)


async def until(status: Any, predicate: Any, seconds: float = 10.0) -> None:
    with trio.fail_after(seconds):
        while not predicate(status):
            await status.changed.wait()


def subscribed(status: Any) -> bool:
    return status.extra.get("subscription", {}).get("state") == "active" and status.extra.get(
        "rounds", 0) >= 1


async def messages(daemon: Any) -> list[Any]:
    return await daemon.store.run(lambda tx: tx.find("conversationmessage"))


async def test_created_message_is_committed_within_a_second_of_its_notification(
        emulator, config):
    async with open_daemon(config, graph_tokens=tokens(emulator)) as daemon:
        status = daemon.handles["support"].status
        await until(status, subscribed)
        started = trio.current_time()
        emulator.deliver(PERSONAL, customer_mail("Fire", PERSONAL, "<fire@acme.example>"))
        await until(status, lambda s: s.imported == 1, seconds=1)
        elapsed = trio.current_time() - started
        assert elapsed < 1
        assert emulator.delivered_notifications == 1
        (stored,) = await messages(daemon)
        assert stored.get("subject") == "Fire"
        assert daemon.status()["graph_webhooks"]["notifications"] == 1
        metrics = await daemon.metrics_text()
        assert 'postroom_graph_webhook_total{kind="notifications"} 1.0' in metrics
        assert 'postroom_graph_throttled_total{account="support"} 0.0' in metrics
    print(f"notification -> committed: {elapsed * 1000:.0f} ms")


async def test_mail_arriving_while_stopped_beyond_the_retry_window_is_imported_once(
        emulator, config):
    async with open_daemon(config, graph_tokens=tokens(emulator)) as daemon:
        status = daemon.handles["support"].status
        await until(status, subscribed)
        emulator.deliver(PERSONAL, customer_mail("Before", PERSONAL, "<before@acme.example>"))
        await until(status, lambda s: s.imported == 1)
    for n in range(3):
        emulator.deliver(PERSONAL, customer_mail(f"Down {n}", PERSONAL, f"<down{n}@acme.example>"))
    with trio.fail_after(10):
        while emulator.dropped_notifications < 3:   # Graph gave up on them
            await trio.sleep(0.05)
    async with open_daemon(config, graph_tokens=tokens(emulator)) as daemon:
        status = daemon.handles["support"].status
        await until(status, lambda s: s.imported == 3 and s.state.value == "idle")
        assert status.duplicates == 0
        ids = sorted(m.get("messageid") or "" for m in await messages(daemon))
        assert len(await messages(daemon)) == 4, ids
        # the subscription survived the restart: the same one, still validating
        assert len(emulator.subscriptions) == 1
        emulator.deliver(PERSONAL, customer_mail("After", PERSONAL, "<after@acme.example>"))
        await until(status, lambda s: s.imported == 4, seconds=2)


async def reply(daemon: Any, conversation: int) -> None:
    async with httpx.AsyncClient(base_url=daemon.http_urls[0]) as client:
        coworkers = (await client.get("/api/v1/objects/coworker")).json()
        response = await client.post(f"/api/v1/conversations/{conversation}/messages",
                                     json={"coworker": coworkers[0]["id"],
                                           "html": "<p>Extinguished.</p>"})
    assert response.status_code == 202, response.text


async def test_replies_go_out_as_mime_from_personal_and_json_from_shared_mailboxes(
        emulator, config):
    async with open_daemon(config, graph_tokens=tokens(emulator)) as daemon:
        shared = daemon.handles["shared"].status
        support = daemon.handles["support"].status
        assert shared.extra["mode"] == "polling"
        await until(support, subscribed)
        emulator.deliver(PERSONAL, customer_mail("Fire", PERSONAL, "<fire@acme.example>"))
        emulator.deliver(SHARED, customer_mail("Smoke", SHARED, "<smoke@acme.example>"))
        await until(shared, lambda s: s.imported == 1)
        await until(support, lambda s: s.imported == 1)
        assert not emulator.active_subscriptions(SHARED)
        by_subject = {m.get("subject"): m for m in await messages(daemon)}
        for subject in ("Fire", "Smoke"):
            await reply(daemon, by_subject[subject].get("conversation"))
        await until(daemon.outbox.status, lambda s: s.sent == 2)
        items = await daemon.store.run(lambda tx: tx.outbox_by_status("sent"))
    ours = {i.account: f"<{i.message_id}>" for i in items}
    (mime,) = [s for s in emulator.sent if s.kind == "mime"]
    (json_sent,) = [s for s in emulator.sent if s.kind == "json"]
    assert mime.mailbox == PERSONAL and mime.mime is not None
    parsed = email.message_from_bytes(mime.mime, policy=email.policy.default)
    assert parsed["Message-ID"].strip() == ours["support"]
    assert parsed["In-Reply-To"].strip() == "<fire@acme.example>"
    assert json_sent.mailbox == SHARED
    message = json_sent.message
    assert message["from"]["emailAddress"]["address"] == SHARED
    assert message["internetMessageId"] == ours["shared"]
    assert message["replyTo"]["inReplyTo"] == "<smoke@acme.example>"   # via createReply
    assert message["toRecipients"] == [{"emailAddress": {"address": "ann@acme.example"}}]
    assert "Extinguished." in message["body"]["content"]
    assert any(m.internet_message_id == ours["shared"]
               for m in emulator.messages_in(SHARED, "sentitems"))
    assert base64  # (the MIME went base64-encoded: the emulator decoded it)
