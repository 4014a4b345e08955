"""The Graph actor against the emulator on loopback, with the real webhook routes.

Delta is the source of truth: notifications only kick a round. Each test checks one
promise of daemon/actors/graph.py; waits are on events (the fake processor's commits, the
account's status), never sleeps.
"""

from __future__ import annotations

from functools import partial
from typing import Any

import httpx
import trio

from daemon.actors.graph import run_graph_account
from daemon.actors.status import AccountHandle, AccountState, AccountStatus
from daemon.graph.client import static_token
from daemon.graph.delta import SyncState, delta_key
from daemon.graph.subscriptions import SUBSCRIPTION_KEY, Subscription, SubState
from daemon.messages import OutcomeStatus, RawMessage
from tests.fakes.graph import GraphEmulator
from tests.fakes.processor import FakeProcessor
from tests.graph.conftest import (
    MAILBOX,
    Webhooks,
    graph_account,
    graph_app,
    mail,
    submit_many_of,
)


async def start(nursery: trio.Nursery, emulator: GraphEmulator, processor: FakeProcessor,
                webhooks: Webhooks, **account: Any) -> AccountHandle:
    acct = graph_account(**account)
    handle = AccountHandle(AccountStatus(acct.id, kind="graph"))
    await nursery.start(partial(
        run_graph_account, acct, graph_app(emulator), submit_many=submit_many_of(processor),
        store=processor.store, handle=handle, tokens=static_token(emulator.token),
        registry=webhooks.registry, webhook_base_url=webhooks.url))
    return handle


def rounds(handle: AccountHandle) -> int:
    return int(handle.status.extra.get("rounds", 0))


async def idle_after_rounds(handle: AccountHandle, more: int = 1, *, since: int | None = None
                            ) -> None:
    """Wait until ``more`` delta rounds past ``since`` (default: now) are done and idle."""
    target = (rounds(handle) if since is None else since) + more
    while not (rounds(handle) >= target and handle.status.state is AccountState.IDLE):
        await handle.status.changed.wait()


async def wait_subscribed(handle: AccountHandle) -> None:
    while handle.status.extra.get("subscription", {}).get("state") != "active":
        await handle.status.changed.wait()


async def test_created_message_is_stored_within_a_second_of_its_notification(
        emulator, processor, webhooks, nursery):
    handle = await start(nursery, emulator, processor, webhooks)
    with trio.fail_after(5):
        await idle_after_rounds(handle, since=0)
        await wait_subscribed(handle)
    sub = emulator.active_subscriptions(MAILBOX)[0]
    assert sub.immutable and sub.lifecycle_url.endswith("/oauth/msg/lifecycle?account=support")
    started = trio.current_time()
    emulator.deliver(MAILBOX, mail("Printer broken"))
    with trio.fail_after(1):
        committed = await processor.wait_for_message("<printer-broken@customer.example>")
    assert trio.current_time() - started < 1
    assert committed.outcome.status is OutcomeStatus.IMPORTED
    assert committed.message.source_key == "graph:support:INBOX:IMM000001"
    assert emulator.delivered_notifications == 1
    with trio.fail_after(5):
        while not emulator.messages_in(MAILBOX, "inbox")[0].is_read:
            await idle_after_rounds(handle)
    assert emulator.requests_without_immutable_ids == 0


async def test_a_wrong_client_state_fetches_nothing_and_is_counted(
        emulator, processor, webhooks, nursery):
    handle = await start(nursery, emulator, processor, webhooks)
    with trio.fail_after(5):
        await idle_after_rounds(handle, since=0)
        await wait_subscribed(handle)
    sub = emulator.active_subscriptions(MAILBOX)[0]
    before = len(emulator.requests)
    async with httpx.AsyncClient() as client:
        url = f"{webhooks.url}/oauth/msg/notification?account=support"
        forged = {"value": [{"subscriptionId": sub.id, "clientState": "guessed",
                             "changeType": "created", "resource": "Users/x/Messages/y"}]}
        assert (await client.post(url, json=forged)).status_code == 202
        assert (await client.post(url, content=b"{not json")).status_code == 400
        assert (await client.post(url, json={"value": "no list"})).status_code == 400
    await trio.testing.wait_all_tasks_blocked()
    assert webhooks.registry.counters.invalid == 1
    assert webhooks.registry.counters.malformed == 2
    assert len(emulator.requests) == before  # no delta round, nothing fetched


async def test_a_failing_message_goes_to_the_created_failure_folder(
        emulator, processor, webhooks, nursery):
    emulator.deliver(MAILBOX, mail("Poison", extra="X-Test-Poison: yes\r\n"))
    emulator.deliver(MAILBOX, mail("Good one"))
    emulator.deliver(MAILBOX, mail("Huge", size=3000))
    emulator.deliver(MAILBOX, mail("Already read"), is_read=True)
    handle = await start(nursery, emulator, processor, webhooks, max_message_bytes=2000,
                         graph_mode="polling")
    with trio.fail_after(5):
        await idle_after_rounds(handle, since=0)
    assert sorted(s.value for s in processor.statuses()) == ["failed", "failed", "imported"]
    failed_folder = emulator.folder_id(MAILBOX, "postroom-failed")
    assert failed_folder is not None
    moved = {m.internet_message_id for m in emulator.messages_in(MAILBOX, failed_folder)}
    assert moved == {"<poison@customer.example>", "<huge@customer.example>"}
    huge = next(c for c in processor.committed if c.message.too_large)
    assert huge.message.raw == b""   # not downloaded
    assert ("GET", f"/v1.0/users/{MAILBOX}/messages/IMM000003/$value") not in emulator.requests
    assert handle.status.extra["mode"] == "polling"
    assert not emulator.subscriptions


