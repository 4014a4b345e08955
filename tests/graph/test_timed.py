"""The Graph actor's timing under MockClock (autojump): backstop, renewal, throttling.

The emulator and the webhook routes talk over ``httpx.ASGITransport`` and the store runs
inline, so every wait is a Trio wait and the clock jumps exactly to the next deadline.
"""

from __future__ import annotations

from functools import partial
from typing import Any

import pytest
import trio
import trio.testing

from daemon.actors.graph import run_graph_account
from daemon.actors.status import AccountHandle, AccountStatus
from daemon.graph.client import static_token
from daemon.messages import OutcomeStatus
from tests.graph.conftest import MAILBOX, InProcess, graph_account, graph_app, mail, submit_many_of
from tests.graph.test_actor import idle_after_rounds, wait_subscribed


@pytest.fixture
def autojump_clock() -> trio.testing.MockClock:
    return trio.testing.MockClock(autojump_threshold=0)


async def start(nursery: trio.Nursery, env: InProcess, **account: Any) -> AccountHandle:
    acct = graph_account(**account)
    handle = AccountHandle(AccountStatus(acct.id, kind="graph"))
    await nursery.start(partial(
        run_graph_account, acct, graph_app(env.emulator),
        submit_many=submit_many_of(env.processor), store=env.store, handle=handle,
        tokens=static_token(env.emulator.token), registry=env.registry,
        webhook_base_url=env.webhook_url, transport=env.transport))
    return handle


async def test_notifications_off_still_stored_by_the_backstop_round(
        autojump_clock, in_process, nursery):
    env = in_process
    handle = await start(nursery, env)
    await idle_after_rounds(handle, since=0)
    await wait_subscribed(handle)
    env.emulator.notifications_enabled = False
    delivered_at = trio.current_time()
    env.emulator.deliver(MAILBOX, mail("Quiet webhook"))
    committed = await env.processor.wait_for_message("<quiet-webhook@customer.example>")
    assert committed.outcome.status is OutcomeStatus.IMPORTED
    assert trio.current_time() - delivered_at == pytest.approx(300, abs=1)


async def test_subscription_renewed_at_half_life(autojump_clock, in_process, nursery):
    env = in_process
    handle = await start(nursery, env, graph_subscription_minutes=120,
                         graph_backstop_seconds=10_000)
    await wait_subscribed(handle)
    sub = env.emulator.active_subscriptions(MAILBOX)[0]
    first_expiry = sub.expires
    created_at = trio.current_time()
    while handle.status.extra["subscription"]["renewals"] < 1:
        await handle.status.changed.wait()
    assert trio.current_time() - created_at == pytest.approx(3600, abs=2)
    assert env.emulator.subscriptions[sub.id].expires >= first_expiry
    assert handle.status.extra["subscription"]["state"] == "active"


async def test_refused_expiry_is_clamped(autojump_clock, in_process, nursery):
    env = in_process
    env.emulator.max_subscription_minutes = 1000
    handle = await start(nursery, env, graph_subscription_minutes=4000)
    await wait_subscribed(handle)
    (sub,) = env.emulator.active_subscriptions(MAILBOX)
    assert sub.expires  # created with 1000 (4000 -> 2000 -> 1000 minutes)
    assert handle.status.extra["subscription"]["state"] == "active"


async def test_lifecycle_events(autojump_clock, in_process, nursery):
    env = in_process
    handle = await start(nursery, env, graph_backstop_seconds=10_000)
    await idle_after_rounds(handle, since=0)
    await wait_subscribed(handle)
    (sub,) = env.emulator.active_subscriptions(MAILBOX)

    # reauthorizationRequired -> reauthorized, then a delta round
    done = int(handle.status.extra["rounds"])
    assert await env.emulator.lifecycle(sub.id, "reauthorizationRequired") == 202
    await idle_after_rounds(handle, since=done)
    assert env.emulator.reauthorized == [sub.id]
    assert not env.emulator.subscriptions[sub.id].reauthorization_required

    # missed -> a delta round catches up, nothing twice
    env.emulator.notifications_enabled = False
    env.emulator.deliver(MAILBOX, mail("Missed one"))
    env.emulator.deliver(MAILBOX, mail("Missed two"))
    env.emulator.notifications_enabled = True
    done = int(handle.status.extra["rounds"])
    before = trio.current_time()
    assert await env.emulator.lifecycle(sub.id, "missed") == 202
    await idle_after_rounds(handle, since=done)
    assert trio.current_time() - before < 1
    assert sorted(c.message_id for c in env.processor.committed) == [
        "<missed-one@customer.example>", "<missed-two@customer.example>"]

    # subscriptionRemoved -> recreated (a new id and clientState), then a delta round
    assert await env.emulator.lifecycle(sub.id, "subscriptionRemoved") == 202
    while not env.emulator.active_subscriptions(MAILBOX):
        await handle.status.changed.wait()
    (new,) = env.emulator.active_subscriptions(MAILBOX)
    assert new.id != sub.id and new.client_state != sub.client_state
    env.emulator.deliver(MAILBOX, mail("After recreation"))
    committed = await env.processor.wait_for_message("<after-recreation@customer.example>")
    assert committed.outcome.status is OutcomeStatus.IMPORTED
    assert len(env.processor.committed) == 3
    # The old subscription's clientState is no longer accepted.
    verdict, _ = env.registry.verify("support", sub.id, sub.client_state)
    assert verdict.value == "invalid"


