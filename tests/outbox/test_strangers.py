"""Issue 9: the hub sends nothing on a stranger's word.

A stranger's To and Cc are only a claim: those addresses become followers (capped per
message) but get no copy of incoming mail until a coworker vouches for them; the
automatic reply goes to the sender alone; automatic mail beyond the account's sliding hour
is held, visibly; quoted customer HTML loses its remote resources.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from email.message import EmailMessage
from typing import Any

import trio

from daemon.actors.outbox import OutboxActor, RetryPolicy
from daemon.app import Daemon
from daemon.http.app import create_app
from tests.fakes.smtp import FakeSmtp
from tests.helpers import wait_for_status
from tests.outbox.conftest import customer_mail
from tests.outbox.test_queue import by_recipient, html_of

FAST = RetryPolicy(base=0.02, cap=0.1, max_attempts=1000, give_up_after=3600)
STRANGER = "mallory@strangers.example"
AUTO_REPLY = {"enabled": True, "body": "Thanks, we got it."}


def victims(count: int) -> list[str]:
    return [f"v{n}@victims.example" for n in range(count)]


def stranger_mail(cc: list[str], *, message_id: str = "s1@strangers.example",
                  in_reply_to: str | None = None, body: str = "Hello.\n") -> bytes:
    return customer_mail("Free offer" if in_reply_to is None else "Re: Free offer",
                         sender=f"Mallory <{STRANGER}>", cc=", ".join(cc) or None,
                         message_id=message_id, in_reply_to=in_reply_to, body=body)


def follow_up(n: int, sender: str = f"Mallory <{STRANGER}>") -> bytes:
    return customer_mail("Re: Free offer", sender=sender, message_id=f"s{n}@strangers.example",
                         in_reply_to="s1@strangers.example", body="Well?\n")


@asynccontextmanager
async def outbox(env: Any) -> AsyncIterator[OutboxActor]:
    actor = OutboxActor(env.config, env.store, policy=FAST, poll_interval=0.05,
                        sent_copy=None)
    async with trio.open_nursery() as nursery:
        await nursery.start(actor.run)
        yield actor
        nursery.cancel_scope.cancel()


async def conversation_of(env: Any, email_id: str) -> int:
    return (await env.one("conversationmessage", emailid=email_id)).get("conversation")


async def events(env: Any, kind: str) -> list[Any]:
    found = await env.store.run(lambda tx: tx.events_since(0, 10_000))
    return [e for e in found if e.kind == kind]


async def test_issue_9_a_stranger_with_1000_cc_and_a_follow_up_reach_nobody_but_the_sender(
        make_env, smtp: FakeSmtp):
    env = await make_env(smtp=smtp, account={"auto_reply": AUTO_REPLY})
    cc = victims(1000)
    await env.feed(stranger_mail(cc))
    small = follow_up(2)
    assert len(small) < 400  # the attack: one big mail, then a few hundred bytes
    await env.feed(small)
    cid = await conversation_of(env, "s1@strangers.example")
    followers = await env.find("follower", conversation=cid)
    assert len(followers) == 20  # the sender and the first 19 Cc
    first = await env.one("conversationmessage", emailid="s1@strangers.example")
    assert first.get("unaddedfollowers") == cc[19:]
    (capped,) = await events(env, "followers.capped")
    assert (capped.data["added"], capped.data["unadded"]) == (20, 981)

    async with outbox(env) as actor:
        actor.wakeup()
        await wait_for_status(actor.status, lambda s: s.sent == 1, seconds=20)
        assert await env.queued() == []
        assert await env.store.run(lambda tx: tx.count_outbox("held")) == 0
        (auto,) = smtp.received
        assert auto.rcpt_tos == (STRANGER,)
        assert auto.message["Auto-Submitted"] == "auto-replied"
        assert auto.message["Cc"] is None
        assert b"victims.example" not in auto.data  # no list of the other "followers"

        result = await env.reply(cid, "<p>Who are you?</p>")  # a coworker answers
        assert len(result.outbox_ids) == 20
        actor.wakeup()
        await wait_for_status(actor.status, lambda s: s.sent == 21, seconds=20)
        for address in cc[:19]:
            (got,) = smtp.to(address)
            assert got.rcpt_tos == (address,)
            assert got.message["Auto-Submitted"] is None  # the agent's reply
        assert all(smtp.to(address) == [] for address in cc[19:])

        await env.feed(follow_up(3))  # now the Cc'd followers are vouched for
        actor.wakeup()
        await wait_for_status(actor.status, lambda s: s.sent == 41, seconds=20)
    assert await env.queued() == []
    notices = [r for r in smtp.received if r.message["Auto-Submitted"] == "auto-generated"]
    assert sorted(r.rcpt_tos[0] for r in notices) == sorted([*cc[:19], "alex@a.example"])
    assert len(smtp.received) == 41


async def test_issue_9_an_agents_reply_vouches_for_the_ccd_follower(make_env):
    env = await make_env()
    await env.feed(stranger_mail(["Carol <carol@unknown.example>"]))
    cid = await conversation_of(env, "s1@strangers.example")
    carol = await env.one("follower", conversation=cid, email="carol@unknown.example")
    assert carol.get("vouched") is False
    await env.feed(follow_up(2))
    assert await by_recipient(env, "notification") == {}
    await env.reply(cid)
    assert (await env.one("follower", email="carol@unknown.example")).get("vouched") is True
    await env.feed(follow_up(3))
    notices = await by_recipient(env, "notification")
    assert sorted(notices) == ["alex@a.example", "carol@unknown.example"]


async def test_issue_9_a_person_the_crm_knew_is_notified_by_default(make_env):
    env = await make_env()
    await env.feed(stranger_mail(["Lisa Lund <lisa@acme.example>",
                                  "carol@unknown.example"]))
    await env.feed(follow_up(2))
    assert sorted(await by_recipient(env, "notification")) == ["lisa@acme.example"]


async def test_issue_9_known_people_get_nothing_either_when_notify_known_people_is_off(make_env):
    env = await make_env(account={"notify_known_people": False})
    await env.feed(stranger_mail(["Lisa Lund <lisa@acme.example>",
                                  "carol@unknown.example"]))
    await env.feed(follow_up(2))
    assert await by_recipient(env, "notification") == {}
    # Once an agent has answered, everyone the answer went to is vouched for.
    await env.reply(await conversation_of(env, "s1@strangers.example"))
    await env.feed(follow_up(3))
    assert sorted(await by_recipient(env, "notification")) == [
        "alex@a.example", "carol@unknown.example", "lisa@acme.example"]


async def test_issue_9_the_cap_on_new_followers_is_configurable(make_env):
    env = await make_env(account={"max_new_followers_per_message": 3})
    await env.feed(stranger_mail(victims(5)))
    cid = await conversation_of(env, "s1@strangers.example")
    assert sorted(f.get("email") for f in await env.find("follower", conversation=cid)) == [
        STRANGER, "v0@victims.example", "v1@victims.example"]
    message = await env.one("conversationmessage", emailid="s1@strangers.example")
    assert message.get("unaddedfollowers") == victims(5)[2:]
    # A later message may add more, again up to the cap; existing followers do not count.
    await env.feed(stranger_mail(victims(5), message_id="s2@strangers.example",
                                 in_reply_to="s1@strangers.example"))
    assert len(await env.find("follower", conversation=cid)) == 6


async def test_issue_9_automatic_mail_over_the_budget_is_held_visible_and_releasable(
        make_env, smtp: FakeSmtp):
    env = await make_env(smtp=smtp, account={"auto_reply": AUTO_REPLY,
                                             "automatic_mail_per_hour": 2})
    cid = await env.conversation_with_three()  # the automatic reply to Ann: 1 of 2
    await env.feed(customer_mail("Re: Printer jammed", message_id="m2@acme.example",
                                 in_reply_to="m1@acme.example", body="Any news?\n"))
    queued = [i.kind for i in await env.queued()]
    (held,) = await env.store.run(lambda tx: tx.outbox_by_status("held"))
    assert queued == ["auto_reply", "notification"]  # Lisa and Bob: one fits
    assert held.kind == "notification"
    assert held.recipient in ("lisa@acme.example", "bob@globex.example")
    (event,) = await events(env, "outbox.held")
    assert event.data["outbox"] == [held.id]

    api = create_app(Daemon(env.config, env.store, env.pm, env.processor,
                            OutboxActor(env.config, env.store, sent_copy=None)))
    client = api.test_client()
    listed = await (await client.get("/api/v1/outbox?status=held")).get_json()
    assert [(i["id"], i["recipient"], i["kind"]) for i in listed] == [
        (held.id, held.recipient, "notification")]
    async with outbox(env) as actor:
        actor.wakeup()
        await wait_for_status(actor.status, lambda s: s.sent == 2, seconds=20)
        assert actor.status.as_json()["held"] == 1  # what /status shows
        assert smtp.to(held.recipient) == []
        response = await client.post(f"/api/v1/outbox/{held.id}/release")
        assert response.status_code == 202
        assert (await client.post(f"/api/v1/outbox/{held.id}/release")).status_code == 409
        actor.wakeup()
        await wait_for_status(actor.status, lambda s: s.sent == 3 and s.held == 0, seconds=20)
    assert len(smtp.to(held.recipient)) == 1
    # The window slides: an hour later there is room again. Ann writes; Lisa and Bob.
    env.clock.advance(3601)
    await env.feed(customer_mail("Re: Printer jammed", message_id="m3@acme.example",
                                 in_reply_to="m1@acme.example", body="Hello?\n"))
    later = [i for i in await env.queued() if i.conversation_message_id == (
        await env.one("conversationmessage", emailid="m3@acme.example")).id]
    assert len(later) == 2 and cid


def html_mail(html: str) -> bytes:
    m = EmailMessage()
    m["From"] = "Ann Andersson <ann@acme.example>"
    m["To"] = "support@a.example"
    m["Subject"] = "Printer jammed"
    m["Date"] = "Tue, 24 Nov 2026 11:00:00 +0000"
    m["Message-ID"] = "<h1@acme.example>"
    m.set_content("The printer jams.")
    m.add_alternative(html, subtype="html")
    return bytes(m)


async def test_issue_9_remote_images_are_stripped_from_the_quoted_history(make_env):
    env = await make_env()
    await env.feed(html_mail(
        '<p style="background-color:url(https://track.example/bg)">The printer jams.</p>'
        '<img src="https://track.example/pixel.gif?u=ann" width="1" height="1">'
        '<img src="cid:logo@acme" alt="logo">'
        '<a href="https://acme.example/manual">the manual</a>'))
    cid = await conversation_of(env, "h1@acme.example")
    await env.reply(cid, '<p>See <img src="https://a.example/our-logo.png"> us.</p>')
    (copy,) = (await by_recipient(env, "reply")).values()
    html = html_of(copy.raw)
    assert "The printer jams." in html
    assert "track.example" not in html
    assert 'src="cid:logo@acme"' in html
    assert 'href="https://acme.example/manual"' in html  # a link is not a resource
    assert 'src="https://a.example/our-logo.png"' in html  # our own mail keeps its images
