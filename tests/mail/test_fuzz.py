"""parse_message must return for any input, and hostile input must stay cheap.

Hypothesis mutates real messages (the corpus and generated mail): truncation, byte
flips, insertions, deletions, duplicated slices and line-ending changes, plus plain random
bytes and random header text. Every result must be a ParsedMessage whose ``size`` and
``sha256`` describe the input, and no mutation may reach the internal-error fallback
(that would mean a bug the fallback merely hides). classify() and find_body_markers()
must also accept whatever the parser produced.
"""

from __future__ import annotations

import hashlib
import time
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from benchmarks.messages import generate_messages
from daemon.mail.classify import classify
from daemon.mail.ids import find_body_markers
from daemon.mail.model import ParsedMessage
from daemon.mail.parse import parse_message

CORPUS = sorted((Path(__file__).parent.parent / "corpus").glob("*.eml"))
SEEDS = [p.read_bytes() for p in CORPUS] + list(generate_messages(12, seed=3))
FUZZ = settings(max_examples=150, deadline=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])


def check(raw: bytes) -> ParsedMessage:
    parsed = parse_message(raw)
    assert isinstance(parsed, ParsedMessage)
    assert parsed.size == len(raw)
    assert parsed.sha256 == hashlib.sha256(raw).hexdigest()
    assert not [d for d in parsed.defects if d.startswith("internal-error")], parsed.defects
    assert isinstance(parsed.text, str)
    for item in (*parsed.attachments, *parsed.inline_images):
        assert item.filename and "/" not in item.filename and "\\" not in item.filename
    classify(parsed, own_addresses=frozenset({"support@example.com"}), loop_token="t")
    find_body_markers(parsed.text)
    find_body_markers(parsed.html or "")
    return parsed


@st.composite
def mutated(draw: st.DrawFn) -> bytes:
    data = bytearray(draw(st.sampled_from(SEEDS)))
    for _ in range(draw(st.integers(1, 6))):
        if not data:
            break
        at = draw(st.integers(0, len(data) - 1))
        operation = draw(st.sampled_from(
            ["truncate", "flip", "insert", "delete", "duplicate", "newlines", "header"]))
        if operation == "truncate":
            del data[at:]
        elif operation == "flip":
            data[at] = draw(st.integers(0, 255))
        elif operation == "insert":
            data[at:at] = draw(st.binary(max_size=64))
        elif operation == "delete":
            del data[at:at + draw(st.integers(1, 200))]
        elif operation == "duplicate":
            data[at:at] = data[at:at + draw(st.integers(1, 400))]
        elif operation == "newlines":
            data = bytearray(bytes(data).replace(b"\r\n", b"\n") if b"\r\n" in data
                             else bytes(data).replace(b"\n", b"\r\n"))
        else:
            data[at:at] = draw(st.sampled_from([
                b"\n--", b"\nContent-Type: multipart/mixed; boundary=x\n", b"=?utf-8?b?",
                b"\nContent-Transfer-Encoding: base64\n", b"\n\n", b"\r", b"<", b"cid:",
                b"; filename*0*=x'y'%ZZ", b"\nContent-Type: application/ms-tnef\n\n"]))
    return bytes(data)


@FUZZ
@given(mutated())
def test_mutated_messages(raw: bytes) -> None:
    check(raw)


@FUZZ
@given(st.binary(max_size=4096))
def test_random_bytes(raw: bytes) -> None:
    check(raw)


HEADER_NAMES = ["From", "To", "Cc", "Reply-To", "Subject", "Date", "Message-ID", "References",
                "In-Reply-To", "Content-Type", "Content-Disposition", "Auto-Submitted",
                "X-Failed-Recipients", "Return-Path", "Content-Transfer-Encoding"]


@FUZZ
@given(st.lists(st.tuples(st.sampled_from(HEADER_NAMES), st.text(max_size=120)), max_size=12),
       st.text(max_size=300))
def test_random_header_text(headers: list[tuple[str, str]], body: str) -> None:
    raw = "".join(f"{name}: {value}\n" for name, value in headers) + "\n" + body
    check(raw.encode("utf-8", "surrogatepass"))


def test_single_byte_truncations_of_a_multipart_message() -> None:
    raw = next(p.read_bytes() for p in CORPUS if p.name == "gmail-dsn.eml")
    for end in range(0, len(raw), 7):
        check(raw[:end])


HOSTILE = {
    "spaces in To": b"From: a@x\nTo: " + b" " * 200_000 + b"\n\nbody",
    "unclosed quote in To": b"From: a@x\nTo: \"" + b"a" * 200_000 + b"\n\nbody",
    "many encoded words": b"Subject: " + b"=?utf-8?q?a?= " * 30_000 + b"\n\nbody",
    "many parameters": b"Content-Type: text/plain;" + b' a="b";' * 30_000 + b"\n\nbody",
    "many parts": b"Content-Type: multipart/mixed; boundary=b\n\n" + b"--b\n\nx\n" * 10_000,
    "unclosed tags": b"Content-Type: text/html\n\n" + b"<" * 200_000,
    "many headers": b"".join(b"X-H%d: v\n" % i for i in range(30_000)) + b"\nbody",
    "marker prefixes": b"From: a@x\n\n" + b"[ref:" * 100_000,
    "many bounce lines": (b"From: MAILER-DAEMON@x\nSubject: failure notice\n\n"
                          + b"<a@b>:\n" * 50_000),
}


@pytest.mark.parametrize("name", sorted(HOSTILE))
def test_hostile_input_stays_cheap(name: str) -> None:
    started = time.process_time()
    check(HOSTILE[name])
    assert time.process_time() - started < 3.0
