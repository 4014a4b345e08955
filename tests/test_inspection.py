"""``postroom inspect``: parsed fields, verdicts and the conversation a message would join."""

from __future__ import annotations

import io
import json
from pathlib import Path

from daemon.cli import main
from daemon.config import load_config
from daemon.inspection import inspect_files
from tests.helpers import DEMO, wait_for_status, write_config

CORPUS = Path(__file__).parent / "corpus"


def test_json_lines_one_per_file_with_classification_and_bounce():
    out = io.StringIO()
    code = inspect_files([CORPUS / "postfix-dsn.eml", CORPUS / "exchange-oof-en.eml"],
                         as_json=True, out=out)
    assert code == 0
    dsn, oof = (json.loads(line) for line in out.getvalue().splitlines())
    assert dsn["file"].endswith("postfix-dsn.eml")
    assert dsn["classification"]["kind"] == "bounce"
    assert dsn["bounce"]["status"] == "5.1.1"
    assert dsn["bounce"]["permanent"] is True
    assert oof["classification"]["kind"] == "automatic"
    assert oof["classification"]["out_of_office"] is True
    assert "would_join" not in oof  # no configuration, no store


async def test_with_a_store_it_says_which_conversation_and_why(tmp_path: Path):
    import trio

    from daemon.app import run_daemon
    from tests.helpers import drop

    config = load_config(write_config(tmp_path, http=False))
    drop(tmp_path / "Maildir", "1", (DEMO / "messages" / "0001.request.eml").read_bytes())
    stop = trio.Event()
    async with trio.open_nursery() as nursery:
        daemon = await nursery.start(lambda task_status: run_daemon(
            config, stop=stop, handle_signals=False, task_status=task_status))
        status = daemon.handles["support"].status
        await wait_for_status(status, lambda s: s.imported >= 1, seconds=5)
        stop.set()
    out = io.StringIO()
    inspect_files([DEMO / "messages" / "0003.reply.eml",
                   DEMO / "messages" / "0001.request.eml",
                   DEMO / "messages" / "0002.invoice.eml"], config=config, as_json=True,
                  out=out)
    reply, original, other = (json.loads(line) for line in out.getvalue().splitlines())
    assert reply["would_join"]["method"] == "references"
    assert isinstance(reply["would_join"]["conversation"], int)
    assert original["would_join"]["duplicate_of"].startswith("maildir:support:")
    assert other["would_join"] == {"conversation": None, "method": "new conversation"}
    assert other["attachments"][0]["filename"] == "invoice-2231.txt"


def test_cli_readable_report(capsys):
    assert main(["inspect", str(CORPUS / "plain-customer.eml"), "--config",
                 "does-not-exist.toml"]) == 0
    text = capsys.readouterr().out
    assert "classification: normal" in text
    assert "subject:" in text


def test_issue_9_control_characters_in_a_message_are_escaped_in_both_outputs(tmp_path: Path):
    import base64

    evil = "Invoice\x1b]0;owned\x07\x1b[2J\r\nFAKE: line\x9b31m \u202eevil"
    encoded = base64.b64encode(evil.encode()).decode()
    (tmp_path / "evil.eml").write_bytes(
        b"From: Mallory <m@evil.example>\r\nTo: support@demo.example\r\n"
        + f"Subject: =?utf-8?b?{encoded}?=\r\n".encode()
        + b"Message-ID: <evil@evil.example>\r\n\r\nHello\x1b[5m there\r\nsecond line\r\n")
    out = io.StringIO()
    assert inspect_files([tmp_path / "evil.eml"], out=out) == 0
    report = out.getvalue()
    for raw in ("\x1b", "\x07", "\r", "\x9b", "\u202e"):
        assert raw not in report
    assert "subject:        Invoice\\x1b]0;owned\\x07\\x1b[2J FAKE: line\\x9b31m \\u202eevil\n" \
        in report
    assert "Hello\\x1b[5m there\n" in report  # the text preview keeps its line breaks
    out = io.StringIO()
    assert inspect_files([tmp_path / "evil.eml"], as_json=True, out=out) == 0
    line = out.getvalue()
    assert not any(c in line for c in ("\x1b", "\x9b", "\u202e", "\r"))
    assert json.loads(line)["subject"] == evil.replace("\r\n", " ")  # the data is intact


