"""Hostile messages, generated: each one aimed at a cost that grows faster than its size.

Every attack is an :class:`Attack` with a name, the bytes and what must still come out
of it (the sender, the number of attachments...). ``tests/hostile/`` asserts outcome,
memory and event-loop responsiveness on them; ``benchmarks/hostile.py`` prints the time,
memory and the longest event-loop stall of each.

``scale`` multiplies the sizes (1.0 = the sizes the must-show figures are stated for);
tests use smaller scales where the figure does not depend on size.
"""

from __future__ import annotations

__all__ = ["Attack", "attacks", "by_name"]

from collections.abc import Iterator
from dataclasses import dataclass

MIB = 1 << 20
SENDER = "alice@customers.example"
_HEAD = (f"From: Alice <{SENDER}>\n"
         "To: support@demo.example\n"
         "Subject: hostile\n"
         "Message-ID: <hostile@customers.example>\n"
         "Date: Tue, 24 Nov 2026 08:00:00 +0000\n").encode()


@dataclass(frozen=True)
class Attack:
    """One hostile message.

    Attributes:
        name: short, used in test ids and benchmark lines.
        raw: the message.
        sender: the From address that must survive parsing, or None if not expected.
        attachments: how many attachments must come out, or None if not checked.
    """

    name: str
    raw: bytes
    sender: str | None = SENDER
    attachments: int | None = None


def _message(headers: bytes = b"", body: bytes = b"hello\n", *, head: bytes = _HEAD,
             last: bytes = b"") -> bytes:
    """Our envelope, ``headers`` after it, ``last`` after those, then ``body``."""
    return head + headers + last + b"\n" + body


def _multipart(parts: list[bytes], boundary: bytes = b"b") -> bytes:
    body = b"".join(b"--" + boundary + b"\n" + part + b"\n" for part in parts)
    return _message(b"MIME-Version: 1.0\nContent-Type: multipart/mixed; boundary="
                    + boundary + b"\n", body + b"--" + boundary + b"--\n")


def attacks(scale: float = 1.0) -> Iterator[Attack]:
    """Every attack, sized by ``scale``."""
    mib = max(1024, int(MIB * scale))
    yield Attack("x-failed-recipients-1mb",
                 _message(b"X-Failed-Recipients: " + b"a" * mib + b"\n"))
    yield Attack("bounce-address-line-1mb", (
        b"From: Mail Delivery System <MAILER-DAEMON@mx.example>\n"
        b"To: support@demo.example\nSubject: Undelivered Mail Returned to Sender\n"
        b"Message-ID: <bounce@mx.example>\nAuto-Submitted: auto-replied\n\n"
        b"The following addresses had permanent fatal errors\n"
        + b"a" * mib + b"\n"), sender="mailer-daemon@mx.example")
    yield Attack("huge-header-24mb", _message(b"X-Huge: " + b"x" * (24 * mib) + b"\n"))
    yield Attack("folded-header-24mb",
                 _message(b"X-Folded: a\n" + b" b\n" * (8 * mib)))
    yield Attack("folded-subject-8mb", _message(
        b"Subject: a\n" + b" b\n" * (8 * mib // 3), head=_HEAD.replace(b"Subject: hostile\n",
                                                                      b"")), )
    yield Attack("numerous-headers-24mb", _message(b"X: y\n" * (24 * mib // 5),
                                                   head=b"", last=_HEAD))
    yield Attack("address-run-in-cc-1mb", _message(b"Cc: " + b"a" * mib + b"\n"))
    yield Attack("deep-comment-cc",
                 _message(b"Cc: " + b"(" * 500 + b"x" + b")" * 500 + b" <c@example.com>\n"))
    yield Attack("unclosed-comments-cc-1mb", _message(b"Cc: " + b"(" * mib + b"\n"))
    yield Attack("cc-1000", _message(b"Cc: " + b",\n ".join(
        b"Person %d <p%d@customers.example>" % (i, i) for i in range(1000)) + b"\n"))
    yield Attack("references-1mb", _message(
        b"References: " + b" ".join(b"<%d@x>" % i for i in range(mib // 8)) + b"\n"))
    yield Attack("encoded-words-unknown-charsets", _message(
        b"X-Words: " + b" x ".join(b"=?x-bogus-%d?Q?caf=E9?=" % i
                                   for i in range(max(100, int(20000 * scale)))) + b"\n"))
    yield Attack("encoded-subject-flood", _message(
        b"Subject: " + b" ".join(b"=?utf-8?B?w6k=?=" for _ in range(max(100, int(50000 * scale))))
        + b"\n", head=_HEAD.replace(b"Subject: hostile\n", b"")))
    same = [b"Content-Type: application/pdf\nContent-Disposition: attachment; "
            b"filename=a.pdf\n\nx" for _ in range(max(10, int(3000 * scale)))]
    yield Attack("same-name-attachments", _multipart(same), attachments=min(len(same), 999))
    yield Attack("deep-mime-nesting", _message(b"MIME-Version: 1.0\n" + _nested(200)[0],
                                               _nested(200)[1]), attachments=1)
    yield Attack("tiny-parts-flood", _multipart([b"" for _ in range(max(10, int(50000 * scale)))]))


def _nested(depth: int) -> tuple[bytes, bytes]:
    """The Content-Type header and body of ``depth`` nested multiparts around one file."""
    body = b"Content-Type: application/octet-stream\n\nleaf\n"
    for level in range(depth, 0, -1):
        boundary = b"n%d" % level
        body = (b"Content-Type: multipart/mixed; boundary=" + boundary + b"\n\n--" + boundary
                + b"\n" + body + b"\n--" + boundary + b"--\n")
    header, _, rest = body.partition(b"\n\n")
    return header + b"\n", rest


def by_name(name: str, scale: float = 1.0) -> Attack:
    """The attack called ``name``."""
    for attack in attacks(scale):
        if attack.name == name:
            return attack
    raise KeyError(name)
