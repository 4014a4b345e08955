"""Outbox claims across nodes: a visibility timeout, and SKIP LOCKED in PostgreSQL."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta

import pytest

from daemon.store import OutboxItem, Store

NOW = datetime(2026, 1, 1, 12, tzinfo=UTC)
LATER = NOW + timedelta(minutes=5)


def queue(store: Store, n: int) -> list[int]:
    with store.transaction() as tx:
        return [tx.enqueue(OutboxItem("acc", f"r{i}@x.example", f"<m{i}@x>", b"raw"))
                for i in range(n)]


def claim(store: Store, node: str, now: datetime = NOW, limit: int = 50) -> list[int]:
    with store.transaction() as tx:
        return [item.id for item in tx.claim_due(now, node, now + timedelta(minutes=5),
                                                 limit)]


def test_a_claimed_item_is_not_due_for_another_node_until_the_claim_expires(store: Store):
    ids = queue(store, 3)
    assert claim(store, "n1", limit=2) == ids[:2]
    assert claim(store, "n2") == ids[2:]
    assert claim(store, "n3") == []
    assert claim(store, "n1") == ids[:2]  # its own earlier claims are over (one round at a time)
    assert claim(store, "n2", now=LATER + timedelta(seconds=1)) == ids  # n1 went away


def test_sending_first_and_a_dead_senders_item_comes_back_as_sending(store: Store):
    (id,) = queue(store, 1)
    claim(store, "n1")
    with store.transaction() as tx:
        assert tx.mark_sending(id, "n1")
        assert not tx.mark_sending(id, "n2")  # not its claim: it must not send
    # n1 dies mid-send; after the visibility timeout n2 finds it "sending"
    with store.transaction() as tx:
        (item,) = tx.claim_due(LATER + timedelta(seconds=1), "n2",
                               LATER + timedelta(minutes=10))
        assert item.status == "sending"
        assert tx.mark_sending(id, "n2")
        tx.mark_sent(id, LATER)
    with store.transaction() as tx:
        assert tx.get_outbox(id).status == "sent"
        assert tx.claim_due(LATER + timedelta(hours=1), "n3", LATER + timedelta(hours=2)) == []


def test_a_retry_puts_the_item_back_in_the_queue_unclaimed(store: Store):
    (id,) = queue(store, 1)
    claim(store, "n1")
    with store.transaction() as tx:
        tx.mark_sending(id, "n1")
        tx.mark_retry(id, "451 busy", NOW + timedelta(seconds=30))
        assert tx.get_outbox(id).status == "queued"
    assert claim(store, "n2", now=NOW + timedelta(seconds=31)) == [id]


@pytest.mark.postgres
def test_concurrent_claims_skip_each_others_rows(pg_url: str):
    from daemon.store import open_store

    store = open_store(pg_url)
    try:
        ids = queue(store, 4)
        holding, release = threading.Event(), threading.Event()
        first: list[int] = []

        def slow_claimant() -> None:
            with store.transaction() as tx:
                first.extend(i.id for i in tx.claim_due(NOW, "n1", LATER, 2))
                holding.set()
                release.wait(10)  # rows locked, not committed

        thread = threading.Thread(target=slow_claimant)
        thread.start()
        assert holding.wait(10)
        second = claim(store, "n2")  # does not wait for n1's locks: skips them
        release.set()
        thread.join()
        assert first == ids[:2] and second == ids[2:]
    finally:
        store.close()