def test_the_outcome_is_the_pipelines_own_discarded_and_why(tmp_path: Path, monkeypatch):
    """Issue 14: inspect used to say "new conversation" for mail the pipeline discards."""
    import sys

    from tests.e2e.conftest import make_message

    toml = write_config(tmp_path, http=False)
    runtime = json.loads((tmp_path / "runtime.json").read_text())
    (tmp_path / "runtime.json").write_text(json.dumps({**runtime,
                                                       "allowAutomaticEmails": False}))
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(make_message(1))))
    assert main(["deliver", "support", "--config", str(toml)]) == 0  # the store exists
    out = io.StringIO()
    inspect_files([CORPUS / "exchange-oof-en.eml", DEMO / "messages" / "0002.invoice.eml"],
                  config=load_config(toml), as_json=True, out=out)
    oof, invoice = (json.loads(line) for line in out.getvalue().splitlines())
    reason = "automatic mail that matches no conversation (allowAutomaticEmails)"
    assert oof["outcome"] == {"status": "discarded", "reason": reason}
    assert oof["would_join"] == {"conversation": None, "method": "discarded",
                                 "reason": reason}
    assert invoice["outcome"] == {"status": "imported", "reason": None,
                                  "new_conversation": True, "conversation": None,
                                  "parent_limetype": "helpdesk"}
    from daemon.store import open_store

    store = open_store(load_config(toml).daemon.store)
    try:
        with store.transaction() as tx:
            assert len(tx.find("helpdesk")) == 1  # the dry run kept nothing
            assert [r.source_key for r in tx.list_raw()] == [
                r.source_key for r in tx.list_raw() if r.source_key.startswith("deliver:")]
            assert tx.next_number("parent:helpdesk") == 2  # nor a number
    finally:
        store.close()


def test_json_lists_every_report_recipient_the_sender_source_and_rules():
    out = io.StringIO()
    inspect_files([CORPUS / "bounces" / "postfix-text.eml", CORPUS / "sender-fallback.eml",
                   CORPUS / "bounces" / "sendmail-warning.eml"], as_json=True, out=out)
    bounce, fallback, warning = (json.loads(line) for line in out.getvalue().splitlines())
    report = bounce["report"]
    assert (report["kind"], report["format"]) == ("failure", "postfix")
    assert {"bounce.format.postfix", "bounce.text"} <= set(bounce["classification"]["rules"])
    assert [(r["recipient"], r["action"], r["status"], r["reason"], r["remote_mta"],
             r["permanent"]) for r in report["recipients"]] == [
        ("ann.gone@example.net", "failed", "5.1.1", "user-unknown", "mx1.example.net", True),
        ("bo.full@example.org", "failed", "5.2.2", "mailbox-full", "mx.example.org", False)]
    assert all(r["original_message_id"] == "pr.postfixtext.1111@example.com"
               and r["diagnostic"] for r in report["recipients"])
    assert fallback["sender"] == {"address": "agent@kund.example.se", "name": "Helpdesk Agent",
                                  "source": "sender", "defects": ["bad-address:from"]}
    assert bounce["sender"]["source"] == "from"
    assert warning["report"]["kind"] == "delay"
    assert warning["report"]["recipients"][0]["action"] == "delayed"
    assert warning["classification"]["kind"] == "automatic"


def test_readable_report_shows_recipients_and_sender_source():
    out = io.StringIO()
    inspect_files([CORPUS / "bounces" / "exim-text.eml", CORPUS / "sender-fallback.eml"],
                  out=out)
    text = out.getvalue()
    assert "report:         failure (exim)" in text
    assert "carla@example.org failed 5.1.1 [user-unknown] via mx.example.org" in text
    assert "sender from:    sender (bad-address:from)" in text
