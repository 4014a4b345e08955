"""The sender, read as a person would: repairs, the fallback order, the display name."""

from __future__ import annotations

import time

import pytest

from daemon.mail.parse import parse_message
from daemon.mail.sender import display_name


def _parsed(headers: str):
    return parse_message((headers + "\nSubject: x\n\nbody\n").encode())


@pytest.mark.parametrize(("header", "email", "name", "defect"), [
    # an unquoted display name with spaces and no angle brackets
    ("From: John Doe john@example.com", "john@example.com", "John Doe",
     "sender-repaired:from:address-token"),
    ('From: "Doe, John" john@example.com', "john@example.com", "Doe, John",
     "sender-repaired:from:address-token"),
    # a trailing dot
    ("From: John Doe <john@example.com.>", "john@example.com", "John Doe", None),
    ("From: john@example.com.", "john@example.com", "", None),
    # a missing @: spelled out, or a bare local part from a mail system
    ("From: John Doe <john at example.com>", "john@example.com", "John Doe",
     "sender-repaired:from:at-word"),
    ("From: John Doe <john(at)example.com>", "john@example.com", "John Doe",
     "sender-repaired:from:at-word"),
    ('From: "Mail Delivery System" <MAILER-DAEMON>', "mailer-daemon", "Mail Delivery System",
     "sender-repaired:from:no-domain"),
    # an encoded word that contains the address
    ("From: =?utf-8?Q?John_Doe_<john@example.com>?=", "john@example.com", "John Doe",
     "sender-repaired:from:encoded-address"),
    ("From: =?utf-8?B?Sm9obiBEb2UgPGpvaG5AZXhhbXBsZS5jb20+?=", "john@example.com", "John Doe",
     "sender-repaired:from:encoded-address"),
    ("From: =?utf-8?Q?john@example.com?=", "john@example.com", "",
     "sender-repaired:from:encoded-address"),
    # a deep comment holds the name
    ("From: john@example.com (John (the (real)) Doe)", "john@example.com",
     "John the real Doe", None),
    # quoted-pairs outside quotes
    ('From: J\\"o\\" M <j@example.de>', "j@example.de", 'J"o" M',
     "sender-repaired:from:address-token"),
])
def test_malformed_from_gives_the_address(header, email, name, defect) -> None:
    msg = _parsed(header)
    assert msg.from_ is not None, msg.defects
    assert (msg.from_.email, msg.from_.name, msg.from_source) == (email, name, "from")
    if defect:
        assert defect in msg.defects
    else:
        assert not [d for d in msg.defects if d.startswith("sender-repaired")]


@pytest.mark.parametrize(("headers", "email", "source"), [
    ("From: undisclosed\nSender: Agent <agent@example.org>\nReply-To: r@example.org",
     "agent@example.org", "sender"),
    ("From: nobody\nReply-To: Reply <reply@example.org>", "reply@example.org", "reply-to"),
    ("Return-Path: <rp@example.org>", "rp@example.org", "return-path"),
    ("From: Ann <ann@example.org>\nSender: agent@example.org", "ann@example.org", "from"),
])
def test_fallback_order_records_the_source(headers, email, source) -> None:
    msg = _parsed(headers)
    assert msg.from_ is not None and (msg.from_.email, msg.from_source) == (email, source)


def test_no_sender_at_all() -> None:
    msg = _parsed("Return-Path: <>\nFrom: undisclosed recipients")
    assert (msg.from_, msg.from_source) == (None, None)
    assert "bad-address:from" in msg.defects


@pytest.mark.parametrize(("raw", "shown"), [
    ('"Doe, John"', "Doe, John"),
    ("'John Doe'", "John Doe"),
    ("=?iso-8859-1?Q?J=F6rg_M=FCller?=", "Jörg Müller"),
    ('"=?utf-8?B?SsO2cmc=?="', "Jörg"),
    ("(John Doe)", "John Doe"),
    ('  John   \\"JD\\"  Doe ', 'John "JD" Doe'),
    ("john@example.com", ""),
])
def test_display_name_as_a_mail_client_shows_it(raw: str, shown: str) -> None:
    assert display_name(raw, "john@example.com") == shown


def test_hostile_from_is_linear() -> None:
    start = time.process_time()
    for value in ("a" * 1_000_000, "<" * 500_000, "a@" * 500_000, "=?x?q?" * 100_000):
        _parsed(f"From: {value}")
    assert time.process_time() - start < 2.0
