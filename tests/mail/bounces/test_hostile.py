"""Hostile reports: every scan over a bounce is linear and bounded.

A 300 KB ``X-Failed-Recipients`` header froze the event loop for 46 s in the old
``daemon/mail/bounce.py`` (its address regex restarted at every position). These
messages are ten times that size and must be read in well under a second.
"""

from __future__ import annotations

import time

import pytest

from daemon.mail.bounces import detect_bounce
from daemon.mail.bounces.reasons import infer_status, reason_of
from daemon.mail.bounces.scan import addresses, recipient_blocks
from daemon.mail.classify import classify
from daemon.mail.parse import parse_message

MB = 1024 * 1024
HEAD = (b"Return-Path: <>\r\nFrom: MAILER-DAEMON@mx.example.net\r\nTo: support@example.com\r\n"
        b"Subject: Mail delivery failed\r\nMessage-ID: <hostile@mx.example.net>\r\n")


def _timed(raw: bytes) -> float:
    start = time.process_time()
    msg = parse_message(raw)
    classify(msg, own_addresses=frozenset({"support@example.com"}))
    detect_bounce(msg)
    return time.process_time() - start


@pytest.mark.parametrize("value", [
    b"a" * MB,                                   # one local-part run, no @
    b"a." * (MB // 2),                           # dots: still local-part characters
    (b"x" * 63 + b"@") * (MB // 64),             # an @ after every maximal local part
    b"a@" * (MB // 2),                           # an @ after every character
    b"<a@b.example>, " * (MB // 15),             # a megabyte of real addresses
], ids=["run", "dots", "at-every-64", "at-every-2", "real"])
def test_one_megabyte_x_failed_recipients_header(value: bytes) -> None:
    raw = HEAD + b"X-Failed-Recipients: " + value + b"\r\n\r\nThe following address(es) failed:\r\n"
    assert _timed(raw) < 0.5


@pytest.mark.parametrize("line", [
    b"a" * MB, b"<" + b"a.b-c_d+" * (MB // 8), b"@" * MB, b"550 " + b"5.1." * (MB // 4),
], ids=["letters", "address-chars", "ats", "status-like"])
def test_one_megabyte_line_in_a_text_bounce(line: bytes) -> None:
    body = (b"This message was created automatically by mail delivery software.\r\n\r\n"
            b"The following address(es) failed:\r\n\r\n  " + line + b"\r\n")
    assert _timed(HEAD + b"\r\n" + body) < 0.5


def test_scans_are_bounded() -> None:
    text = "x@y.example\n" * 100_000
    assert len(recipient_blocks(text)) == 1
    assert len(addresses(" ".join(f"u{i}@d.example" for i in range(5000)))) == 200
    start = time.process_time()
    assert reason_of(None, "user " * MB) is None
    assert infer_status("5" * MB) is None
    assert time.process_time() - start < 0.5
