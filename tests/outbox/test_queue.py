"""Queueing hub mail through a real store: recipients, threading, merge codes, sizes."""

from __future__ import annotations

from email import message_from_bytes
from email.message import EmailMessage
from email.policy import default
from typing import Any

import pytest

from daemon.mail.ids import parse_message_id
from daemon.outbox.compose import OutgoingTooLarge
from daemon.outbox.queue import queue_to_followers
from daemon.outbox.reply import ReplyRefused
from tests.outbox.conftest import INSTALLATION, SECRET, customer_mail


def parsed(raw: bytes) -> EmailMessage:
    return message_from_bytes(raw, policy=default)


def text_of(raw: bytes) -> str:
    return parsed(raw).get_body(("plain",)).get_content().replace("\r\n", "\n")


def html_of(raw: bytes) -> str:
    return parsed(raw).get_body(("html",)).get_content()


async def by_recipient(env: Any, kind: str | None = None) -> dict[str, Any]:
    items = [i for i in await env.queued() if kind is None or i.kind == kind]
    return {i.recipient: i for i in items}


async def test_a_reply_to_three_followers_is_three_emails_each_signed_for_its_follower(
        make_env):
    env = await make_env()
    cid = await env.conversation_with_three()
    result = await env.reply(cid, "<p>We are <b>on it</b>.</p>")
    assert sorted(result.recipients) == ["ann@acme.example", "bob@globex.example",
                                         "lisa@acme.example"]
    items = await by_recipient(env)
    assert sorted(i.id for i in items.values()) == sorted(result.outbox_ids)
    followers = {f.get("email"): f for f in await env.find("follower", conversation=cid)}
    names = {"ann@acme.example": "Ann Andersson", "lisa@acme.example": "Lisa Lund",
             "bob@globex.example": "Bob Baker"}
    for address, item in items.items():
        token = parse_message_id(SECRET, item.message_id, installation=INSTALLATION)
        assert token is not None and token.conversation_id == cid and token.kind == "r"
        row = await env.one("messagefollower", queueid=item.id)
        assert token.message_follower_id == row.id == item.message_follower_id
        assert row.get("follower") == followers[address].id
        assert row.get("conversationmessage") == result.conversation_message_id
        assert row.get("messageid") == item.message_id
        assert (row.get("participationlevel"), row.get("direction")) == ("to", "outgoing")
        m = parsed(item.raw)
        assert m["From"] == "Alex Agent - Support <support@a.example>"
        assert m["Reply-To"] == "Support <support@a.example>"
        assert m["To"] == f"{names[address]} <{address}>"
        assert m["Subject"] == "Re: Printer jammed"
        assert m["Message-ID"] == f"<{item.message_id}>"
        assert m["In-Reply-To"] == "<m1@acme.example>"
        assert m["References"] == "<m1@acme.example>"
        assert m["Auto-Submitted"] is None and m["X-Auto-Response-Suppress"] is None
        text = text_of(item.raw)
        assert "Alex Agent replied in the conversation “Printer jammed”." in text
        assert "We are on it." in text
        others = [n for a, n in names.items() if a != address]
        assert f"This message was also sent to {others[0]}" in text
        assert names[address] not in text.split("also sent to")[1]
        assert "The printer jams." in text  # the history
    ids = {i.message_id for i in items.values()}
    assert len(ids) == 3


async def test_the_author_becomes_a_follower_and_never_gets_a_copy(make_env):
    env = await make_env()
    cid = await env.conversation_with_three()
    await env.reply(cid)
    alex = await env.one("coworker", email="alex@a.example")
    follower = await env.one("follower", conversation=cid, email="alex@a.example")
    assert follower.get("coworker") == alex.id
    assert "alex@a.example" not in await by_recipient(env)
    message = await env.one("conversationmessage", direction="outgoing")
    assert (message.get("fromname"), message.get("coworker"), message.get("kind")) == (
        "Alex Agent", alex.id, "reply")
    assert message.get("plaintext") == "We are on it.\n"


