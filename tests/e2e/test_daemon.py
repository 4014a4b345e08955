"""The daemon in-process: Maildir intake to objects, the HTTP API, plugins that explode."""

from __future__ import annotations

import email.utils
from pathlib import Path

import httpx
import trio
from structlog.testing import capture_logs

from daemon import hookimpl
from daemon.actors.status import AccountState
from daemon.app import run_daemon
from daemon.config import load_config
from tests.helpers import DEMO, drop, make_message, wait_for_status, write_config


async def test_new_message_is_served_by_the_api_within_a_second(workdir: Path):
    config = load_config(write_config(workdir))
    stop = trio.Event()
    async with trio.open_nursery() as nursery:
        daemon = await nursery.start(lambda task_status: run_daemon(
            config, stop=stop, handle_signals=False, task_status=task_status))
        status = daemon.handles["support"].status
        await wait_for_status(status, lambda s: s.state is AccountState.IDLE, seconds=5)
        url = daemon.http_urls[0]
        drop(workdir / "Maildir", "1.new", make_message(1))
        with trio.fail_after(1.0):
            while status.imported < 1:
                await status.changed.wait()
            async with httpx.AsyncClient(base_url=url) as client:
                response = await client.get("/api/v1/objects/conversationmessage",
                                            params={"emailid": "msg-1@customers.example"})
        assert response.status_code == 200
        (message,) = response.json()
        assert message["subject"] == "Request number 1"
        assert (workdir / "Maildir" / "cur" / "1.new:2,S").exists()
        stop.set()


async def test_demo_messages_thread_and_map(workdir: Path):
    config = load_config(write_config(workdir, http=False))
    for eml in sorted((DEMO / "messages").glob("*.eml")):
        drop(workdir / "Maildir", eml.stem, eml.read_bytes())
    stop = trio.Event()
    async with trio.open_nursery() as nursery:
        daemon = await nursery.start(lambda task_status: run_daemon(
            config, stop=stop, handle_signals=False, task_status=task_status))
        status = daemon.handles["support"].status
        await wait_for_status(status, lambda s: s.imported == 3, seconds=5)
        helpdesks = await daemon.store.run(lambda tx: tx.find("helpdesk"))
        persons = await daemon.store.run(lambda tx: {p.get("email"): p for p in
                                                     tx.find("person")})
        messages = await daemon.store.run(lambda tx: tx.find("conversationmessage"))
        docs = await daemon.store.run(lambda tx: tx.find("document"))
        stop.set()
    assert [h.get("subject") for h in helpdesks] == ["Printer on floor 3 is jammed",
                                                     "Invoice 2231 looks wrong"]
    ann = persons["ann@acme.example"]
    first = helpdesks[0]
    assert first.get("person") == ann.id
    assert first.get("company") == ann.get("company")
    assert first.get("email") == "ann@acme.example"
    assert first.get("source") == "email"
    assert "jams on every second page" in first.get("description")
    by_id = {m.get("emailid"): m for m in messages}
    assert (by_id["req-1.reply-1@acme.example"].get("conversation")
            == by_id["req-1.printer@acme.example"].get("conversation"))
    assert by_id["inv-2231.q@globex.example"].get("conversation") != by_id[
        "req-1.printer@acme.example"].get("conversation")
    assert [d.get("comment") for d in docs] == ["invoice-2231.txt"]


class ExplodingPlugin:
    """Raises in every hook it implements."""

    @hookimpl
    def postroom_configure(self, config, settings):
        raise RuntimeError("boom: configure")

    @hookimpl
    def postroom_classify(self, message, classification, account):
        raise RuntimeError("boom: classify")

    @hookimpl
    def postroom_allow_sender(self, message):
        raise RuntimeError("boom: allow_sender")

    @hookimpl
    def postroom_identify_conversation(self, message, candidates):
        raise RuntimeError("boom: identify")

    @hookimpl
    def postroom_conversation_parent_properties(self, message, limetype, properties):
        raise RuntimeError("boom: parent_properties")

    @hookimpl
    def postroom_message_imported(self, event):
        raise RuntimeError("boom: imported")

    @hookimpl
    def postroom_http_blueprints(self):
        raise RuntimeError("boom: blueprints")

    @hookimpl
    def postroom_shutdown(self):
        raise RuntimeError("boom: shutdown")


exploding = ExplodingPlugin()


async def test_a_plugin_raising_in_every_hook_does_not_stop_imports(workdir: Path):
    config = load_config(write_config(workdir, plugins=["tests.e2e.test_daemon:exploding"]))
    drop(workdir / "Maildir", "1.a", make_message(1))
    drop(workdir / "Maildir", "2.b", make_message(2, reply_to=1))
    stop = trio.Event()
    with capture_logs() as logs:
        async with trio.open_nursery() as nursery:
            daemon = await nursery.start(lambda task_status: run_daemon(
                config, stop=stop, handle_signals=False, task_status=task_status))
            status = daemon.handles["support"].status
            await wait_for_status(status, lambda s: s.imported == 2, seconds=5)
            await trio.testing.wait_all_tasks_blocked()
            stop.set()
    assert status.failed == 0
    failures = [e for e in logs if e["event"] == "plugin.hook_failed"]
    assert {e["plugin"] for e in failures} == {"tests.e2e.test_daemon:exploding"}
    hooks = {e["hook"] for e in failures}
    assert {"postroom_configure", "postroom_classify", "postroom_identify_conversation",
            "postroom_conversation_parent_properties", "postroom_message_imported",
            "postroom_http_blueprints", "postroom_shutdown"} <= hooks


async def test_automatic_reply_leaves_at_once_through_the_maildir_sent_folder(workdir: Path):
    path = write_config(workdir, http=False)
    path.write_text(path.read_text() + 'auto_reply = { enabled = true, body = "Got it!" }\n')
    config = load_config(path)
    stop = trio.Event()
    async with trio.open_nursery() as nursery:
        daemon = await nursery.start(lambda task_status: run_daemon(
            config, stop=stop, handle_signals=False, task_status=task_status))
        outbox = daemon.outbox.status
        fresh = make_message(1).replace(b"Tue, 24 Nov 2026 08:00:00 +0000",
                                        email.utils.formatdate().encode())
        drop(workdir / "Maildir", "1", fresh)
        # the outbox polls every 2 s: this needs the wake-up
        await wait_for_status(outbox, lambda s: s.sent >= 1, seconds=1.0)
        stop.set()
    (sent,) = (workdir / "Maildir" / ".Sent" / "new").iterdir()
    text = sent.read_bytes()
    assert b"Got it!" in text
    assert b"To: Customer 1 <ann@acme.example>" in text or b"ann@acme.example" in text
    assert b"Auto-Submitted: auto-replied" in text
