"""The whole daemon: replies over HTTP and ``postroom send``; restarts with SMTP down."""

from __future__ import annotations

from functools import partial
from pathlib import Path

import httpx
import trio

from daemon.actors.outbox import OutboxActor, RetryPolicy
from daemon.app import run_daemon
from daemon.cli import main
from daemon.config import load_config
from daemon.mail.parse import parse_message
from daemon.store import AsyncStore, open_store
from tests.fakes.smtp import free_port
from tests.helpers import drop, wait_for_status, write_config
from tests.outbox.conftest import FAR_FUTURE, customer_mail


async def test_reply_over_http_and_cli_is_sent_into_the_maildir_sent_folder(tmp_path: Path):
    path = write_config(tmp_path, plugins=["plugins_contrib.update_limeobject"])
    port = free_port()
    path.write_text(path.read_text().replace('bind = "127.0.0.1:0"',
                                             f'bind = "127.0.0.1:{port}"'))
    config = load_config(path)
    sent = tmp_path / "Maildir" / ".Sent" / "new"
    stop = trio.Event()
    async with trio.open_nursery() as nursery:
        daemon = await nursery.start(lambda task_status: run_daemon(
            config, stop=stop, handle_signals=False, task_status=task_status))
        intake = daemon.handles["support"].status
        drop(tmp_path / "Maildir", "1.new", customer_mail(
            to="support@demo.example",
            cc="Lisa Lund <lisa@acme.example>, Bob Baker <bob@globex.example>"))
        await wait_for_status(intake, lambda s: s.imported == 1, seconds=10)
        async with httpx.AsyncClient(base_url=daemon.http_urls[0]) as client:
            (message,) = (await client.get("/api/v1/objects/conversationmessage")).json()
            (alex,) = (await client.get("/api/v1/objects/coworker")).json()
            response = await client.post(
                f"/api/v1/conversations/{message['conversation']}/messages",
                json={"coworker": alex["id"], "html": "<p>Fixed it.</p>"})
        assert response.status_code == 202
        await wait_for_status(daemon.outbox.status, lambda s: s.sent == 3, seconds=10)
        code = await trio.to_thread.run_sync(main, [
            "send", str(message["conversation"]), "--coworker", str(alex["id"]),
            "--text", "One more thing.", "--config", str(path)])
        assert code == 0
        await wait_for_status(daemon.outbox.status, lambda s: s.sent == 6, seconds=10)
        stop.set()
    files = sorted(sent.iterdir())
    assert len(files) == 6
    parsed = [parse_message(f.read_bytes()) for f in files]
    assert sorted(p.to[0].email for p in parsed) == sorted(
        ["ann@acme.example", "lisa@acme.example", "bob@globex.example"] * 2)
    assert {p.from_.email for p in parsed} == {"support@demo.example"}
    later = [p.text for p in parsed if "One more thing." in p.text]
    assert len(later) == 3  # ...and each quotes the first answer below the new one
    assert all(t.index("One more thing.") < t.index("Fixed it.") for t in later)


async def test_a_daemon_restart_while_smtp_is_down_loses_nothing_and_sends_nothing_twice(
        make_env, smtp, tmp_path: Path, monkeypatch):
    monkeypatch.setattr("daemon.app.OutboxActor", partial(
        OutboxActor, policy=RetryPolicy(base=0.02, cap=0.1), poll_interval=0.05))
    env = await make_env(smtp=smtp)
    await env.reply(await env.conversation_with_three())
    queued = sorted(i.message_id for i in await env.queued())
    config = env.config
    await env.store.aclose()

    async def run_until(predicate) -> None:
        stop = trio.Event()
        async with trio.open_nursery() as nursery:
            daemon = await nursery.start(lambda task_status: run_daemon(
                config, stop=stop, handle_signals=False, task_status=task_status))
            await wait_for_status(daemon.outbox.status, predicate, seconds=10)
            stop.set()

    smtp.stop()
    await run_until(lambda s: s.retried >= 3)  # every copy tried, refused, rescheduled
    smtp.start()
    await run_until(lambda s: s.sent == 3)
    assert sorted(r.message["Message-ID"].strip("<>") for r in smtp.received) == queued
    async with AsyncStore(open_store(config.daemon.store)) as store:
        assert await store.run(lambda tx: tx.due(FAR_FUTURE)) == []
