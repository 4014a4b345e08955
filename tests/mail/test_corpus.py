"""Every message in tests/corpus/ against the expectations in tests/corpus/expected.json.

The corpus is hand-written in the shape real systems produce (Postfix, Exim, Exchange,
Gmail and qmail bounces, Exchange/Gmail out-of-office replies, list mail, TNEF, Japanese,
mislabelled charsets...). ``expected.json`` is written by hand from the RFCs and the
senders' documented formats, not copied from the parser's output.
"""

from __future__ import annotations

import importlib.util
import json
from datetime import datetime
from pathlib import Path

import pytest

from daemon.mail.classify import classify
from daemon.mail.model import MessageKind, ParsedMessage
from daemon.mail.parse import parse_message

CORPUS = Path(__file__).parent.parent / "corpus"
EXPECTED: dict[str, dict] = {
    k: v for k, v in json.loads((CORPUS / "expected.json").read_text("utf-8")).items()
    if not k.startswith("_")
}
OWN = frozenset({"support@example.com"})
LOOP_TOKEN = "postroom-test-loop"


def test_every_corpus_file_has_expectations() -> None:
    files = {p.name for p in CORPUS.glob("*.eml")}
    assert files == set(EXPECTED)
    assert len(files) >= 20


def test_binary_corpus_files_are_up_to_date() -> None:
    spec = importlib.util.spec_from_file_location("make_binary", CORPUS / "make_binary.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    for name, build in module.FILES.items():
        assert (CORPUS / name).read_bytes() == build(), name


@pytest.fixture(params=sorted(EXPECTED), ids=str)
def case(request: pytest.FixtureRequest) -> tuple[ParsedMessage, dict]:
    raw = (CORPUS / request.param).read_bytes()
    return parse_message(raw), EXPECTED[request.param]


def test_classification(case: tuple[ParsedMessage, dict]) -> None:
    msg, expected = case
    verdict = classify(msg, own_addresses=OWN, loop_token=LOOP_TOKEN)
    assert verdict.kind is MessageKind(expected["kind"])
    assert set(expected.get("rules", ())) <= set(verdict.rules), verdict.rules
    assert not set(expected.get("absent_rules", ())) & set(verdict.rules), verdict.rules
    if "out_of_office" in expected:
        assert verdict.out_of_office is expected["out_of_office"]
    if expected["kind"] != "bounce":
        assert verdict.bounce is None
    else:
        bounce = expected["bounce"]
        assert verdict.bounce is not None
        for key in ("recipient", "action", "status", "original_message_id", "reporting_mta"):
            if key in bounce:
                assert getattr(verdict.bounce, key) == bounce[key], key
        if "diagnostic_contains" in bounce:
            assert bounce["diagnostic_contains"] in (verdict.bounce.diagnostic or "")
        assert verdict.bounce.permanent


def test_headers_and_addresses(case: tuple[ParsedMessage, dict]) -> None:
    msg, expected = case
    for key in ("subject", "message_id"):
        if key in expected:
            assert getattr(msg, key) == expected[key]
    if "from" in expected:
        assert msg.from_ is not None and msg.from_.email == expected["from"]
    if "from_name" in expected:
        assert msg.from_ is not None and msg.from_.name == expected["from_name"]
    for key in ("to", "cc", "reply_to"):
        if key in expected:
            assert [a.email for a in getattr(msg, key)] == expected[key]
    if "cc_names" in expected:
        assert [a.name for a in msg.cc] == expected["cc_names"]
    for key in ("in_reply_to", "references"):
        if key in expected:
            assert list(getattr(msg, key)) == expected[key]
    if "date" in expected:
        assert msg.date == datetime.fromisoformat(expected["date"])
        assert msg.date.tzinfo is not None
    for name, values in expected.get("header_values", {}).items():
        assert list(msg.headers[name]) == values


def test_defects(case: tuple[ParsedMessage, dict]) -> None:
    msg, expected = case
    if expected.get("defects") == []:
        assert msg.defects == ()
    assert set(expected.get("defects", ())) <= set(msg.defects), msg.defects
    assert not any(d.startswith("internal-error") for d in msg.defects)


def test_body(case: tuple[ParsedMessage, dict]) -> None:
    msg, expected = case
    for snippet in expected.get("text_contains", ()):
        assert snippet in msg.text
    for snippet in expected.get("text_excludes", ()):
        assert snippet not in msg.text
    if "html" in expected:
        assert msg.html == expected["html"]
    for snippet in expected.get("html_contains", ()):
        assert msg.html is not None and snippet in msg.html
    for snippet in expected.get("html_excludes", ()):
        assert msg.html is None or snippet not in msg.html
    assert "\r" not in msg.text


def test_attachments(case: tuple[ParsedMessage, dict]) -> None:
    msg, expected = case
    if "attachments" in expected:
        assert [[a.filename, a.content_type, a.origin] for a in msg.attachments] == \
            expected["attachments"]
        assert not any(a.inline for a in msg.attachments)
    if "inline_images" in expected:
        got = [[a.filename, a.content_type, a.content_id] for a in msg.inline_images]
        want = expected["inline_images"]
        assert [g[:2] for g in got] == [w[:2] for w in want]
        for g, w in zip(got, want, strict=True):
            if w[2] is not None:
                assert g[2] == w[2]
            assert msg.html is not None and f"cid:{g[2]}" in msg.html
        assert all(a.inline for a in msg.inline_images)
    by_name = {a.filename: a for a in msg.attachments}
    for name, snippet in expected.get("attachment_data_contains", {}).items():
        assert snippet.encode() in by_name[name].data


def test_size_and_digest(case: tuple[ParsedMessage, dict]) -> None:
    msg, _ = case
    assert msg.size > 0
    assert len(msg.sha256) == 64
