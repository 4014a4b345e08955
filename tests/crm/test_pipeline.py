"""From raw bytes to stored objects: threading, bounces, automatic mail, failures."""

from __future__ import annotations

from daemon import hookimpl
from daemon.mail.ids import make_message_id, text_marker
from daemon.messages import OutcomeStatus
from tests.crm.conftest import SECRET, mail

DSN = """\
From: Mail Delivery System <MAILER-DAEMON@mx.a.example>
To: support@a.example
Subject: Undelivered Mail Returned to Sender
Message-ID: <dsn-1@mx.a.example>
Auto-Submitted: auto-replied
MIME-Version: 1.0
Content-Type: multipart/report; report-type=delivery-status; boundary="B"

--B
Content-Type: text/plain

I'm sorry to have to inform you that your message could not be delivered.

--B
Content-Type: message/delivery-status

Reporting-MTA: dns; mx.a.example

Final-Recipient: rfc822; {recipient}
Action: failed
Status: 5.1.1
Diagnostic-Code: smtp; 550 5.1.1 <{recipient}>: Recipient address rejected: User unknown

--B
Content-Type: text/rfc822-headers

From: support@a.example
To: {recipient}
Subject: Re: Help please
Message-ID: <{original}>

--B--
"""


async def test_new_ticket_maps_parent_followers_and_message(make_harness):
    h = await make_harness()
    outcome = await h.feed(mail(message_id="m1@acme.example", cc="Lisa <lisa@acme.example>",
                                to="support@a.example, help@a.example"))
    assert outcome.status is OutcomeStatus.IMPORTED
    helpdesk = await h.one("helpdesk")
    ann = await h.one("person", email="ann@acme.example")
    assert helpdesk.get("subject") == "Help please"
    assert helpdesk.get("person") == ann.id
    assert helpdesk.get("company") == ann.get("company")
    conversation = await h.one("conversation")
    assert conversation.get("helpdesk") == helpdesk.id
    assert helpdesk.get("conversation") == conversation.id
    followers = {f.get("email"): f for f in await h.find("follower")}
    assert set(followers) == {"ann@acme.example", "lisa@acme.example"}  # never our aliases
    assert followers["ann@acme.example"].get("person") == ann.id
    levels = {m.get("follower"): m.get("participationlevel")
              for m in await h.find("messagefollower")}
    assert levels == {followers["ann@acme.example"].id: "from",
                      followers["lisa@acme.example"].id: "cc"}


async def test_reply_threaded_by_in_reply_to(make_harness):
    h = await make_harness()
    await h.feed(mail(message_id="m1@acme.example"))
    await h.feed(mail("Re: Help please", message_id="m2@acme.example",
                      in_reply_to="m1@acme.example"))
    first, second = await h.find("conversationmessage")
    assert first.get("conversation") == second.get("conversation")
    assert len(await h.find("helpdesk")) == 1


async def test_reply_threaded_by_references_nearest_first(make_harness):
    h = await make_harness()
    await h.feed(mail("First", message_id="m1@acme.example"))
    await h.feed(mail("Second", message_id="m2@acme.example"))
    await h.feed(mail("Re: Second", message_id="m3@acme.example",
                      references="<m1@acme.example> <unknown@x> <m2@acme.example>"))
    by_id = {m.get("emailid"): m.get("conversation")
             for m in await h.find("conversationmessage")}
    assert by_id["m3@acme.example"] == by_id["m2@acme.example"] != by_id["m1@acme.example"]


async def test_reply_threaded_by_body_marker_after_message_id_rewrite(make_harness):
    h = await make_harness()
    await h.feed(mail(message_id="m1@acme.example"))
    conversation = await h.one("conversation")
    ours = make_message_id(SECRET, conversation_id=conversation.id, message_follower_id=None,
                           installation="inst-a", domain="a.example")
    quoted = f"Thanks!\n\n> Hello Ann,\n> we are on it.\n> {text_marker(ours)}\n"
    await h.feed(mail("Re: Help please", message_id="m2@acme.example",
                      in_reply_to="AM0PR01MB1234.rewritten@eurprd01.outlook.com",
                      body=quoted))
    messages = await h.find("conversationmessage")
    assert {m.get("conversation") for m in messages} == {conversation.id}


async def test_signed_id_from_another_installation_is_not_trusted(make_harness):
    h = await make_harness()
    await h.feed(mail(message_id="m1@acme.example"))
    conversation = await h.one("conversation")
    foreign = make_message_id(b"x" * 32, conversation_id=conversation.id,
                              message_follower_id=None, installation="inst-a",
                              domain="a.example")
    await h.feed(mail("Re: Help please", message_id="m2@acme.example", in_reply_to=foreign))
    assert len(await h.find("conversation")) == 2