async def test_each_copy_threads_onto_that_followers_own_last_message(make_env):
    env = await make_env()
    cid = await env.conversation_with_three()
    one = await env.reply(cid, "<p>First answer</p>")
    first_ids = {i.recipient: i.message_id for i in await env.queued()
                 if i.id in one.outbox_ids}
    two = await env.reply(cid, "<p>Second answer</p>")
    second = {i.recipient: i for i in await env.queued() if i.id in two.outbox_ids}
    for address, item in second.items():
        m = parsed(item.raw)
        assert m["In-Reply-To"] == f"<{first_ids[address]}>"
        assert m["References"] == f"<m1@acme.example> <{first_ids[address]}>"
        text = text_of(item.raw)
        assert text.index("Second answer") < text.index("First answer") < text.index(
            "The printer jams.")


async def test_a_recipients_answer_joins_the_conversation_and_notifies_the_others(make_env):
    env = await make_env()
    cid = await env.conversation_with_three()
    await env.reply(cid, "<p>Which model is it?</p>")
    lisa_copy = (await by_recipient(env, "reply"))["lisa@acme.example"]
    answer = customer_mail("Re: Printer jammed", sender="Lisa Lund <lisa@acme.example>",
                           message_id="lisa-1@acme.example",
                           in_reply_to=lisa_copy.message_id,
                           references=f"<m1@acme.example> <{lisa_copy.message_id}>",
                           body="It is the LaserJet 4.\n")
    outcome = await env.feed(answer)
    message = await env.one("conversationmessage", emailid="lisa-1@acme.example")
    assert message.get("conversation") == cid
    notices = await by_recipient(env, "notification")
    # Everyone else who follows: Ann, Bob and the agent who answered (a follower now).
    assert sorted(notices) == ["alex@a.example", "ann@acme.example", "bob@globex.example"]
    ann = notices["ann@acme.example"]
    m = parsed(ann.raw)
    assert m["Auto-Submitted"] == "auto-generated"
    assert m["X-Auto-Response-Suppress"] == "All"
    assert m["X-Postroom-Loop"] == INSTALLATION
    assert m["From"] == "Support <support@a.example>"
    ann_reply = (await by_recipient(env, "reply"))["ann@acme.example"]
    assert m["In-Reply-To"] == f"<{ann_reply.message_id}>"
    text = text_of(ann.raw)
    assert "Lisa Lund (lisa@acme.example) wrote in the conversation" in text
    assert "It is the LaserJet 4." in text
    token = parse_message_id(SECRET, ann.message_id)
    assert token is not None and token.kind == "n"
    assert ann.conversation_message_id == outcome.conversation_message_id


async def test_a_notification_skips_followers_who_got_the_mail_directly(make_env):
    env = await make_env()
    cid = await env.conversation_with_three()
    await env.feed(customer_mail("Re: Printer jammed", cc="Lisa Lund <lisa@acme.example>",
                                 message_id="m2@acme.example", in_reply_to="m1@acme.example",
                                 body="Any news?\n"))
    message = await env.one("conversationmessage", emailid="m2@acme.example")
    assert message.get("conversation") == cid
    assert sorted(await by_recipient(env, "notification")) == ["bob@globex.example"]


async def test_inactive_unsubscribed_and_our_own_addresses_get_nothing(make_env):
    env = await make_env()
    cid = await env.conversation_with_three()

    def adjust(tx):
        lisa = tx.find_one("follower", {"conversation": cid, "email": "lisa@acme.example"})
        bob = tx.find_one("follower", {"conversation": cid, "email": "bob@globex.example"})
        tx.update("follower", lisa.id, {"subscribed": False})
        tx.update("follower", bob.id, {"active": False})
        tx.create("follower", {"conversation": cid, "email": "HELP@a.example",
                               "active": True, "subscribed": True})

    await env.store.run(adjust)
    result = await env.reply(cid)
    assert result.recipients == ("ann@acme.example",)


