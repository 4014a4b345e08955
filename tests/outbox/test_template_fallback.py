"""Issue 9: a template that fails at run time never stops an import or a reply."""

from __future__ import annotations

from pathlib import Path

from structlog.testing import capture_logs

from daemon.actors.outbox import OutboxActor
from daemon.messages import OutcomeStatus
from tests.actors.test_outbox import FAST, running
from tests.fakes.smtp import FakeSmtp
from tests.helpers import wait_for_status
from tests.outbox.conftest import customer_mail


def broken_template(tmp_path: Path, source: str = "<p>Hi</p>\n<p>{{ 1/0 }}</p>\n") -> None:
    (tmp_path / "templates").mkdir(exist_ok=True)
    (tmp_path / "templates" / "broken.html").write_text(source)


async def test_a_zero_division_in_the_template_sends_with_the_default(make_env, smtp: FakeSmtp,
                                                                      tmp_path: Path):
    broken_template(tmp_path)
    env = await make_env(smtp=smtp, account={
        "template": "broken",
        "auto_reply": {"enabled": True, "body": "We got it, {{ recipient_name }}."}})
    with capture_logs() as logs:
        outcome = await env.feed(customer_mail())
        assert outcome.status is OutcomeStatus.IMPORTED  # the import did not fail
        message = await env.store.run(
            lambda tx: tx.get("conversationmessage", outcome.conversation_message_id))
        await env.reply(message.get("conversation"), "<p>Fixed it.</p>")
    fallbacks = [e for e in logs if e["event"] == "outbox.template_fallback"]
    assert len(fallbacks) == 2  # the automatic reply and the agent's reply
    assert all(e["template"] == "broken" and e["line"] == 2 for e in fallbacks)
    assert "ZeroDivisionError" in fallbacks[0]["error"]
    events = await env.store.run(lambda tx: tx.events_since(0, limit=100))
    assert [e.data["template"] for e in events if e.kind == "outbox.template_fallback"] == [
        "broken", "broken"]

    actor = OutboxActor(env.config, env.store, policy=FAST, poll_interval=0.05,
                        sent_copy=None)
    async with running(actor):
        actor.wakeup()
        await wait_for_status(actor.status, lambda s: s.sent == 2, seconds=10)
    bodies = [got.message.get_body(("html",)).get_content() for got in smtp.to(
        "ann@acme.example")]
    assert len(bodies) == 2
    assert all("<!DOCTYPE html>" in b and "Reply to this email" in b for b in bodies)
    assert any("We got it, Ann Andersson." in b for b in bodies)
    assert any("Fixed it." in b for b in bodies)