async def test_subject_tag_from_a_follower_joins_from_a_stranger_starts_new(make_harness):
    h = await make_harness(runtime={"identificationMethod": "messageId,subject"})
    await h.feed(mail(message_id="m1@acme.example"))
    conversation = await h.one("conversation")
    tag = f"Re: Help please [#{conversation.id}]"
    await h.feed(mail(tag, message_id="m2@acme.example"))
    await h.feed(mail(tag, sender="Mallory <mallory@evil.example>",
                      message_id="m3@evil.example"))
    by_id = {m.get("emailid"): m.get("conversation")
             for m in await h.find("conversationmessage")}
    assert by_id["m2@acme.example"] == conversation.id
    assert by_id["m3@evil.example"] != conversation.id


async def test_same_message_twice_is_a_duplicate(make_harness):
    h = await make_harness()
    raw = mail(message_id="m1@acme.example")
    assert (await h.feed(raw)).status is OutcomeStatus.IMPORTED
    assert (await h.feed(raw)).status is OutcomeStatus.DUPLICATE
    assert len(await h.find("conversationmessage")) == 1


async def test_messages_without_message_id_deduplicate_by_content(make_harness):
    h = await make_harness()
    raw = mail()
    assert (await h.feed(raw)).status is OutcomeStatus.IMPORTED
    assert (await h.feed(raw)).status is OutcomeStatus.DUPLICATE
    assert (await h.feed(mail(body="Something else\n"))).status is OutcomeStatus.IMPORTED


async def test_bounce_becomes_an_error_on_the_right_message_follower(make_harness):
    h = await make_harness()
    await h.feed(mail(message_id="m1@acme.example", cc="lisa@acme.example"))
    lisa = await h.one("follower", email="lisa@acme.example")
    message = await h.one("conversationmessage")
    sent_to_lisa = await h.store.run(lambda tx: tx.create("messagefollower", {
        "follower": lisa.id, "conversationmessage": message.id,
        "participationlevel": "to", "messageid": "out-7.lisa@a.example"}))
    dsn = DSN.format(recipient="lisa@acme.example", original="out-7.lisa@a.example")
    outcome = await h.feed(dsn.replace("\n", "\r\n").encode())
    assert outcome.status is OutcomeStatus.IMPORTED
    error = await h.one("conversationmessageerror")
    assert error.get("messagefollower") == sent_to_lisa
    assert error.get("type") == "bounce"
    assert "5.1.1" in error.get("errormessage")
    assert (await h.one("follower", email="lisa@acme.example")).get("failing") is True
    assert len(await h.find("conversation")) == 1  # a bounce never opens a conversation


async def test_unmatched_bounce_is_discarded_not_a_ticket(make_harness):
    h = await make_harness(runtime={"allowAutomaticEmails": True})
    dsn = DSN.format(recipient="x@y.example", original="never-sent@a.example")
    outcome = await h.feed(dsn.replace("\n", "\r\n").encode())
    assert outcome.status is OutcomeStatus.DISCARDED
    assert await h.find("helpdesk") == []


OOF = {"Auto-Submitted": "auto-replied", "X-Auto-Response-Suppress": "All"}


async def test_out_of_office_is_stored_without_reply_and_parent_untouched(make_harness):
    queued = []
    h = await make_harness(account={"auto_reply": {"enabled": True, "body": "Thanks!"}},
                           queue_mail=lambda tx, account, **kw: queued.append(kw) or [1])
    await h.feed(mail(message_id="m1@acme.example"))
    assert [q["kind"] for q in queued] == ["auto_reply"]
    before = (await h.one("helpdesk")).props
    outcome = await h.feed(mail("Automatic reply: Help please", message_id="oof@acme.example",
                                in_reply_to="m1@acme.example", headers=OOF,
                                body="I am out of the office until Monday.\n"))
    assert outcome.status is OutcomeStatus.IMPORTED
    assert "subject.out-of-office" in outcome.rules or "header.auto-submitted" in outcome.rules
    assert (await h.one("helpdesk")).props == before
    assert [q["kind"] for q in queued] == ["auto_reply"]  # no reply, no notification
    stored = await h.one("conversationmessage", emailid="oof@acme.example")
    assert stored.get("kind") == "automatic"