async def test_only_restricts_the_recipients_and_unknown_kinds_are_refused(make_env):
    env = await make_env()
    cid = await env.conversation_with_three()
    message = await env.one("conversationmessage", emailid="m1@acme.example")

    def queue(tx, **kwargs):
        return queue_to_followers(tx, env.out(), conversation_id=cid,
                                  conversation_message_id=message.id, **kwargs)

    ids = await env.store.run(lambda tx: queue(tx, kind="auto_reply", author_email=None,
                                               only=frozenset({"LISA@acme.example"})))
    assert [i.recipient for i in await env.queued() if i.id in ids] == ["lisa@acme.example"]
    with pytest.raises(ValueError, match="kind"):
        await env.store.run(lambda tx: queue(tx, kind="spam", author_email=None))
    with pytest.raises(ValueError, match="conversation_id"):
        await env.store.run(lambda tx: queue_to_followers(
            tx, env.out(), conversation_id=999_999, conversation_message_id=message.id,
            kind="reply", author_email=None))


async def test_the_automatic_reply_resolves_store_merge_codes(make_env):
    env = await make_env(account={
        "signature": "Kind regards,\nSupport",
        "auto_reply": {"enabled": True, "subject": "Case {{helpdesk.helpdesknumber}}",
                       "body": "Hello {{recipient_name}}, case {{helpdesk.helpdesknumber}} "
                               "for {{helpdesk.company.name}} is open."}})
    cid = await env.conversation_with_three()
    replies = await by_recipient(env, "auto_reply")
    assert sorted(replies) == ["ann@acme.example"]  # the sender alone, never the Cc
    m = parsed(replies["ann@acme.example"].raw)
    assert m["Subject"] == "Case HD-1001"
    assert m["Auto-Submitted"] == "auto-replied"
    assert m["X-Auto-Response-Suppress"] == "All"
    assert m["Precedence"] == "bulk"
    assert m["X-Postroom-Loop"] == INSTALLATION
    assert m["In-Reply-To"] == "<m1@acme.example>"
    text = text_of(replies["ann@acme.example"].raw)
    assert "Hello Ann Andersson, case HD-1001 for Acme Printing AB is open." in text
    assert "Kind regards,\nSupport" in text
    assert "We have received your message “Printer jammed”." in text
    token = parse_message_id(SECRET, replies["ann@acme.example"].message_id)
    assert token is not None and token.conversation_id == cid and token.kind == "a"


async def test_subject_tag_when_the_subject_method_is_on(make_env):
    env = await make_env(runtime={"identificationMethod": ["messageId", "subject"]})
    cid = await env.conversation_with_three()
    await env.reply(cid)
    subjects = {parsed(i.raw)["Subject"] for i in await env.queued()}
    assert subjects == {f"Re: Printer jammed [#{cid}]"}


async def test_reply_from_the_alias_the_customer_wrote_to(make_env):
    env = await make_env(account={"reply_from_alias": True})
    await env.feed(customer_mail(to="Help desk <help@a.example>"))
    message = await env.one("conversationmessage")
    await env.reply(message.get("conversation"))
    (item,) = await env.queued()
    m = parsed(item.raw)
    assert m["From"] == "Alex Agent - Support <help@a.example>"
    assert m["Reply-To"] == "Support <help@a.example>"


async def test_without_personalized_emails_the_from_name_is_the_team(make_env):
    env = await make_env(runtime={"personalizedEmails": False})
    cid = await env.conversation_with_three()
    await env.reply(cid)
    assert {parsed(i.raw)["From"] for i in await env.queued()} == {
        "Support <support@a.example>"}


async def test_history_in_the_account_zone_and_language(make_env):
    env = await make_env(account={"language": "sv", "print_timezone": True,
                                  "timezone": "America/New_York"})
    cid = await env.conversation_with_three()
    await env.reply(cid)
    text = text_of((await env.queued())[0].raw)
    assert "2026-11-24 06:00 (America/New_York) skrev Ann Andersson" in text
    assert "Alex Agent svarade i konversationen" in text
    assert parsed((await env.queued())[0].raw)["Content-Language"] == "sv"


