"""The outbox actor across nodes: claims, "sending" first, and the crash window."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import trio

from daemon.actors.outbox import OutboxActor
from tests.actors.test_outbox import ScriptedTransport, single_follower_reply
from tests.fakes.dovecot import Dovecot, dovecot_binary
from tests.outbox.conftest import SMTP_PASSWORD, make_data


async def _died_mid_send(env: Any, item_id: int) -> None:
    """Leave the item as a node that SIGKILLed in the at-least-once window leaves it."""
    past = datetime.now(UTC) - timedelta(minutes=10)

    def crash(tx: Any) -> None:
        tx.claim_due(past, "dead-node", past + timedelta(minutes=5))
        assert tx.mark_sending(item_id, "dead-node")

    await env.store.run(crash)


async def events(env: Any, kind: str) -> list[Any]:
    found = await env.store.run(lambda tx: tx.events_since(0, 1000))
    return [e for e in found if e.kind == kind]


async def test_an_item_a_dead_node_was_sending_is_sent_again_with_the_risk_recorded(make_env):
    env = await make_env()
    item = await single_follower_reply(env)
    await _died_mid_send(env, item.id)
    transport = ScriptedTransport(["250 ok"])
    actor = OutboxActor(env.config, env.store, sent_copy=None, node="n2",
                        transports=lambda config, account: transport)
    assert await actor.deliver_due() == 1
    assert (await env.outbox(item.id)).status == "sent"
    (risk,) = await events(env, "outbox.resend_risk")
    assert risk.data["message_id"] == item.message_id
    assert len(transport.calls) == 1


async def test_a_claim_held_by_a_live_node_is_left_alone(make_env):
    env = await make_env()
    item = await single_follower_reply(env)
    now = datetime.now(UTC)
    await env.store.run(lambda tx: tx.claim_due(now, "n1", now + timedelta(minutes=5)))
    transport = ScriptedTransport([])
    other = OutboxActor(env.config, env.store, sent_copy=None, node="n2",
                        transports=lambda config, account: transport)
    assert await other.deliver_due() == 0
    assert transport.calls == []
    assert (await env.outbox(item.id)).status == "queued"


async def test_the_maildir_transport_reconciles_by_itself(make_env, tmp_path):
    data = make_data(tmp_path, smtp=None, account=None, runtime=None, seed=None)
    data["accounts"][0].update(auth="maildir", maildir="Maildir")
    for key in ("username", "password_env"):
        data["accounts"][0].pop(key)
    env = await make_env(data=data)
    item = await single_follower_reply(env)
    await _died_mid_send(env, item.id)
    actor = OutboxActor(env.config, env.store, sent_copy=None, node="n2")
    assert await actor.deliver_due() == 1
    assert (await env.outbox(item.id)).status == "sent"
    assert await events(env, "outbox.resend_risk") == []
    assert len(list((tmp_path / "Maildir" / ".Sent" / "new").iterdir())) == 1


@pytest.mark.dovecot
async def test_an_item_found_in_the_sent_folder_is_marked_sent_not_sent_again(
        make_env, tmp_path):
    if dovecot_binary() is None:
        pytest.skip("dovecot is not installed")
    dovecot = Dovecot()
    dovecot.start()
    try:
        user = dovecot.add_user(password=SMTP_PASSWORD)
        data = make_data(tmp_path, smtp=None, runtime=None, seed=None,
                         account={"sent_folder": "Sent", "username": user.name})
        data["imap_connections"][0].update(imap_host=dovecot.host,
                                           imap_port=dovecot.imap_port)
        env = await make_env(data=data)
        item = await single_follower_reply(env)
        await _died_mid_send(env, item.id)
        # the dead node's send went out, and the server filed it in Sent
        await trio.to_thread.run_sync(dovecot.append, user, item.raw, "Sent")
        transport = ScriptedTransport([])
        actor = OutboxActor(env.config, env.store, sent_copy=None, node="n2",
                            transports=lambda config, account: transport)
        assert await actor.deliver_due() == 1
        assert transport.calls == []  # not sent a second time
        assert (await env.outbox(item.id)).status == "sent"
        assert await events(env, "outbox.resend_risk") == []
        (sent,) = await events(env, "outbox.sent")
        assert "Sent folder" in sent.data["reply"]
    finally:
        dovecot.cleanup()
