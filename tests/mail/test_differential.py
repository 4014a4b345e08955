"""Our parser against the standard library on well-formed mail: any disagreement is a bug.

The benchmark generator (``benchmarks/messages.py``) writes well-formed mail in many
charsets, with encoded words, attachments and alternative parts. On such mail
:func:`parse_message` must read what ``email`` with ``policy.default`` reads.
"""

from __future__ import annotations

from email import policy
from email.message import EmailMessage
from email.parser import BytesParser

import pytest

from benchmarks.messages import generate_messages
from daemon.mail.model import ParsedMessage
from daemon.mail.parse import parse_message

CORPUS = list(generate_messages(120, seed=13))


def _stdlib(raw: bytes) -> EmailMessage:
    return BytesParser(policy=policy.default).parsebytes(raw)  # type: ignore[return-value]


def _mailboxes(std: EmailMessage, name: str) -> list[tuple[str, str]]:
    header = std[name]
    return [(a.addr_spec.lower(), a.display_name) for a in header.addresses] if header else []


def _fields(ours: ParsedMessage, std: EmailMessage) -> dict[str, tuple[object, object]]:
    std_id = std["message-id"]
    return {
        "subject": (ours.subject, " ".join(str(std["subject"] or "").split())),
        "from": ([(ours.from_.email, ours.from_.name)] if ours.from_ else [],
                 _mailboxes(std, "from")),
        "to": ([(a.email, a.name) for a in ours.to], _mailboxes(std, "to")),
        "cc": ([(a.email, a.name) for a in ours.cc], _mailboxes(std, "cc")),
        "message_id": (ours.message_id, str(std_id).strip().strip("<>") if std_id else None),
        "date": (ours.date, std["date"].datetime if std["date"] else None),
    }


@pytest.mark.parametrize("index", range(len(CORPUS)))
def test_headers_agree_with_the_standard_library(index: int) -> None:
    raw = CORPUS[index]
    for name, (ours, theirs) in _fields(parse_message(raw), _stdlib(raw)).items():
        assert ours == theirs, name


@pytest.mark.parametrize("index", range(len(CORPUS)))
def test_text_body_and_attachment_names_agree(index: int) -> None:
    raw = CORPUS[index]
    ours, std = parse_message(raw), _stdlib(raw)
    body = std.get_body(("plain",))
    if body is not None:
        assert ours.text.strip() == body.get_content().replace("\r\n", "\n").strip()
    names = [part.get_filename() for part in std.iter_attachments()]
    if all(names):
        assert [a.filename for a in ours.attachments] == names


def test_the_corpus_exercises_what_it_should() -> None:
    """Encoded words, several charsets and attachments occur, so agreement means something."""
    joined = b"".join(CORPUS)
    assert joined.count(b"=?") > 50
    assert {b"iso-8859-1", b"iso-2022-jp", b"koi8-r"} <= {
        c for c in (b"iso-8859-1", b"iso-2022-jp", b"koi8-r") if c in joined.lower()}
    assert sum(1 for raw in CORPUS if parse_message(raw).attachments) > 10