async def test_automatic_mail_without_conversation_is_discarded_when_not_allowed(make_harness):
    h = await make_harness(runtime={"allowAutomaticEmails": False})
    outcome = await h.feed(mail("Your weekly report", sender="reports@saas.example",
                                message_id="r1@saas.example",
                                headers={"Auto-Submitted": "auto-generated"}))
    assert outcome.status is OutcomeStatus.DISCARDED
    assert await h.find("helpdesk") == []
    kept = await h.raw(outcome.source_key)
    assert kept.status == "discarded" and kept.raw  # raw bytes kept


async def test_automatic_mail_creates_a_parent_when_allowed(make_harness):
    h = await make_harness(runtime={"allowAutomaticEmails": True})
    outcome = await h.feed(mail("Your weekly report", sender="reports@saas.example",
                                message_id="r1@saas.example",
                                headers={"Auto-Submitted": "auto-generated"}))
    assert outcome.status is OutcomeStatus.IMPORTED
    assert len(await h.find("helpdesk")) == 1


async def test_whitelisted_bot_may_open_a_ticket_when_automatic_mail_is_not_allowed(
        make_harness):
    h = await make_harness(runtime={"allowAutomaticEmails": False})
    h.processor.pm.get_plugin("whitelist").configure(["alerts@monitor.example"], [])
    ok = await h.feed(mail("Disk full", sender="alerts@monitor.example",
                           message_id="a1@monitor.example",
                           headers={"Auto-Submitted": "auto-generated"}))
    other = await h.feed(mail("Promo", sender="news@shop.example",
                              message_id="p1@shop.example", headers={"Precedence": "bulk"}))
    assert ok.status is OutcomeStatus.IMPORTED
    assert other.status is OutcomeStatus.DISCARDED


async def test_our_own_mail_coming_back_is_discarded(make_harness):
    h = await make_harness()
    outcome = await h.feed(mail(sender="Support <help@a.example>", message_id="x@a.example"))
    assert outcome.status is OutcomeStatus.DISCARDED
    assert "loop" in outcome.reason


async def test_reply_notifies_other_followers_not_for_automatic_mail(make_harness):
    queued = []
    h = await make_harness(queue_mail=lambda tx, account, **kw: queued.append(kw) or [])
    await h.feed(mail(message_id="m1@acme.example", cc="lisa@acme.example"))
    await h.feed(mail("Re: Help please", sender="lisa@acme.example",
                      message_id="m2@acme.example", in_reply_to="m1@acme.example"))
    await h.feed(mail("Auto: Re: Help please", sender="lisa@acme.example",
                      message_id="m3@acme.example", in_reply_to="m1@acme.example",
                      headers=OOF))
    assert [(q["kind"], q["author_email"]) for q in queued] == [
        ("notification", "lisa@acme.example")]


async def test_auto_reply_skips_old_messages_and_is_rate_limited(make_harness):
    from datetime import timedelta

    from tests.crm.conftest import NOW

    queued = []
    h = await make_harness(
        account={"auto_reply": {"enabled": True, "body": "Thanks!", "max_age_hours": 24,
                                "rate_limit_per_hour": 2}},
        queue_mail=lambda tx, account, **kw: queued.append(kw) or [])
    await h.feed(mail("Old", message_id="o1@acme.example"),
                 received_at=NOW - timedelta(hours=30))
    assert queued == []
    for n in range(4):
        await h.feed(mail(f"New {n}", message_id=f"n{n}@acme.example"))
    assert len(queued) == 2
    assert all(q["only"] == frozenset({"ann@acme.example"}) for q in queued)


async def test_a_message_that_breaks_processing_is_kept_with_an_error(make_harness):
    h = await make_harness(plugins=["tests.crm.test_pipeline:breaker"])
    bad = await h.feed(mail("BREAK ME", message_id="bad@acme.example"))
    good = await h.feed(mail("Fine", message_id="good@acme.example"))
    assert bad.status is OutcomeStatus.FAILED
    assert good.status is OutcomeStatus.IMPORTED
    kept = await h.raw(bad.source_key)
    assert kept.status == "failed" and b"BREAK ME" in kept.raw
    assert "not JSON serializable" in kept.error
    error = await h.one("conversationmessageerror")
    assert error.get("type") == "import"


async def test_too_large_message_is_recorded_not_downloaded(make_harness):
    from daemon.messages import RawMessage

    h = await make_harness()
    outcome = await h.processor.process(RawMessage(account="support", source_key="big:1",
                                                   raw=b"", too_large=90_000_000))
    assert outcome.status is OutcomeStatus.FAILED
    assert "90000000 bytes exceeds max_message_bytes" in outcome.reason


