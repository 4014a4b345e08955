"""Issue 9: with the disk nearly full, a batch that no longer fits goes in one by one.

The "disk" is a SQLite size cap (``PRAGMA max_page_count``), which raises the same
SQLITE_FULL a full file system does.
"""

from __future__ import annotations

import sqlite3

import pytest
import trio

from daemon.errors import StoreBusyError, store_is_full
from daemon.messages import OutcomeStatus, RawMessage, source_key
from tests.crm.conftest import mail


def raw(n: int, body: str = "Please help.\n") -> RawMessage:
    return RawMessage(account="support", source_key=source_key("test", "support", f"m{n}"),
                      raw=mail(f"Request {n}", message_id=f"m{n}@acme.example", body=body))


def cap_the_store(harness, spare_pages: int) -> None:
    """Leave ``spare_pages`` free pages (4 KiB each) in the database file."""
    conn = harness.store.store._conn  # the test reaches in: there is no public knob
    pages = conn.execute("PRAGMA page_count").fetchone()[0]
    free = conn.execute("PRAGMA freelist_count").fetchone()[0]
    conn.execute(f"PRAGMA max_page_count = {pages - free + spare_pages}")


async def test_issue_9_a_full_store_takes_the_messages_that_still_fit(make_harness):
    harness = await make_harness()
    processor = harness.processor
    cap_the_store(harness, spare_pages=60)
    big = "A line of a long message.\n" * 40_000  # ~1 MB: never fits
    batch = [raw(1), raw(2, big), raw(3), raw(4)]
    async with trio.open_nursery() as nursery:
        await nursery.start(processor.run)
        with pytest.raises(StoreBusyError) as caught:
            await processor.submit_many(batch)
        assert store_is_full(caught.value)
        stored = {r.source_key: (await harness.raw(r.source_key)) for r in batch}
        assert [k for k, v in stored.items() if v is not None] == [
            "test:support:m1", "test:support:m3", "test:support:m4"]
        # The intake fetches the same batch again: the three come back as stored,
        # the big one is still refused, nothing is imported twice.
        with pytest.raises(StoreBusyError):
            await processor.submit_many(batch)
        assert len(await harness.find("conversationmessage")) == 3
        # Room again (the administrator freed space): the batch completes.
        harness.store.store._conn.execute("PRAGMA max_page_count = 1073741823")
        outcomes = await processor.submit_many(batch)
        assert [o.status for o in outcomes] == [OutcomeStatus.IMPORTED] * 4
        nursery.cancel_scope.cancel()
    assert len(await harness.find("conversationmessage")) == 4


async def test_a_locked_store_still_fails_the_batch_at_once(make_harness, tmp_path):
    harness = await make_harness()
    processor = harness.processor
    holder = sqlite3.connect(tmp_path / "postroom.db", isolation_level=None)
    harness.store.store._conn.execute("PRAGMA busy_timeout = 50")
    holder.execute("BEGIN EXCLUSIVE")
    try:
        with pytest.raises(StoreBusyError) as caught:
            await processor.process_many([raw(1), raw(2)])
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    assert not store_is_full(caught.value)
    assert await harness.raw("test:support:m1") is None