async def test_429_storm_honours_retry_after_and_never_more_than_four_in_flight(
        autojump_clock, in_process, nursery):
    env = in_process
    env.emulator.page_size = 50
    for n in range(30):
        env.emulator.deliver(MAILBOX, mail(f"Storm {n}"))
    env.emulator.throttle(5, retry_after=7, in_batch=5)
    started = trio.current_time()
    handle = await start(nursery, env, graph_mode="polling")
    await idle_after_rounds(handle, since=0)
    assert len(env.processor.committed) == 30
    assert env.emulator.max_in_flight <= 4
    assert env.emulator.throttled_responses == 10
    # five 429s in a row on the first request, then one for the batch items: 6 x 7 s
    assert trio.current_time() - started == pytest.approx(42, abs=1)
    assert handle.status.extra["throttle"]["throttled"] == 10
    assert all(m.is_read for m in env.emulator.messages_in(MAILBOX, "inbox"))


async def test_concurrent_downloads_are_bounded_by_four(autojump_clock, in_process, nursery):
    env = in_process
    env.emulator.page_size = 100
    for n in range(40):
        env.emulator.deliver(MAILBOX, mail(f"Many {n}"))
    handle = await start(nursery, env, graph_mode="polling")
    await idle_after_rounds(handle, since=0)
    assert len(env.processor.committed) == 40
    assert env.emulator.max_in_flight == 4


async def test_failed_creation_is_retried_every_five_minutes_not_in_a_loop(
        autojump_clock, in_process, nursery):
    import httpx

    async def unreachable(scope, receive, send):
        if scope["type"] == "http":
            await send({"type": "http.response.start", "status": 502, "headers": []})
            await send({"type": "http.response.body", "body": b""})

    env = in_process
    await env.emulator.push_client.aclose()
    env.emulator.push_client = httpx.AsyncClient(transport=httpx.ASGITransport(app=unreachable))
    handle = await start(nursery, env)
    start_time = trio.current_time()
    await idle_after_rounds(handle, since=0)
    while handle.status.extra.get("subscription", {}).get("state") != "failed":
        await handle.status.changed.wait()
    assert "validation" in handle.status.extra["subscription"]["error"].lower()
    await trio.sleep(601 - (trio.current_time() - start_time))
    attempts = [p for m, p in env.emulator.requests if m == "POST" and p.endswith("/subscriptions")]
    assert len(attempts) == 3    # at 0, 300 and 600 s
    env.emulator.deliver(MAILBOX, mail("Still polled"))
    committed = await env.processor.wait_for_message("<still-polled@customer.example>")
    assert committed.outcome.status is OutcomeStatus.IMPORTED   # the backstop round


async def test_reauthorization_of_a_vanished_subscription_recreates_it(
        autojump_clock, in_process, nursery):
    env = in_process
    handle = await start(nursery, env, graph_backstop_seconds=10_000)
    await wait_subscribed(handle)
    (sub,) = env.emulator.active_subscriptions(MAILBOX)
    del env.emulator.subscriptions[sub.id]          # gone at Graph without a word
    body = {"value": [{"subscriptionId": sub.id, "clientState": sub.client_state,
                       "lifecycleEvent": "reauthorizationRequired", "tenantId": "t"}]}
    response = await env.emulator.push_client.post(sub.lifecycle_url, json=body)
    assert response.status_code == 202
    while not env.emulator.active_subscriptions(MAILBOX):
        await handle.status.changed.wait()
    (new,) = env.emulator.active_subscriptions(MAILBOX)
    assert new.id != sub.id
    assert handle.status.extra["subscription"]["state"] == "active"
