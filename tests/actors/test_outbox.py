"""daemon/actors/outbox.py: backoff timing (MockClock), real SMTP for failures and restarts,
the Sent copy over a real Dovecot."""

from __future__ import annotations

import random
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import trio
import trustme

from daemon.actors.outbox import OutboxActor, RetryPolicy
from daemon.errors import ConnectError, TransientError
from daemon.mail.parse import parse_message
from daemon.outbox import delivery
from daemon.outbox.transport import MaildirSent
from daemon.store import AsyncStore, open_store
from daemon.store.base import OutboxItem
from tests.fakes.dovecot import Dovecot
from tests.fakes.smtp import FakeSmtp
from tests.helpers import wait_for_status
from tests.outbox.conftest import FAR_FUTURE, SMTP_PASSWORD, customer_mail, make_data

FAST = RetryPolicy(base=0.02, cap=0.1, max_attempts=1000, give_up_after=3600)


@asynccontextmanager
async def running(actor: OutboxActor) -> AsyncIterator[OutboxActor]:
    async with trio.open_nursery() as nursery:
        await nursery.start(actor.run)
        yield actor
        nursery.cancel_scope.cancel()


async def errors(env: Any, **where: Any) -> list[Any]:
    return await env.find("conversationmessageerror", **where)


class InlineStore:
    """Runs transactions in the Trio thread, so MockClock's autojump sees every wait."""

    def __init__(self, store: Any) -> None:
        self.store = store

    async def run(self, fn: Callable[..., Any], *args: Any) -> Any:
        await trio.lowlevel.checkpoint()
        with self.store.transaction() as tx:
            return fn(tx, *args)


class ScriptedTransport:
    """Answers each send with the next scripted result (an exception or a reply)."""

    def __init__(self, script: list[Any]) -> None:
        self.script = list(script)
        self.calls: list[tuple[float, str]] = []

    @asynccontextmanager
    async def session(self) -> AsyncIterator[ScriptedTransport]:
        yield self

    async def send(self, item: OutboxItem) -> str:
        await trio.lowlevel.checkpoint()
        self.calls.append((trio.current_time(), item.recipient))
        result = self.script.pop(0)
        if isinstance(result, BaseException):
            raise result
        return result


async def single_follower_reply(env: Any) -> OutboxItem:
    outcome = await env.feed(customer_mail())
    message = await env.store.run(
        lambda tx: tx.get("conversationmessage", outcome.conversation_message_id))
    await env.reply(message.get("conversation"))
    (item,) = await env.queued()
    return item


# -- backoff, exactly (MockClock) ------------------------------------------------------------


async def test_transient_failures_back_off_exponentially_with_jitter(autojump_clock,
                                                                     make_env):
    env = await make_env()
    item = await single_follower_reply(env)
    start = datetime.now(UTC)
    transport = ScriptedTransport([TransientError("451 busy"), ConnectError("refused"),
                                   TransientError("451 busy"), "250 ok"])
    policy = RetryPolicy(base=30, cap=100, max_attempts=10, give_up_after=86_400)
    actor = OutboxActor(env.config, InlineStore(env.store.store), policy=policy,
                        poll_interval=10_000, rng=random.Random(7), sent_copy=None,
                        now=lambda: start + timedelta(seconds=trio.current_time()),
                        transports=lambda config, account: transport)
    async with running(actor):
        await wait_for_status(actor.status, lambda s: s.sent == 1, seconds=10_000)
    twin = random.Random(7)
    delays = [policy.delay(n, twin) for n in (1, 2, 3)]
    expected = [0.0, delays[0], delays[0] + delays[1], sum(delays)]
    assert [t for t, _ in transport.calls] == pytest.approx(expected, abs=1e-3)
    assert 15 <= delays[0] <= 30 and 30 <= delays[1] <= 60 and 50 <= delays[2] <= 100
    done = await env.outbox(item.id)
    assert (done.status, done.attempts) == ("sent", 4)
    (delayed,) = await errors(env, type="delivery_delayed")
    assert delayed.get("messagefollower") == item.message_follower_id
    assert delayed.get("resolveddate") is not None


