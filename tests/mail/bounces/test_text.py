"""The fast signature search gives exactly what the case-insensitive patterns give."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from daemon.mail.bounces.generic import SUBJECT
from daemon.mail.bounces.lists import HELD
from daemon.mail.bounces.notbounce import _CHALLENGE
from daemon.mail.bounces.registry import FORMATS
from daemon.mail.bounces.text import HEAD, Head, branches
from daemon.mail.parse import parse_message

CORPUS = Path(__file__).parent.parent.parent / "corpus"
MESSAGES = [parse_message(p.read_bytes()) for p in sorted(CORPUS.rglob("*.eml"))]
PATTERNS = [f.signature for f in FORMATS] + [SUBJECT, HELD, _CHALLENGE]


@pytest.mark.parametrize("pattern", PATTERNS, ids=lambda p: p.pattern[:40])
def test_branch_search_agrees_with_the_pattern(pattern: re.Pattern[str]) -> None:
    for msg in MESSAGES:
        head = Head.of(msg)
        expected = pattern.search(head.text, 0, HEAD)
        assert head.search(pattern) == (expected.start() if expected else None)
        assert head.in_subject(pattern) == bool(pattern.search(msg.subject[:1000]))


def test_branches_split_alternatives_and_whole_groups() -> None:
    found = [b.pattern for b in branches(re.compile(r"(?:A(b|c))|[|(]x|\|Y|(?:p)(?:q)", re.I))]
    assert found == ["a(b|c)", "[|(]x", r"\|y", "(?:p)(?:q)"]
    assert all(not b.flags & re.IGNORECASE for b in branches(SUBJECT))
