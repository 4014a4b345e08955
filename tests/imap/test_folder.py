"""The pure parts of folder sync (daemon/imap/folder.py): download planning, dates, keys.

The sync itself is exercised against Dovecot in tests/actors/test_imap.py.
"""

from __future__ import annotations

from datetime import UTC, date, datetime

import pytest

from daemon.imap import folder
from daemon.imap.folder import _Download, _imap_date, _plan, _TooLarge, checkpoint_key

WHEN = datetime(2024, 3, 1, 12, 0, tzinfo=UTC)


def meta(**sizes: int) -> dict[int, dict[bytes, object]]:
    return {int(uid[1:]): {b"RFC822.SIZE": size, b"INTERNALDATE": WHEN}
            for uid, size in sizes.items()}


def test_downloads_are_grouped_by_byte_budget(monkeypatch):
    monkeypatch.setattr(folder, "DOWNLOAD_BUDGET", 100)
    steps = list(_plan([1, 2, 3, 4], meta(u1=40, u2=40, u3=40, u4=10), max_bytes=1000))
    assert steps == [_Download((1, 2)), _Download((3, 4))]


def test_a_message_above_the_budget_goes_alone(monkeypatch):
    monkeypatch.setattr(folder, "DOWNLOAD_BUDGET", 100)
    steps = list(_plan([1, 2, 3], meta(u1=10, u2=500, u3=10), max_bytes=1000))
    assert steps == [_Download((1,)), _Download((2,)), _Download((3,))]


def test_too_large_keeps_its_place_in_uid_order():
    steps = list(_plan([1, 2, 3], meta(u1=10, u2=5000, u3=10), max_bytes=1000))
    assert steps == [_Download((1,)), _TooLarge(2, 5000, WHEN), _Download((3,))]


def test_expunged_messages_are_left_out():
    steps = list(_plan([1, 2, 3], meta(u1=10, u3=10), max_bytes=1000))
    assert steps == [_Download((1, 3))]


@pytest.mark.parametrize(("day", "text"), [
    (date(2024, 1, 1), "1-Jan-2024"), (date(2023, 12, 31), "31-Dec-2023")])
def test_imap_dates_do_not_depend_on_the_locale(day, text):
    assert _imap_date(day) == text


def test_checkpoint_keys_follow_the_contract():
    assert checkpoint_key("INBOX", "last_uid") == "imap:INBOX:last_uid"