async def test_reply_attachments_and_snippet_use(make_env):
    env = await make_env()
    cid = await env.conversation_with_three()

    def setup(tx):
        file_id = tx.put_file(b"%PDF-1.4 fake", "quote.pdf", "application/pdf")
        snippet = tx.create("textsnippet", {"text": "Thanks!", "count": 2})
        return file_id, snippet

    file_id, snippet = await env.store.run(setup)
    result = await env.reply(cid, attachments=(file_id,), text_snippets=(snippet,))
    doc = await env.one("document", conversationmessage=result.conversation_message_id)
    assert (doc.get("document"), doc.get("comment")) == (file_id, "quote.pdf")
    assert doc.get("helpdesk") == result.parent_id
    m = parsed((await env.queued())[0].raw)
    (attached,) = list(m.iter_attachments())
    assert (attached.get_filename(), attached.get_content()) == ("quote.pdf",
                                                                 b"%PDF-1.4 fake")
    used = await env.one("textsnippet")
    assert used.id == snippet
    assert used.get("count") == 3
    assert used.get("lastused") == env.clock().isoformat()


async def test_an_oversize_reply_is_refused_and_nothing_is_written(make_env):
    env = await make_env(account={"max_outgoing_bytes": 20_000})
    cid = await env.conversation_with_three()
    file_id = await env.store.run(lambda tx: tx.put_file(b"x" * 30_000, "big.bin",
                                                         "application/octet-stream"))
    before = len(await env.find("conversationmessage"))
    with pytest.raises(OutgoingTooLarge) as caught:
        await env.reply(cid, attachments=(file_id,))
    assert caught.value.limit == 20_000 and caught.value.size > 40_000
    assert "max_outgoing_bytes" in str(caught.value) and "20000" in str(caught.value)
    assert len(await env.find("conversationmessage")) == before
    assert await env.queued() == []
    assert await env.find("document") == []


async def test_an_oversize_notification_goes_without_its_attachments_or_not_at_all(
        make_env):
    env = await make_env(account={"max_outgoing_bytes": 12_000})
    cid = await env.conversation_with_three()
    await env.feed(customer_mail("Re: Printer jammed", message_id="m2@acme.example",
                                 in_reply_to="m1@acme.example",
                                 attachment=("photo.jpg", b"j" * 20_000)))
    notices = await by_recipient(env, "notification")
    assert sorted(notices) == ["bob@globex.example", "lisa@acme.example"]
    m = parsed(notices["bob@globex.example"].raw)
    assert list(m.iter_attachments()) == []
    assert "too large to forward by email: photo.jpg" in text_of(
        notices["bob@globex.example"].raw)
    assert cid


async def test_automatic_mail_too_large_even_without_files_is_skipped(make_env):
    env = await make_env(account={"max_outgoing_bytes": 1_000})
    await env.conversation_with_three()
    await env.feed(customer_mail("Re: Printer jammed", message_id="m2@acme.example",
                                 in_reply_to="m1@acme.example"))
    assert await by_recipient(env, "notification") == {}
    skipped = await env.store.run(lambda tx: [e for e in tx.events_since(0, 1000)
                                              if e.kind == "outbox.skipped"])
    assert {e.data["recipient"] for e in skipped} == {"bob@globex.example",
                                                     "lisa@acme.example"}
    rows = await env.find("messagefollower", direction="outgoing")
    assert rows == []


@pytest.mark.parametrize(("change", "status", "words"), [
    ({"coworker": "sam@a.example"}, 403, "may not send from account 'support'"),
    ({"conversation": 999_999}, 404, "no conversation with id 999999"),
    ({"attachments": (424242,)}, 400, "no stored file with id 424242"),
    ({"text_snippets": (424242,)}, 400, "no text snippet with id 424242"),
])
async def test_refusals_write_nothing(make_env, change, status, words):
    env = await make_env()
    cid = await env.conversation_with_three()
    before = len(await env.find("conversationmessage"))
    kwargs = {k: v for k, v in change.items() if k != "conversation"}
    with pytest.raises(ReplyRefused) as caught:
        await env.reply(change.get("conversation", cid), **kwargs)
    assert caught.value.status == status
    assert words in str(caught.value)
    assert len(await env.find("conversationmessage")) == before
    assert await env.queued() == []


async def test_nobody_to_send_to_is_refused(make_env):
    env = await make_env()
    cid = await env.conversation_with_three()
    await env.store.run(lambda tx: [tx.update("follower", f.id, {"subscribed": False})
                                    for f in tx.find("follower", {"conversation": cid})])
    with pytest.raises(ReplyRefused) as caught:
        await env.reply(cid)
    assert caught.value.status == 422
    assert await env.find("conversationmessage", direction="outgoing") == []
