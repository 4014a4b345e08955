"""The reason vocabulary and status inference from the diagnostic words."""

from __future__ import annotations

import pytest

from daemon.mail.bounces.reasons import (
    PERMANENT_REASONS,
    REASONS,
    TEMPORARY_REASONS,
    infer_status,
    reason_of,
)
from daemon.mail.model import BounceInfo


@pytest.mark.parametrize(("diagnostic", "reason", "status"), [
    ("550 5.1.1 <a@b.example>: Recipient address rejected: User unknown", "user-unknown",
     "5.1.1"),
    ("552 mailbox full", "mailbox-full", "5.2.2"),
    ("452 4.2.2 Over quota", "mailbox-full", "4.2.2"),
    ("Host unknown", "host-unknown", "5.1.2"),
    ("554 Service unavailable; Client host [192.0.2.1] blocked using zen.spamhaus.org",
     "blocked", "5.7.1"),
    ("552 5.3.4 Message size exceeds fixed maximum message size", "message-too-large",
     "5.3.4"),
    ("550 Message rejected as spam", "rejected", "5.7.1"),
    ("retry timeout exceeded", "expired", "5.4.7"),
    ("The user(s) account is disabled.", "suspended", "5.2.1"),
    ("550 Benutzer unbekannt", "user-unknown", "5.1.1"),
    ("Sorry, no mailbox here by that name. (#5.1.1)", "user-unknown", "5.1.1"),
    ("host mx.example.net[192.0.2.25] said: 550 Unknown user", "user-unknown", "5.1.1"),
])
def test_reason_and_status_from_words(diagnostic: str, reason: str, status: str) -> None:
    assert reason_of(None, diagnostic) == reason
    assert infer_status(diagnostic) == status


def test_status_decides_without_words() -> None:
    assert reason_of("5.1.1", "") == "user-unknown"
    assert reason_of("5.1.10", None) == "not-accepted"
    assert reason_of("5.2.2", None) == "mailbox-full"
    assert reason_of("5.9.9", None) == "unknown"
    assert reason_of("2.0.0", "User unknown") is None
    assert infer_status("delivered fine") is None


def test_vocabulary_is_partitioned() -> None:
    assert PERMANENT_REASONS | TEMPORARY_REASONS | {"unknown"} == set(REASONS)
    assert not PERMANENT_REASONS & TEMPORARY_REASONS


def test_permanence_follows_the_reason() -> None:
    assert BounceInfo("a@b", "failed", "5.1.1", reason="user-unknown").permanent
    assert not BounceInfo("a@b", "failed", "5.2.2", reason="mailbox-full").permanent
    assert not BounceInfo("a@b", "failed", "5.7.1", reason="blocked").permanent
    assert BounceInfo("a@b", "failed", "5.9.9", reason="unknown").permanent
    assert not BounceInfo("a@b", "failed", "4.4.1", reason=None).permanent
