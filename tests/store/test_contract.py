"""The Store/Tx contract (daemon/store/base.py), run against SQLite and PostgreSQL alike."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest

from daemon.errors import StoreError, UniqueViolation
from daemon.store import Event, OutboxItem, RawRecord, Store, StoredFile, open_store

T0 = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)


def ids(objs):
    return [o.id for o in objs]


# -- objects ---------------------------------------------------------------------------

def test_create_get_update_delete(store: Store):
    with store.transaction() as tx:
        pid = tx.create("person", {"email": "ann@example.com", "name": "Ann", "age": 41})
        assert tx.get("person", pid).props == {"email": "ann@example.com", "name": "Ann",
                                               "age": 41}
        tx.update("person", pid, {"name": "Ann B", "company": None})
        updated = tx.get("person", pid)
    assert updated.limetype == "person" and updated.id == pid
    assert updated.props == {"email": "ann@example.com", "name": "Ann B", "age": 41,
                             "company": None}
    with store.transaction() as tx:
        tx.delete("person", pid)
        tx.delete("person", pid)  # absent: no error
        assert tx.get("person", pid) is None


def test_get_update_delete_check_the_limetype(store: Store):
    with store.transaction() as tx:
        pid = tx.create("person", {"name": "Ann"})
        assert tx.get("company", pid) is None
        with pytest.raises(KeyError):
            tx.update("company", pid, {"name": "x"})
        tx.delete("company", pid)
        assert tx.get("person", pid).props == {"name": "Ann"}


def test_update_missing_object_raises_key_error(store: Store):
    with store.transaction() as tx, pytest.raises(KeyError):
        tx.update("person", 424242, {"name": "nobody"})


def test_props_round_trip_json_values(store: Store):
    props = {"s": "å ✓ \"q\"", "i": -7, "f": 2.5, "t": True, "n": None,
             "list": [1, "a"], "obj": {"k": "v"}}
    with store.transaction() as tx:
        oid = tx.create("thing", props)
    with store.transaction() as tx:
        assert tx.get("thing", oid).props == props


@pytest.mark.parametrize("indexed", [False, True], ids=["scan", "indexed"])
def test_find_compares_json_scalars_by_type(store: Store, indexed: bool):
    if indexed:
        for prop in ("v", "email"):
            store.ensure_index("thing", prop)
    with store.transaction() as tx:
        s = tx.create("thing", {"v": "1", "email": "a@x"})
        i = tx.create("thing", {"v": 1})
        f = tx.create("thing", {"v": 1.0})
        t = tx.create("thing", {"v": True})
        fa = tx.create("thing", {"v": False})
        zero = tx.create("thing", {"v": 0})
        null = tx.create("thing", {"v": None})
        missing = tx.create("thing", {"other": 1})
        tx.create("person", {"v": 1})  # another limetype never matches
        assert ids(tx.find("thing", {"v": "1"})) == [s]
        assert ids(tx.find("thing", {"v": 1})) == [i, f]
        assert ids(tx.find("thing", {"v": 1.0})) == [i, f]
        assert ids(tx.find("thing", {"v": True})) == [t]
        assert ids(tx.find("thing", {"v": False})) == [fa]
        assert ids(tx.find("thing", {"v": 0})) == [zero]
        assert ids(tx.find("thing", {"v": None})) == [null, missing]
        assert ids(tx.find("thing", {"email": "a@x", "v": "1"})) == [s]
        assert tx.find("thing", {"email": "a@x", "v": 1}) == []
        assert tx.find("thing", {"v": "nope"}) == []


def test_find_without_where_lists_the_limetype(store: Store):
    with store.transaction() as tx:
        a = tx.create("person", {"n": 1})
        tx.create("company", {"n": 2})
        b = tx.create("person", {"n": 3})
        assert ids(tx.find("person")) == [a, b]
        assert ids(tx.find("person", {})) == [a, b]
        assert tx.find("nothing") == []


def test_find_newest_first_and_limit(store: Store):
    with store.transaction() as tx:
        made = [tx.create("message", {"conversation": 7, "n": n}) for n in range(5)]
        tx.create("message", {"conversation": 8})
        assert ids(tx.find("message", {"conversation": 7})) == made
        assert ids(tx.find("message", {"conversation": 7}, newest_first=True)) == made[::-1]
        assert ids(tx.find("message", {"conversation": 7}, limit=2)) == made[:2]
        assert ids(tx.find("message", {"conversation": 7}, limit=2,
                           newest_first=True)) == made[:2:-1]
        assert tx.find("message", {"conversation": 7}, limit=0) == []
        assert tx.find_one("message", {"conversation": 7}).id == made[0]
        assert tx.find_one("message", {"conversation": 9}) is None


@pytest.mark.parametrize(("limetype", "where", "error"), [
    ("person", {"e-mail": "x"}, ValueError),
    ("person", {"email'; DROP TABLE objects; --": "x"}, ValueError),
    ("per son", {"email": "x"}, ValueError),
    ("person", {"email": ["x"]}, TypeError),
    ("person", {"email": {"a": 1}}, TypeError),
])
def test_find_rejects_unsafe_names_and_non_scalars(store: Store, limetype, where, error):
    with store.transaction() as tx, pytest.raises(error):
        tx.find(limetype, where)


def test_ids_are_unique_across_limetypes_and_never_reused(store: Store):
    with store.transaction() as tx:
        made = [tx.create(lt, {}) for lt in ("person", "company", "helpdesk", "person")]
        tx.delete("person", made[-1])
        after_delete = tx.create("person", {})
    assert len(set(made)) == 4
    assert after_delete not in made


def test_unique_index_violation_leaves_the_transaction_usable(store: Store):
    store.ensure_index("person", "email", unique=True)
    store.ensure_index("person", "email", unique=True)  # idempotent
    with store.transaction() as tx:
        ann = tx.create("person", {"email": "ann@example.com"})
        with pytest.raises(UniqueViolation):
            tx.create("person", {"email": "ann@example.com"})
        bob = tx.create("person", {"email": "bob@example.com"})
        with pytest.raises(UniqueViolation):
            tx.update("person", bob, {"email": "ann@example.com"})
        tx.create("company", {"email": "ann@example.com"})  # other limetype: not covered
        tx.create("person", {"email": None})  # null and missing are not values
        tx.create("person", {"email": None})
        tx.create("person", {})
    with store.transaction() as tx:
        assert ids(tx.find("person", {"email": "ann@example.com"})) == [ann]
        assert tx.get("person", bob).props == {"email": "bob@example.com"}
        assert len(tx.find("person", {"email": None})) == 3


def test_unique_index_over_existing_duplicates_is_refused(store: Store):
    with store.transaction() as tx:
        tx.create("person", {"email": "ann@example.com"})
        tx.create("person", {"email": "ann@example.com"})
    with pytest.raises(UniqueViolation):
        store.ensure_index("person", "email", unique=True)
    store.ensure_index("person", "email")  # a plain index is fine


def test_ensure_index_rejects_unsafe_names(store: Store):
    with pytest.raises(ValueError):
        store.ensure_index("person", "email')) --")
    with pytest.raises(ValueError):
        store.ensure_index("person x", "email")


# -- transactions ---------------------------------------------------------------------

class Boom(Exception):
    pass


def test_exception_rolls_back_everything(store: Store):
    with pytest.raises(Boom), store.transaction() as tx:
        pid = tx.create("person", {"email": "ann@example.com"})
        tx.add_raw(RawRecord("k1", "support", b"raw", "imported"))
        tx.set_checkpoint("support", "uid", "42")
        tx.enqueue(OutboxItem("support", "ann@example.com", "<m1@x>", b"raw"))
        tx.add_event("message.imported", "support", {})
        raise Boom
    with store.transaction() as tx:
        assert tx.get("person", pid) is None
        assert tx.get_raw("k1") is None
        assert tx.get_checkpoint("support", "uid") is None
        assert tx.find_outbox_by_message_id("<m1@x>") is None
        assert tx.events_since(0) == []


def test_commit_is_visible_to_the_next_transaction_and_after_reopen(store_url: str):
    first = open_store(store_url)
    try:
        with first.transaction() as tx:
            pid = tx.create("person", {"email": "ann@example.com"})
    finally:
        first.close()
    again = open_store(store_url)
    try:
        with again.transaction() as tx:
            assert tx.get("person", pid).props == {"email": "ann@example.com"}
    finally:
        again.close()


def test_tx_is_unusable_after_its_transaction(store: Store):
    with store.transaction() as tx:
        tx.create("person", {})
    with pytest.raises(StoreError):
        tx.create("person", {})


def test_transactions_do_not_nest(store: Store):
    with store.transaction() as tx:
        pid = tx.create("person", {})
        with pytest.raises(StoreError), store.transaction():
            pass
    with store.transaction() as tx:
        assert tx.get("person", pid) is not None


# -- files ----------------------------------------------------------------------------

def test_files_round_trip(store: Store):
    data = bytes(range(256)) * 10
    with store.transaction() as tx:
        fid = tx.put_file(data, "report.pdf", "application/pdf")
        other = tx.put_file(b"", "empty.txt", "text/plain")
    with store.transaction() as tx:
        stored = tx.get_file(fid)
        assert tx.get_file(other).data == b""
        assert tx.get_file(999999) is None
    assert isinstance(stored, StoredFile)
    assert (stored.id, stored.filename, stored.content_type, stored.data) == (
        fid, "report.pdf", "application/pdf", data)
    assert stored.created_at.tzinfo is not None


# -- raw messages ---------------------------------------------------------------------

def raw(key: str, account: str = "support", **kw) -> RawRecord:
    return RawRecord(source_key=key, account=account, raw=b"From: a\r\n\r\n" + key.encode(),
                     status=kw.pop("status", "imported"), **kw)


def test_raw_round_trip(store: Store):
    received = datetime(2024, 5, 1, 14, 0, tzinfo=timezone(timedelta(hours=2)))
    record = raw("imap:support:INBOX:7:1", message_id="<a@x>", sha256="ab" * 32,
                 conversation_message_id=12, folder="INBOX", received_at=received,
                 status="failed", error="no parent")
    with store.transaction() as tx:
        tx.add_raw(record)
    with store.transaction() as tx:
        got = tx.get_raw(record.source_key)
        assert tx.get_raw("imap:support:INBOX:7:2") is None
    assert got.raw == record.raw and got.status == "failed" and got.error == "no parent"
    assert (got.message_id, got.sha256, got.conversation_message_id, got.folder) == (
        "<a@x>", "ab" * 32, 12, "INBOX")
    assert got.received_at == received and got.received_at.utcoffset() == timedelta(0)
    assert got.created_at is not None and got.created_at.tzinfo is not None


def test_duplicate_source_key_raises_and_the_transaction_continues(store: Store):
    with store.transaction() as tx:
        tx.add_raw(raw("k1"))
    with store.transaction() as tx:
        with pytest.raises(UniqueViolation):
            tx.add_raw(raw("k1", status="discarded"))
        tx.add_raw(raw("k2"))
    with store.transaction() as tx:
        assert tx.get_raw("k1").status == "imported"
        assert tx.get_raw("k2") is not None


def test_raw_lookup_by_message_id_and_sha256(store: Store):
    with store.transaction() as tx:
        tx.add_raw(raw("k1", message_id="<a@x>", sha256="s1"))
        tx.add_raw(raw("k2", message_id="<a@x>", sha256="s1"))
        tx.add_raw(raw("k3", account="sales", message_id="<b@x>", sha256="s2"))
    with store.transaction() as tx:
        assert tx.find_raw_by_message_id("support", "<a@x>").source_key == "k1"
        assert tx.find_raw_by_message_id("sales", "<a@x>") is None
        assert tx.find_raw_by_message_id("sales", "<b@x>").source_key == "k3"
        assert tx.find_raw_by_sha256("support", "s1").source_key == "k1"
        assert tx.find_raw_by_sha256("support", "s2") is None
        assert tx.find_raw_by_sha256("sales", "s2").source_key == "k3"


def test_set_raw_result(store: Store):
    with store.transaction() as tx:
        tx.add_raw(raw("k1", status="failed", error="boom"))
        tx.set_raw_result("k1", status="imported", conversation_message_id=5)
        with pytest.raises(KeyError):
            tx.set_raw_result("nope", status="imported")
    with store.transaction() as tx:
        got = tx.get_raw("k1")
    assert (got.status, got.error, got.conversation_message_id) == ("imported", None, 5)


def test_list_raw_filters_oldest_first(store: Store):
    with store.transaction() as tx:
        tx.add_raw(raw("k1", status="failed"))
        tx.add_raw(raw("k2"))
        tx.add_raw(raw("k3", account="sales", status="failed"))
        tx.add_raw(raw("k4", status="failed"))
    with store.transaction() as tx:
        def keys(**kw):
            return [r.source_key for r in tx.list_raw(**kw)]

        assert keys() == ["k1", "k2", "k3", "k4"]
        assert keys(account="support") == ["k1", "k2", "k4"]
        assert keys(status="failed") == ["k1", "k3", "k4"]
        assert keys(account="support", status="failed") == ["k1", "k4"]
        assert keys(status="failed", limit=2) == ["k1", "k3"]
        assert keys(account="nobody") == []


# -- checkpoints ----------------------------------------------------------------------

def test_checkpoints(store: Store):
    with store.transaction() as tx:
        assert tx.get_checkpoint("support", "INBOX:uid") is None
        tx.set_checkpoint("support", "INBOX:uid", "10")
        tx.set_checkpoint("support", "INBOX:uid", "11")
        tx.set_checkpoint("support", "INBOX:uidvalidity", "7")
        tx.set_checkpoint("support", "Sent:uid", "3")
        tx.set_checkpoint("support", "INBOX%:uid", "literal percent")
        tx.set_checkpoint("sales", "INBOX:uid", "99")
        assert tx.get_checkpoint("support", "INBOX:uid") == "11"
    with store.transaction() as tx:
        tx.delete_checkpoints("support", "INBOX:")
    with store.transaction() as tx:
        assert tx.get_checkpoint("support", "INBOX:uid") is None
        assert tx.get_checkpoint("support", "INBOX:uidvalidity") is None
        assert tx.get_checkpoint("support", "Sent:uid") == "3"
        assert tx.get_checkpoint("support", "INBOX%:uid") == "literal percent"
        assert tx.get_checkpoint("sales", "INBOX:uid") == "99"
        tx.delete_checkpoints("support", "")
        assert tx.get_checkpoint("support", "Sent:uid") is None
        assert tx.get_checkpoint("sales", "INBOX:uid") == "99"


def test_checkpoint_prefix_wildcards_are_literal(store: Store):
    with store.transaction() as tx:
        tx.set_checkpoint("a", "x_1", "keep")
        tx.set_checkpoint("a", "x%2", "keep")
        tx.delete_checkpoints("a", "x_")
        assert tx.get_checkpoint("a", "x_1") is None
        assert tx.get_checkpoint("a", "x%2") == "keep"


# -- outbox ---------------------------------------------------------------------------

def mail(message_id: str, **kw) -> OutboxItem:
    return OutboxItem(account="support", recipient="ann@example.com", message_id=message_id,
                      raw=b"Message-ID: " + message_id.encode(), **kw)


def test_outbox_round_trip(store: Store):
    item = mail("<m1@x>", kind="notification", message_follower_id=3,
                conversation_message_id=4, next_attempt_at=T0)
    with store.transaction() as tx:
        oid = tx.enqueue(item)
    with store.transaction() as tx:
        got = tx.get_outbox(oid)
        assert tx.get_outbox(oid + 1000) is None
        assert tx.find_outbox_by_message_id("<m1@x>") == got
        assert tx.find_outbox_by_message_id("<none@x>") is None
    assert got.id == oid and got.created_at is not None
    assert (got.account, got.recipient, got.message_id, got.raw, got.kind) == (
        "support", "ann@example.com", "<m1@x>", item.raw, "notification")
    assert (got.status, got.attempts, got.next_attempt_at, got.last_error, got.sent_at) == (
        "queued", 0, T0, None, None)
    assert (got.message_follower_id, got.conversation_message_id) == (3, 4)


def test_held_items_are_listed_counted_and_released_never_due(store: Store):
    with store.transaction() as tx:
        a = tx.enqueue(mail("<a@x>", status="held"))
        b = tx.enqueue(mail("<b@x>", status="held"))
        c = tx.enqueue(mail("<c@x>"))
    with store.transaction() as tx:
        assert ids(tx.due(T0)) == [c]
        assert ids(tx.outbox_by_status("held")) == [a, b]
        assert ids(tx.outbox_by_status("held", limit=1)) == [a]
        assert (tx.count_outbox("held"), tx.count_outbox("queued")) == (2, 1)
        assert tx.release_outbox(b) is True
        assert tx.release_outbox(b) is False  # no longer held
        assert tx.release_outbox(c) is False
    with store.transaction() as tx:
        assert ids(tx.due(T0)) == [b, c]
        assert tx.count_outbox("held") == 1


def test_outbox_message_ids_are_unique(store: Store):
    with store.transaction() as tx:
        first = tx.enqueue(mail("<m1@x>"))
        with pytest.raises(UniqueViolation):
            tx.enqueue(mail("<m1@x>"))
        second = tx.enqueue(mail("<m2@x>"))
    assert second != first


def test_due_oldest_first_and_respects_next_attempt_at(store: Store):
    with store.transaction() as tx:
        a = tx.enqueue(mail("<a@x>"))
        b = tx.enqueue(mail("<b@x>", next_attempt_at=T0 + timedelta(minutes=5)))
        c = tx.enqueue(mail("<c@x>", next_attempt_at=T0))
        d = tx.enqueue(mail("<d@x>"))
        e = tx.enqueue(mail("<e@x>"))
        tx.mark_sent(d, T0)
        tx.mark_failed(e, "550 no such user")
    with store.transaction() as tx:
        assert ids(tx.due(T0)) == [a, c]
        assert ids(tx.due(T0 - timedelta(microseconds=1))) == [a]
        assert ids(tx.due(T0 + timedelta(minutes=5))) == [a, b, c]
        assert ids(tx.due(T0 + timedelta(minutes=5), limit=2)) == [a, b]
        # the same instant in another zone
        assert ids(tx.due(T0.astimezone(timezone(timedelta(hours=-5))))) == [a, c]


def test_mark_retry_sent_failed(store: Store):
    later = T0 + timedelta(minutes=1)
    with store.transaction() as tx:
        oid = tx.enqueue(mail("<m@x>"))
        tx.mark_retry(oid, "421 try later", later)
        tx.mark_retry(oid, "421 still busy", later + timedelta(minutes=2))
        retried = tx.get_outbox(oid)
        assert ids(tx.due(later)) == []
        tx.mark_sent(oid, later + timedelta(minutes=3))
        sent = tx.get_outbox(oid)
        failed_id = tx.enqueue(mail("<f@x>"))
        tx.mark_failed(failed_id, "550 no such user")
        failed = tx.get_outbox(failed_id)
        for mark in (lambda: tx.mark_sent(999999, T0), lambda: tx.mark_failed(999999, "x"),
                     lambda: tx.mark_retry(999999, "x", T0)):
            with pytest.raises(KeyError):
                mark()
    assert (retried.status, retried.attempts, retried.last_error, retried.next_attempt_at) == (
        "queued", 2, "421 still busy", later + timedelta(minutes=2))
    assert (sent.status, sent.attempts, sent.sent_at) == (
        "sent", 3, later + timedelta(minutes=3))
    assert (failed.status, failed.attempts, failed.last_error) == (
        "failed", 1, "550 no such user")


def test_naive_datetimes_are_refused(store: Store):
    naive = datetime(2024, 5, 1, 12, 0)
    with store.transaction() as tx:
        with pytest.raises(ValueError, match="now"):
            tx.due(naive)
        with pytest.raises(ValueError, match="next_attempt_at"):
            tx.enqueue(mail("<m@x>", next_attempt_at=naive))
        with pytest.raises(ValueError, match="received_at"):
            tx.add_raw(raw("k", received_at=naive))


# -- events ---------------------------------------------------------------------------

def test_events(store: Store):
    with store.transaction() as tx:
        assert tx.events_since(0) == []
        first = tx.add_event("message.imported", "support", {"source_key": "k1", "n": 1})
        second = tx.add_event("outbox.sent", None, {})
        third = tx.add_event("message.failed", "sales", {"reason": "x", "nested": [1, 2]})
    with store.transaction() as tx:
        events = tx.events_since(0)
        assert [e.id for e in tx.events_since(first)] == [second, third]
        assert [e.id for e in tx.events_since(0, limit=2)] == [first, second]
        assert tx.events_since(third) == []
    assert first < second < third
    assert all(isinstance(e, Event) and e.created_at.tzinfo is not None for e in events)
    assert [(e.kind, e.account, dict(e.data)) for e in events] == [
        ("message.imported", "support", {"source_key": "k1", "n": 1}),
        ("outbox.sent", None, {}),
        ("message.failed", "sales", {"reason": "x", "nested": [1, 2]}),
    ]


# -- sequences ------------------------------------------------------------------------

def test_sequences_count_per_name_and_a_rollback_gives_the_number_back(store: Store):
    with store.transaction() as tx:
        assert [tx.next_number("parent:helpdesk") for _ in range(3)] == [1, 2, 3]
        assert tx.next_number("parent:deal") == 1
    with pytest.raises(RuntimeError), store.transaction() as tx:
        assert tx.next_number("parent:helpdesk") == 4
        raise RuntimeError("roll back")
    with store.transaction() as tx:
        assert tx.next_number("parent:helpdesk") == 4


def test_two_stores_on_one_database_never_hand_out_the_same_number(store_url: str):
    """Two connections (two processes, or two PostgreSQL nodes) numbering at once."""
    import threading

    stores = [open_store(store_url), open_store(store_url)]
    start = threading.Barrier(2)
    numbers: list[list[int]] = [[], []]

    def count(index: int) -> None:
        start.wait()
        for _ in range(40):
            with stores[index].transaction() as tx:
                numbers[index].append(tx.next_number("parent:helpdesk"))
                tx.create("helpdesk", {"n": numbers[index][-1]})

    threads = [threading.Thread(target=count, args=(i,)) for i in (0, 1)]
    try:
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    finally:
        for opened in stores:
            opened.close()
    assert len(numbers[0]) == len(numbers[1]) == 40
    assert sorted(numbers[0] + numbers[1]) == list(range(1, 81))