async def test_giving_up_after_max_attempts_records_a_delivery_error(autojump_clock,
                                                                     make_env):
    env = await make_env()
    item = await single_follower_reply(env)
    start = datetime.now(UTC)
    transport = ScriptedTransport([TransientError("451 still busy")] * 3)
    actor = OutboxActor(env.config, InlineStore(env.store.store),
                        policy=RetryPolicy(base=1, cap=1, max_attempts=3),
                        poll_interval=10_000, sent_copy=None,
                        now=lambda: start + timedelta(seconds=trio.current_time()),
                        transports=lambda config, account: transport)
    async with running(actor):
        await wait_for_status(actor.status, lambda s: s.failed == 1, seconds=10_000)
    done = await env.outbox(item.id)
    assert (done.status, done.attempts) == ("failed", 3)
    (error,) = await errors(env, type="delivery")
    assert error.get("errormessage") == "gave up after 3 attempts: 451 still busy"
    assert error.get("messagefollower") == item.message_follower_id


def test_retry_policy_delays_are_capped_and_jittered():
    policy = RetryPolicy(base=30, cap=3600)
    rng = random.Random(1)
    for attempts in range(1, 30):
        ceiling = min(3600, 30 * 2 ** (attempts - 1))
        assert ceiling / 2 <= policy.delay(attempts, rng) <= ceiling
    assert policy.gives_up(60, timedelta(0))
    assert policy.gives_up(1, timedelta(hours=48))
    assert not policy.gives_up(59, timedelta(hours=47))


# -- the wire (aiosmtpd) ---------------------------------------------------------------------


async def test_three_emails_on_the_wire_and_a_550_is_not_retried(make_env, smtp: FakeSmtp):
    env = await make_env(smtp=smtp)
    cid = await env.conversation_with_three()
    result = await env.reply(cid)
    queued = {i.recipient: i for i in await env.queued()}
    smtp.reject("bob@globex.example")
    actor = OutboxActor(env.config, env.store, policy=FAST, poll_interval=0.05,
                        sent_copy=None)
    async with running(actor):
        actor.wakeup()
        await wait_for_status(actor.status, lambda s: s.sent + s.failed == 3, seconds=10)
    assert (actor.status.sent, actor.status.failed, actor.status.retried) == (2, 1, 0)
    for address in ("ann@acme.example", "lisa@acme.example"):
        (got,) = smtp.to(address)
        assert got.mail_from == "support@a.example" and got.user == "support" and got.tls
        message = got.message
        assert message["Message-ID"] == f"<{queued[address].message_id}>"
        assert message["From"] == "Alex Agent - Support <support@a.example>"
        assert message["In-Reply-To"] == "<m1@acme.example>"
        assert message["Auto-Submitted"] is None
        assert parse_message(got.data).message_id == queued[address].message_id
        assert (await env.outbox(queued[address].id)).status == "sent"
    bob = await env.outbox(queued["bob@globex.example"].id)
    assert (bob.status, bob.attempts) == ("failed", 1)
    assert [a for a in smtp.attempts if a == ("RCPT", "bob@globex.example")] == [
        ("RCPT", "bob@globex.example")]
    (error,) = await errors(env, type="delivery")
    assert "550 5.1.1 <bob@globex.example>: Recipient address rejected" in error.get(
        "errormessage")
    assert error.get("messagefollower") == bob.message_follower_id
    assert error.get("date") is not None
    follower = await env.one("follower", conversation=cid, email="bob@globex.example")
    assert follower.get("failing") is True
    assert len(result.outbox_ids) == 3


async def test_smtp_down_for_a_while_then_back(make_env, smtp: FakeSmtp):
    env = await make_env(smtp=smtp)
    await env.reply(await env.conversation_with_three())
    smtp.stop()
    actor = OutboxActor(env.config, env.store, policy=FAST, poll_interval=0.05,
                        sent_copy=None)
    async with running(actor):
        await wait_for_status(actor.status, lambda s: s.retried >= 6, seconds=10)  # refused twice
        assert actor.status.sent == 0
        assert "connection refused" in actor.status.last_error
        assert len(await errors(env, type="delivery_delayed")) == 3  # once per item
        smtp.start()
        await wait_for_status(actor.status, lambda s: s.sent == 3, seconds=10)
    assert sorted(r.rcpt_tos[0] for r in smtp.received) == [
        "ann@acme.example", "bob@globex.example", "lisa@acme.example"]
    assert all(e.get("resolveddate") for e in await errors(env, type="delivery_delayed"))
    assert await errors(env, type="delivery") == []