class _Breaker:
    @hookimpl
    def postroom_conversation_parent_properties(self, message, properties):
        if message.subject == "BREAK ME":
            # Not a plugin error (those are caught): a value the store cannot hold,
            # so the import transaction itself fails.
            properties["bad"] = object()


breaker = _Breaker()


CLOSED = {"property": "helpdeskstatus", "values": ["closed", "resolved"],
          "reopen_value": "open"}


async def _close_first_ticket(h) -> int:
    await h.feed(mail(message_id="m1@acme.example"))
    helpdesk = await h.one("helpdesk")
    await h.store.run(lambda tx: tx.update("helpdesk", helpdesk.id,
                                           {"helpdeskstatus": "resolved"}))
    return helpdesk.id


async def test_reply_reopens_a_closed_parent(make_harness):
    h = await make_harness(account={"closed_parent": {**CLOSED, "action": "reopen"}})
    helpdesk_id = await _close_first_ticket(h)
    await h.feed(mail("Re: Help please", message_id="m2@acme.example",
                      in_reply_to="m1@acme.example"))
    assert (await h.one("helpdesk")).get("helpdeskstatus") == "open"
    assert {m.get("conversation") for m in await h.find("conversationmessage")} == {
        (await h.one("helpdesk")).get("conversation")}
    assert (await h.one("helpdesk")).id == helpdesk_id


async def test_reply_to_a_closed_parent_can_start_a_new_conversation(make_harness):
    h = await make_harness(account={"closed_parent": {**CLOSED, "action": "new"}})
    await _close_first_ticket(h)
    await h.feed(mail("Re: Help please", message_id="m2@acme.example",
                      in_reply_to="m1@acme.example"))
    old, new = await h.find("conversation")
    assert new.get("previousconversation") == old.id
    first, second = await h.find("helpdesk")
    assert first.get("helpdeskstatus") == "resolved" and second.get("conversation") == new.id


async def test_out_of_office_never_reopens_a_closed_parent(make_harness):
    h = await make_harness(account={"closed_parent": {**CLOSED, "action": "reopen"}})
    await _close_first_ticket(h)
    await h.feed(mail("Automatic reply: Help please", message_id="oof@acme.example",
                      in_reply_to="m1@acme.example", headers=OOF))
    assert (await h.one("helpdesk")).get("helpdeskstatus") == "resolved"
    assert len(await h.find("conversation")) == 1


async def test_an_unsubscribed_follower_stays_unsubscribed(make_harness):
    h = await make_harness()
    await h.feed(mail(message_id="m1@acme.example"))
    ann = await h.one("follower", email="ann@acme.example")
    await h.store.run(lambda tx: tx.update("follower", ann.id, {"subscribed": False}))
    await h.feed(mail("Re: Help please", message_id="m2@acme.example",
                      in_reply_to="m1@acme.example"))
    assert (await h.one("follower", email="ann@acme.example")).get("subscribed") is False


async def test_a_batch_with_a_bad_message_fails_only_that_message(make_harness):
    from daemon.messages import RawMessage

    h = await make_harness(plugins=["tests.crm.test_pipeline:breaker"])
    raws = [mail("One", message_id="1@acme.example"),
            mail("BREAK ME", message_id="2@acme.example"),
            mail("Re: One", message_id="3@acme.example", in_reply_to="1@acme.example")]
    outcomes = await h.processor.process_many([
        RawMessage(account="support", source_key=f"batch:{n}", raw=raw)
        for n, raw in enumerate(raws)])
    assert [o.status for o in outcomes] == [OutcomeStatus.IMPORTED, OutcomeStatus.FAILED,
                                            OutcomeStatus.IMPORTED]
    first, third = await h.find("conversationmessage")
    assert first.get("conversation") == third.get("conversation")


async def test_a_batch_threads_within_itself_and_deduplicates(make_harness):
    from daemon.messages import RawMessage

    h = await make_harness()
    raws = [mail("One", message_id="1@acme.example"),
            mail("Re: One", message_id="2@acme.example", in_reply_to="1@acme.example"),
            mail("One", message_id="1@acme.example")]
    outcomes = await h.processor.process_many([
        RawMessage(account="support", source_key=f"batch:{n}", raw=raw)
        for n, raw in enumerate(raws)])
    assert [o.status for o in outcomes] == [OutcomeStatus.IMPORTED, OutcomeStatus.IMPORTED,
                                            OutcomeStatus.DUPLICATE]
    assert len(await h.find("conversation")) == 1
