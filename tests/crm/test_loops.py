"""Mail loops stop: between two postroom installations, and with a bot that marks nothing."""

from __future__ import annotations

from email import message_from_bytes

from daemon.messages import OutcomeStatus
from tests.crm.conftest import mail

AUTO_REPLY = {"enabled": True, "body": "We got your message.", "rate_limit_per_hour": 3}


async def two_installations(make_harness, tmp_path):
    a = await make_harness(root=tmp_path / "a", with_outbox=True,
                           account={"auto_reply": AUTO_REPLY},
                           runtime={"allowAutomaticEmails": True})
    b = await make_harness(root=tmp_path / "b", with_outbox=True,
                           daemon={"installation_id": "inst-b", "mail_domain": "b.example"},
                           account={"email": "support@b.example",
                                    "aliases": ["help@b.example"],
                                    "auto_reply": AUTO_REPLY},
                           runtime={"allowAutomaticEmails": True})
    return a, b


async def test_two_postroom_installations_do_not_loop(make_harness, tmp_path):
    a, b = await two_installations(make_harness, tmp_path)
    # B's mailbox writes to A (say, a supplier's helpdesk writing to ours).
    await a.feed(mail("Order 77", sender="support@b.example", message_id="o77@b.example"))
    (reply,) = await a.outbox()
    headers = message_from_bytes(reply.raw)
    assert headers["Auto-Submitted"].startswith("auto-")
    assert headers["X-Postroom-Loop"] == "inst-a"
    assert reply.recipient == "support@b.example"
    # A's automatic reply reaches B: stored (automatic mail is allowed there), not answered.
    outcome = await b.feed(reply.raw)
    assert outcome.status is OutcomeStatus.IMPORTED
    assert "header.auto-submitted" in outcome.rules
    assert await b.outbox() == []


async def test_a_bot_that_marks_nothing_is_stopped_by_the_rate_limit(make_harness, tmp_path):
    a, _ = await two_installations(make_harness, tmp_path)
    # A naive responder answers every mail with a new, unthreaded, unmarked message.
    for n in range(10):
        await a.feed(mail(f"Thank you for contacting us ({n})", sender="bot@naive.example",
                          message_id=f"bot-{n}@naive.example"))
    replies = [item for item in await a.outbox() if item.recipient == "bot@naive.example"]
    assert len(replies) == AUTO_REPLY["rate_limit_per_hour"]


async def test_our_own_mail_echoed_back_is_dropped(make_harness, tmp_path):
    a, _ = await two_installations(make_harness, tmp_path)
    await a.feed(mail("Hello", message_id="h1@acme.example"))
    (reply,) = await a.outbox()
    outcome = await a.feed(reply.raw)  # e.g. a forwarding rule sends it back to us
    assert outcome.status is OutcomeStatus.DISCARDED
    assert len(await a.outbox()) == 1