async def test_a_4xx_is_retried(make_env, smtp: FakeSmtp):
    env = await make_env(smtp=smtp)
    await single_follower_reply(env)
    smtp.defer(2)
    actor = OutboxActor(env.config, env.store, policy=FAST, poll_interval=0.05,
                        sent_copy=None)
    async with running(actor):
        actor.wakeup()
        await wait_for_status(actor.status, lambda s: s.sent == 1, seconds=10)
    assert actor.status.retried == 2
    assert [kind for kind, _ in smtp.attempts].count("DATA") == 3
    assert len(smtp.received) == 1


async def test_a_restart_in_between_loses_nothing_and_sends_nothing_twice(
        make_env, smtp: FakeSmtp, tmp_path: Path):
    env = await make_env(smtp=smtp)
    await env.reply(await env.conversation_with_three())
    queued = {i.message_id for i in await env.queued()}
    smtp.stop()
    first = OutboxActor(env.config, env.store, policy=FAST, poll_interval=0.05,
                        sent_copy=None)
    async with running(first):
        await wait_for_status(first.status, lambda s: s.retried >= 3, seconds=10)
    await env.store.aclose()  # the daemon is gone; the outbox is only in the database

    smtp.start()
    async with AsyncStore(open_store(f"sqlite:///{tmp_path}/postroom.db")) as store:
        pending = await store.run(lambda tx: tx.due(FAR_FUTURE))
        assert {i.message_id for i in pending} == queued
        second = OutboxActor(env.config, store, policy=FAST, poll_interval=0.05,
                             sent_copy=None)
        async with running(second):
            await wait_for_status(second.status, lambda s: s.sent == 3, seconds=10)
        assert await second.deliver_due() == 0
        third = OutboxActor(env.config, store, policy=FAST, sent_copy=None)
        assert await third.deliver_due() == 0
        events = await store.run(lambda tx: [e.data["message_id"] for e in
                                             tx.events_since(0, 1000)
                                             if e.kind == "outbox.sent"])
    sent_ids = [r.message["Message-ID"].strip("<>") for r in smtp.received]
    assert sorted(sent_ids) == sorted(queued) == sorted(events)
    for got in smtp.received:  # identical bytes, built once at queue time
        original = next(i for i in pending if i.message_id in got.message["Message-ID"])
        assert got.data.replace(b"\r\n", b"\n").rstrip() == \
            original.raw.replace(b"\r\n", b"\n").rstrip()


async def test_oauth_accounts_fail_with_a_reason_instead_of_spinning(make_env, tmp_path):
    data = make_data(tmp_path, smtp=None, account=None, runtime=None, seed=None)
    data["oauth_apps"] = [{"id": "entra", "provider": "microsoft", "client_id": "c",
                           "tenant_id": "t", "client_secret_env": "SMTP_PASSWORD"}]
    data["accounts"][0].update(auth="entra")
    for key in ("username", "password_env"):
        data["accounts"][0].pop(key)
    env = await make_env(data=data)
    item = await single_follower_reply(env)
    actor = OutboxActor(env.config, env.store, sent_copy=None)
    assert await actor.deliver_due() == 1
    done = await env.outbox(item.id)
    assert done.status == "failed"
    assert "not implemented yet" in done.last_error
    (error,) = await errors(env, type="delivery")
    assert "OAuth" in error.get("errormessage")


async def test_the_demo_maildir_sends_into_sent_exactly_once(make_env, tmp_path: Path):
    data = make_data(tmp_path, smtp=None, account=None, runtime=None, seed=None)
    data["accounts"][0].update(auth="maildir", maildir="Maildir")
    for key in ("username", "password_env"):
        data["accounts"][0].pop(key)
    env = await make_env(data=data)
    item = await single_follower_reply(env)
    actor = OutboxActor(env.config, env.store, sent_copy=None)
    assert await actor.deliver_due() == 1
    sent = list((tmp_path / "Maildir" / ".Sent" / "new").iterdir())
    assert [p.read_bytes() for p in sent] == [item.raw]
    transport = MaildirSent(tmp_path / "Maildir")
    again = await transport.send(await env.outbox(item.id))
    assert again.startswith("already in")
    assert len(list((tmp_path / "Maildir" / ".Sent" / "new").iterdir())) == 1
    assert (await env.outbox(item.id)).status == "sent"


