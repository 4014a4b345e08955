"""Failed-message listing, retry's delete and retention (``purge``), on both stores."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from daemon.store import RawRecord, Store

OLD = datetime(2024, 1, 1, tzinfo=UTC)
NEW = datetime(2024, 6, 1, tzinfo=UTC)


def add(tx, key: str, status: str, created: datetime) -> None:
    tx.add_raw(RawRecord(source_key=key, account="a", raw=b"bytes of " + key.encode(),
                         status=status, message_id=f"<{key}@x>", created_at=created))


def test_purge_drops_old_bytes_and_events_but_never_an_unresolved_failure(store: Store):
    with store.transaction() as tx:
        add(tx, "old-imported", "imported", OLD)
        add(tx, "old-failed", "failed", OLD)
        add(tx, "new-imported", "imported", NEW)
        tx.add_event("message.imported", "a", {})
    with store.transaction() as tx:
        raws, events = tx.purge(datetime.now(UTC) + timedelta(seconds=1))
    assert (raws, events) == (2, 1)  # both imported ones are older than "now + 1s"
    with store.transaction() as tx:
        assert tx.get_raw("old-failed").raw == b"bytes of old-failed"
        assert tx.get_raw("old-imported").raw == b""
        assert tx.find_raw_by_message_id("a", "<old-imported@x>") is not None  # still a dup
        assert tx.events_since(0) == []
        assert tx.purge(datetime.now(UTC) + timedelta(seconds=1)) == (0, 0)


def test_purge_keeps_what_is_younger_than_the_cutoff(store: Store):
    with store.transaction() as tx:
        add(tx, "old", "imported", OLD)
        add(tx, "new", "imported", NEW)
    with store.transaction() as tx:
        assert tx.purge(OLD + timedelta(days=1))[0] == 1
        assert tx.get_raw("new").raw == b"bytes of new"


def test_failed_raw_pages_by_id_and_raw_by_id_finds_them(store: Store):
    with store.transaction() as tx:
        for n in range(3):
            add(tx, f"f{n}", "failed", NEW)
        add(tx, "ok", "imported", NEW)
    with store.transaction() as tx:
        first = tx.failed_raw(0, limit=2)
        rest = tx.failed_raw(first[-1][0], limit=2)
        assert [r.source_key for _, r in first + rest] == ["f0", "f1", "f2"]
        assert tx.raw_by_id(first[0][0]).source_key == "f0"
        tx.delete_raw("f0")
        assert tx.raw_by_id(first[0][0]) is None and tx.get_raw("f0") is None


def test_find_page_and_outbox_page_follow_the_cursor(store: Store):
    from daemon.store import OutboxItem

    with store.transaction() as tx:
        ids = [tx.create("person", {"n": n}) for n in range(5)]
        for n in range(3):
            tx.enqueue(OutboxItem(account="a", recipient="x@example.com",
                                  message_id=f"<p{n}@x>", raw=b"x"))
    with store.transaction() as tx:
        first = tx.find_page("person", {}, after_id=0, limit=2)
        second = tx.find_page("person", {}, after_id=first[-1].id, limit=2)
        newest = tx.find_page("person", {}, after_id=ids[2], limit=5, newest_first=True)
        assert [o.id for o in first + second] == ids[:4]
        assert [o.id for o in newest] == [ids[1], ids[0]]
        assert [o.id for o in tx.find_page("person", {"n": 4}, after_id=0, limit=9)] == \
            [ids[4]]
        items = tx.outbox_page("queued", 0, 2)
        assert len(items) == 2 and tx.outbox_page("queued", items[-1].id, 2)[0].id > items[-1].id
        assert tx.cancel_outbox(items[0].id) and not tx.cancel_outbox(items[0].id)
        assert tx.get_outbox(items[0].id).status == "cancelled"
        tx.mark_failed(items[1].id, "550 no")
        assert tx.requeue_outbox(items[1].id)
        assert tx.get_outbox(items[1].id).status == "queued"
        assert not tx.requeue_outbox(items[0].id)  # cancelled stays cancelled
