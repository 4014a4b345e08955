"""daemon/crm/errors.py: the one writer of error records and of ``follower.failing``."""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from daemon.config import RuntimeConfig
from daemon.crm import errors
from daemon.crm.errors import ErrorKind
from daemon.store import Store, open_store

ROOT = Path(__file__).resolve().parents[2]
RUNTIME = RuntimeConfig()
WHEN = datetime(2026, 11, 24, 12, 0, tzinfo=UTC)


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    opened = open_store(f"sqlite:///{tmp_path / 'store.db'}")
    try:
        yield opened
    finally:
        opened.close()


def a_message_follower(store: Store) -> tuple[int, int]:
    """(message follower id, follower id) of a fresh pair."""
    with store.transaction() as tx:
        follower = tx.create("follower", {"email": "lisa@acme.example"})
        return tx.create("messagefollower", {"follower": follower}), follower


def test_a_record_keeps_what_is_known_and_leaves_out_the_rest(store):
    mf, _ = a_message_follower(store)
    with store.transaction() as tx:
        bounce = errors.record_error(tx, RUNTIME, kind=ErrorKind.BOUNCE, text="5.1.1 gone",
                                     when=WHEN, message_follower_id=mf, status="5.1.1",
                                     recipient="lisa@acme.example")
        failed_import = errors.record_error(tx, RUNTIME, kind=ErrorKind.IMPORT,
                                            text="k: broken", when=WHEN)
        assert tx.get("conversationmessageerror", bounce).props == {
            "type": "bounce", "errormessage": "5.1.1 gone", "date": WHEN.isoformat(),
            "messagefollower": mf, "status": "5.1.1", "recipient": "lisa@acme.example"}
        assert tx.get("conversationmessageerror", failed_import).props == {
            "type": "import", "errormessage": "k: broken", "date": WHEN.isoformat()}


def test_failing_is_set_on_the_follower_behind_a_message_follower(store):
    mf, follower = a_message_follower(store)
    with store.transaction() as tx:
        assert errors.follower_of(tx, RUNTIME, mf) == follower
        assert errors.follower_of(tx, RUNTIME, mf + 100) is None
        errors.mark_failing(tx, RUNTIME, follower)
        assert tx.get("follower", follower).get("failing") is True


def test_a_delay_is_resolved_once_for_its_own_outbox_item_only(store):
    mf, _ = a_message_follower(store)
    later = WHEN + timedelta(hours=1)
    with store.transaction() as tx:
        mine, other = (errors.record_error(
            tx, RUNTIME, kind=ErrorKind.DELIVERY_DELAYED, text="4.2.2 later", when=WHEN,
            message_follower_id=mf, outbox_id=outbox) for outbox in (7, 8))
        errors.resolve_delays(tx, RUNTIME, outbox_id=7, when=later)
        errors.resolve_delays(tx, RUNTIME, outbox_id=7, when=later + timedelta(hours=1))
        assert tx.get("conversationmessageerror", mine).get("resolveddate") == later.isoformat()
        assert tx.get("conversationmessageerror", other).get("resolveddate") is None


def test_a_coworker_resolves_once_and_the_first_resolution_stays(store):
    with store.transaction() as tx:
        error_id = errors.record_error(tx, RUNTIME, kind=ErrorKind.DELIVERY, text="550 no",
                                       when=WHEN)
        first = errors.resolve(tx, RUNTIME, error_id, coworker=12, when=WHEN)
        again = errors.resolve(tx, RUNTIME, error_id, coworker=13, when=WHEN.replace(year=2027))
        assert errors.resolve(tx, RUNTIME, error_id + 100, coworker=12, when=WHEN) is None
        resolved = [e for e in tx.events_since(0, limit=10) if e.kind == "error.resolved"]
    assert first is not None and again is not None
    assert (again.get("resolveddate"), again.get("coworker")) == (WHEN.isoformat(), 12)
    assert len(resolved) == 1


#: What only daemon/crm/errors.py may write: the failing flag and a record's fields, by
#: literal or by their configured names.
WRITES = re.compile(r'"failing"|property_(error_message|resolved_date)\b|'
                    r"relation_resolved_by|follower_failing|error_(recipient|status|outbox)\b")


#: A store write and what follows it (the properties it writes).
_WRITE_CALL = re.compile(r"\.(create|update)\(.{0,400}", re.S)


def _writes_error_fields(text: str) -> bool:
    return any(WRITES.search(call.group(0)) for call in _WRITE_CALL.finditer(text))


def test_no_other_module_writes_error_records_or_the_failing_flag():
    config = ROOT / "daemon" / "config"  # where the names are defined
    writers = sorted(str(path.relative_to(ROOT))
                     for base in ("daemon", "plugins_contrib")
                     for path in (ROOT / base).rglob("*.py")
                     if path != ROOT / "daemon/crm/errors.py" and config not in path.parents
                     and _writes_error_fields(path.read_text()))
    assert writers == []


def test_the_writer_scan_finds_a_write_and_ignores_a_read():
    assert _writes_error_fields('tx.update(f.limetype, 1, {"failing": True})')
    assert not _writes_error_fields('record.get(ecfg.property_error_message)')