async def test_410_resyncs_without_duplicates(emulator, processor, webhooks, nursery):
    for n in range(5):
        emulator.deliver(MAILBOX, mail(f"Backlog {n}"))
    handle = await start(nursery, emulator, processor, webhooks, graph_mode="polling")
    with trio.fail_after(5):
        await idle_after_rounds(handle, since=0)
    assert len(processor.committed) == 5
    # A message left unread after import (someone marked it unread again) comes back in
    # the fresh delta: found as a duplicate, never imported twice.
    emulator.messages_in(MAILBOX, "inbox")[0].is_read = False
    emulator.expire_delta_tokens()
    emulator.deliver(MAILBOX, mail("After resync"))
    handle.wake()
    with trio.fail_after(5):
        await idle_after_rounds(handle, since=1)
    imported = [c.message_id for c in processor.committed
                if c.outcome.status is OutcomeStatus.IMPORTED]
    assert len(imported) == len(set(imported)) == 6
    assert processor.statuses().count(OutcomeStatus.DUPLICATE) == 1
    assert handle.status.extra["delta_resyncs"] == 1


async def test_delegated_shared_mailbox_polls_and_never_subscribes(
        emulator, processor, webhooks, nursery):
    handle = await start(nursery, emulator, processor, webhooks,
                         username="agent@example.com", graph_poll_interval_seconds=0.2)
    assert handle.status.extra["mode"] == "polling"
    emulator.deliver(MAILBOX, mail("Shared inbox"))
    with trio.fail_after(5):
        await processor.wait_for_message("<shared-inbox@customer.example>")
    assert not emulator.subscriptions
    assert not any(path == "/v1.0/subscriptions" for _, path in emulator.requests)


async def test_flags_a_crash_left_pending_are_finished_first(
        emulator, processor, webhooks, nursery):
    first = emulator.deliver(MAILBOX, mail("Committed before crash"))
    # The state a crash leaves: message committed with its checkpoint, not yet read.
    await processor.submit(RawMessage("support", f"graph:support:INBOX:{first}",
                                      mail("Committed before crash")))
    link = (f"{emulator.base_url}/users/{MAILBOX}/mailFolders/inbox/messages/delta"
            "?$deltatoken=999999")
    await processor.store.run(lambda tx: tx.set_checkpoint(
        "support", delta_key("INBOX"), SyncState(link, (first,)).encode()))
    handle = await start(nursery, emulator, processor, webhooks, graph_mode="polling")
    with trio.fail_after(5):
        await idle_after_rounds(handle, since=0)
    assert emulator.messages_in(MAILBOX, "inbox")[0].is_read
    state = SyncState.decode(await processor.store.run(
        lambda tx: tx.get_checkpoint("support", delta_key("INBOX"))))
    assert state.pending == ()


async def test_subscription_state_survives_in_its_own_checkpoint(
        emulator, processor, webhooks, nursery):
    handle = await start(nursery, emulator, processor, webhooks)
    with trio.fail_after(5):
        await idle_after_rounds(handle, since=0)
        await wait_subscribed(handle)
    saved = Subscription.decode(await processor.store.run(
        lambda tx: tx.get_checkpoint("support", SUBSCRIPTION_KEY)))
    sub = emulator.active_subscriptions(MAILBOX)[0]
    assert saved.state is SubState.ACTIVE and saved.id == sub.id
    assert sub.client_state not in saved.encode()   # only its MAC is stored


async def test_a_kick_recorded_before_a_crash_is_synced_and_cleared_on_start(
        emulator, processor, webhooks, nursery):
    from daemon.graph.notifications import KICK_KEY
    emulator.deliver(MAILBOX, mail("Acknowledged then crashed"))
    await processor.store.run(lambda tx: tx.set_checkpoint("support", KICK_KEY, "1"))
    handle = await start(nursery, emulator, processor, webhooks)
    with trio.fail_after(5):
        await processor.wait_for_message("<acknowledged-then-crashed@customer.example>")
        await idle_after_rounds(handle, since=0)
    assert await processor.store.run(lambda tx: tx.get_checkpoint("support", KICK_KEY)) is None


async def test_a_message_deleted_between_delta_and_download_is_skipped(
        emulator, processor, webhooks, nursery):
    gone = emulator.deliver(MAILBOX, mail("Deleted meanwhile"))
    emulator.deliver(MAILBOX, mail("Still here"))
    emulator.gone.add(gone)
    handle = await start(nursery, emulator, processor, webhooks, graph_mode="polling")
    with trio.fail_after(5):
        await idle_after_rounds(handle, since=0)
    assert [c.message_id for c in processor.committed] == ["<still-here@customer.example>"]
    assert handle.status.state is AccountState.IDLE   # no crash loop on the 404
