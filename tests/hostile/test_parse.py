"""Every hostile message parses and classifies in bounded time and memory, sender intact.

Bounds are generous (a loaded 2-core box, tracemalloc's own slowdown): what they catch
is a cost that grows faster than the input - the quadratic regex, renaming or comment
parser, or the ~60x memory of folded headers these attacks were written against.
"""

from __future__ import annotations

import time
import tracemalloc

import pytest

from daemon.mail.bounce import detect_bounce
from daemon.mail.classify import classify
from daemon.mail.model import MessageKind
from daemon.mail.parse import parse_message
from tests.hostile.attacks import MIB, Attack, attacks, by_name

OWN = frozenset({"support@demo.example"})
#: Small-scale attacks: quick enough to run each one everywhere.
SMALL = list(attacks(0.25))


def _peak(raw: bytes) -> tuple[int, object]:
    """tracemalloc's peak (bytes) while parsing ``raw``, and the parsed message."""
    tracemalloc.start()
    try:
        parsed = parse_message(raw)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    return peak, parsed


@pytest.mark.parametrize("attack", SMALL, ids=[a.name for a in SMALL])
def test_attack_parses_with_its_sender_in_bounded_time_and_memory(attack: Attack) -> None:
    began = time.perf_counter()
    parsed = parse_message(attack.raw)
    verdict = classify(parsed, own_addresses=OWN)
    seconds = time.perf_counter() - began
    assert not any(d.startswith("internal-error") for d in parsed.defects)
    if attack.sender is not None:
        assert parsed.from_ is not None and parsed.from_.email == attack.sender
    assert parsed.message_id is not None
    if attack.attachments is not None:
        assert len(parsed.attachments) == attack.attachments
    assert verdict.kind in MessageKind
    assert seconds < 20, f"{attack.name}: {seconds:.1f} s"
    peak, _ = _peak(attack.raw)
    assert peak <= 4 * len(attack.raw) + 4 * MIB, f"{attack.name}: peak {peak / MIB:.1f} MiB"


@pytest.mark.slow
def test_24mb_of_folded_header_lines_parses_within_4x_its_size() -> None:
    attack = by_name("folded-header-24mb")
    assert len(attack.raw) >= 24 * MIB
    peak, parsed = _peak(attack.raw)
    assert peak <= 4 * len(attack.raw), f"peak {peak / MIB:.0f} MiB"
    assert parsed.from_.email == attack.sender and parsed.subject == "hostile"
    assert "header-truncated:x-folded" in parsed.defects


@pytest.mark.slow
@pytest.mark.parametrize("name", ["numerous-headers-24mb", "huge-header-24mb",
                                  "folded-subject-8mb"])
def test_huge_header_blocks_stay_within_4x_and_keep_the_envelope(name: str) -> None:
    attack = by_name(name)
    peak, parsed = _peak(attack.raw)
    assert peak <= 4 * len(attack.raw), f"peak {peak / MIB:.0f} MiB"
    assert parsed.from_.email == attack.sender
    assert parsed.message_id == "hostile@customers.example"


def test_numerous_headers_keep_the_envelope_that_comes_after_them() -> None:
    parsed = parse_message(by_name("numerous-headers-24mb", 0.05).raw)
    assert "too-many-headers" in parsed.defects
    assert parsed.from_.email == "alice@customers.example"
    assert (parsed.subject, parsed.message_id) == ("hostile", "hostile@customers.example")
    assert len(parsed.headers["x"]) == 1000


def test_time_grows_linearly_with_the_address_run() -> None:
    """Twice the run, about twice the time (quadratic would be four times)."""
    def cost(scale: float) -> float:
        raw = by_name("bounce-address-line-1mb", scale).raw
        best = float("inf")
        for _ in range(3):
            began = time.perf_counter()
            detect_bounce(parse_message(raw))
            best = min(best, time.perf_counter() - began)
        return best

    assert cost(1.0) < 3.0 * cost(0.5) + 0.01


def test_a_megabyte_of_x_failed_recipients_is_a_bounce_without_recipients() -> None:
    report = detect_bounce(parse_message(by_name("x-failed-recipients-1mb").raw))
    assert report is not None and "bounce.x-failed-recipients" in report.rules
    assert [r.recipient for r in report.recipients] == [None]


def test_deep_comment_in_cc_keeps_from_subject_and_message_id() -> None:
    parsed = parse_message(by_name("deep-comment-cc").raw)
    assert parsed.from_.email == "alice@customers.example"
    assert parsed.subject == "hostile" and parsed.message_id == "hostile@customers.example"
    assert [a.email for a in parsed.cc] == ["c@example.com"]


def test_a_thousand_cc_are_all_kept() -> None:
    parsed = parse_message(by_name("cc-1000").raw)
    assert len(parsed.cc) == 1000
    assert parsed.cc[999].email == "p999@customers.example"


def test_same_name_attachments_are_numbered_in_order() -> None:
    parsed = parse_message(by_name("same-name-attachments", 0.1).raw)
    names = [a.filename for a in parsed.attachments]
    assert names[:3] == ["a.pdf", "a (2).pdf", "a (3).pdf"]
    assert len(set(n.lower() for n in names)) == len(names) == 300


def test_references_keep_the_root_and_the_nearest_ancestors() -> None:
    parsed = parse_message(by_name("references-1mb", 0.1).raw)
    assert len(parsed.references) == 100
    assert parsed.references[0] == "0@x"
    assert parsed.references[-1] == f"{MIB // 80 - 1}@x"


def test_unknown_charsets_read_as_raw_header_bytes() -> None:
    parsed = parse_message(by_name("encoded-words-unknown-charsets", 0.01).raw)
    assert parsed.headers["x-words"][0].startswith("café x café")


def test_an_internal_error_still_keeps_the_envelope(monkeypatch) -> None:
    from daemon.mail import parse

    def explode(self, part, depth):
        raise RuntimeError("parser bug")

    monkeypatch.setattr(parse._Body, "walk", explode)
    parsed = parse_message(by_name("deep-comment-cc").raw)
    assert parsed.defects[0] == "internal-error:RuntimeError"
    assert parsed.from_.email == "alice@customers.example"
    assert (parsed.subject, parsed.message_id) == ("hostile", "hostile@customers.example")


def test_one_field_that_fails_leaves_the_others(monkeypatch) -> None:
    from daemon.mail import parse

    def explode(value):
        raise RecursionError("too deep")

    monkeypatch.setattr(parse, "_ids", explode)
    parsed = parse_message(by_name("cc-1000").raw)
    assert "bad-header:message-id" in parsed.defects
    assert parsed.message_id is None
    assert parsed.from_.email == "alice@customers.example" and len(parsed.cc) == 1000


def test_cheap_messages_stay_inline_and_costly_ones_go_to_a_thread() -> None:
    from daemon.actors.processor import parse_inline
    from tests.e2e.conftest import make_message

    assert parse_inline(make_message(1))
    assert parse_inline(make_message(1) + b"x" * 60_000)
    assert not parse_inline(make_message(1) + b"x" * 200_000)
    assert not parse_inline(by_name("encoded-words-unknown-charsets", 0.05).raw)
    assert not parse_inline(by_name("same-name-attachments", 0.1).raw)
