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