async def test_an_unknown_account_fails_its_items(make_env):
    env = await make_env()
    item_id = await env.store.run(lambda tx: tx.enqueue(OutboxItem(
        account="gone", recipient="x@acme.example", message_id="x1@a.example",
        raw=b"Subject: x\r\n\r\nx\r\n")))
    actor = OutboxActor(env.config, env.store, sent_copy=None)
    await actor.deliver_due()
    done = await env.outbox(item_id)
    assert (done.status, done.last_error) == ("failed",
                                              "account 'gone' is no longer configured")


# -- the Sent folder (Dovecot) ---------------------------------------------------------------


@pytest.mark.dovecot
async def test_a_copy_goes_to_the_sent_folder_over_imap(make_env, ca: trustme.CA,
                                                        dovecot: Dovecot, tmp_path: Path):
    user = dovecot.add_user(password=SMTP_PASSWORD)  # one login for IMAP and SMTP
    server = FakeSmtp(ca, tmp_path, users={user.name: SMTP_PASSWORD})
    server.start()
    try:
        data = make_data(tmp_path, smtp=server, runtime=None, seed=None,
                         account={"sent_folder": "Sent", "username": user.name})
        data["imap_connections"][0].update(imap_host=dovecot.host,
                                           imap_port=dovecot.imap_port)
        env = await make_env(data=data)
        item = await single_follower_reply(env)
        actor = OutboxActor(env.config, env.store, policy=FAST)
        await actor.deliver_due()
        assert (await env.outbox(item.id)).status == "sent"
        assert server.received[0].user == user.name
        copies = await trio.to_thread.run_sync(dovecot.messages, user, "Sent")
        ((flags, raw),) = copies.values()
        assert b"\\Seen" in flags
        assert parse_message(raw).message_id == item.message_id
    finally:
        server.stop()


async def test_a_store_failure_ends_the_batch_without_crashing_and_loses_nothing(make_env):
    from daemon.errors import StoreBusyError

    env = await make_env()
    item = await single_follower_reply(env)

    class FlakyStore(InlineStore):
        failures = 1

        async def run(self, fn: Callable[..., Any], *args: Any) -> Any:
            if fn is delivery.record_retry and self.failures:
                self.failures -= 1
                raise StoreBusyError("database is locked")
            return await super().run(fn, *args)

    transport = ScriptedTransport([TransientError("451 busy"), "250 ok"])
    actor = OutboxActor(env.config, FlakyStore(env.store.store), sent_copy=None,
                        transports=lambda config, account: transport)
    assert await actor.deliver_due() == 1
    assert actor.status.last_error == "StoreBusyError: database is locked"
    still = await env.outbox(item.id)
    # Its bookkeeping did not commit: still claimed "sending" (daemon.store claim_due);
    # this node's next round takes it again at once.
    assert (still.status, still.attempts) == ("sending", 0)
    assert await actor.deliver_due() == 1
    assert (await env.outbox(item.id)).status == "sent"


async def test_a_disabled_account_sends_nothing_its_mail_waits(autojump_clock, make_env):
    """Issue 14: mail queued before ``enabled = false`` is retried later, never sent."""
    import dataclasses

    env = await make_env()
    item = await single_follower_reply(env)
    disabled = dataclasses.replace(env.config, accounts=tuple(
        a.model_copy(update={"enabled": False}) for a in env.config.accounts))
    start = datetime.now(UTC)
    transport = ScriptedTransport(["250 ok"])
    actor = OutboxActor(disabled, InlineStore(env.store.store), policy=FAST,
                        poll_interval=10_000, sent_copy=None,
                        now=lambda: start + timedelta(seconds=trio.current_time()),
                        transports=lambda config, account: transport)
    async with running(actor):
        await wait_for_status(actor.status, lambda s: s.retried >= 1, seconds=10_000)
    assert transport.calls == []
    waiting = await env.outbox(item.id)
    assert waiting.status == "queued"
    assert waiting.last_error == "account 'support' is disabled (enabled = false)"
