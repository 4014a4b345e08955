"""Every report in tests/corpus/bounces/ against tests/corpus/bounces/expected.json.

One message per format the issue names (and per not-a-bounce class), written by us in the
layout each MTA or provider documents; the expectations are written by hand.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from daemon.mail.bounces import ReportKind, detect_bounce
from daemon.mail.classify import classify
from daemon.mail.model import MessageKind
from daemon.mail.parse import parse_message

CORPUS = Path(__file__).parent.parent.parent / "corpus" / "bounces"
EXPECTED: dict[str, dict] = {
    k: v for k, v in json.loads((CORPUS / "expected.json").read_text("utf-8")).items()
    if not k.startswith("_")
}


def test_every_file_has_expectations() -> None:
    assert {p.name for p in CORPUS.glob("*.eml")} == set(EXPECTED)


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_report(name: str) -> None:
    expected = EXPECTED[name]
    msg = parse_message((CORPUS / name).read_bytes())
    report = detect_bounce(msg)
    assert report is not None, name
    assert report.kind is ReportKind(expected["kind"]), report
    if "format" in expected:
        assert report.format == expected["format"], report.rules
    recipients = report.recipients
    assert [r.recipient for r in recipients] == [
        r["recipient"] for r in expected["recipients"]], recipients
    for got, want in zip(recipients, expected["recipients"], strict=True):
        for key in ("action", "status", "reason", "remote_mta"):
            if key in want:
                assert getattr(got, key) == want[key], (key, got)
        if "diagnostic_contains" in want:
            assert want["diagnostic_contains"] in (got.diagnostic or ""), got
        if expected["kind"] == "failure":
            assert got.original_message_id == expected["original_message_id"], got


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_verdict(name: str) -> None:
    """Failures are bounces with every failed recipient; the rest are only automatic."""
    expected = EXPECTED[name]
    verdict = classify(parse_message((CORPUS / name).read_bytes()),
                       own_addresses=frozenset({"support@example.com"}))
    if expected["kind"] == "failure":
        assert verdict.kind is MessageKind.BOUNCE
        assert [b.recipient for b in verdict.bounces] == [
            r["recipient"] for r in expected["recipients"]]
    else:
        assert verdict.kind is MessageKind.AUTOMATIC and verdict.bounce is None
        assert verdict.bounces == ()
