"""Header text as real mail clients read it: lenient RFC 2047, 8-bit hints, broken folds.

RFC 2047 is strict; the mail that arrives is not, and Thunderbird, Apple Mail and Outlook
all decode what senders meant. The rules here, each one a case seen in real mail:

* Encoded text with spaces inside (``=?utf-8?Q?Hello World?=``, or a B word folded in
  the middle of its base64, which unfolding turns into a space): accepted; spaces are
  literal in Q and ignored in B.
* Adjacent words with or without whitespace between them: the whitespace is dropped
  (RFC 2047 §6.2), whatever their charsets.
* A multi-byte character split across two words (an encoder cutting at a byte count):
  adjacent words of one charset are joined as bytes before decoding, and a base64
  payload whose length is not a multiple of four carries its last characters over to
  the next word.
* Charset labels are normalised by :func:`daemon.mail.charset.normalise_charset`
  (aliases such as ``unicode-1-1-utf-7``, ``iso-8859-8-i``, ``x-`` prefixes) and decoded
  with its repair chain (a UTF-8 payload labelled ``iso-8859-1`` is read as UTF-8).
* A word that cannot be decoded stays as it is, literally.

Raw 8-bit header values carry no charset at all. :func:`repair_headers` decodes the
top-level ones again with the body's declared charset as the hint (a Shift_JIS subject
in a message whose body says ``charset=shift_jis``), and mends a fold that lost the
subject: ``Subject:`` with an empty value followed by an unindented line, which ends the
header block in every strict parser.
"""

from __future__ import annotations

__all__ = ["body_charset", "decode_encoded_words", "first_subject", "repair_headers"]

import binascii
import re
from collections.abc import Iterable

from daemon.mail.charset import decode_8bit, decode_text
from daemon.mail.mime import MimePart, split_headers

_WORD = re.compile(r"=\?([^?\s]{1,75})\?([bBqQ])\?([^?]{0,2000})\?=")
_Q_ESCAPE = re.compile(rb"=([0-9A-Fa-f]{2})")
_BASE64 = re.compile(r"[A-Za-z0-9+/]*=*")
_BETWEEN = re.compile(r"[ \t\r\n]*")


class _Run:
    """Adjacent encoded words of one charset, collected as bytes."""

    __slots__ = ("carry", "charset", "data")

    def __init__(self, charset: str) -> None:
        self.charset = charset
        self.data = bytearray()
        self.carry = ""  # base64 characters short of a full quantum

    def add(self, encoding: str, text: str) -> bool:
        """Add one word's payload; False when it cannot be decoded (nothing is added)."""
        if encoding in "qQ":
            self._end_base64()
            raw = text.replace("_", " ").encode("utf-8", "replace")
            self.data += _Q_ESCAPE.sub(lambda m: bytes([int(m.group(1), 16)]), raw)
            return True
        payload = "".join(text.split())
        if not _BASE64.fullmatch(payload):
            return False
        padded = payload.endswith("=")
        combined = self.carry + payload.rstrip("=")
        cut = len(combined) if padded else len(combined) // 4 * 4
        decoded = _b64(combined[:cut])
        if decoded is None:
            return False
        self.data += decoded
        self.carry = "" if padded else combined[cut:]
        return True

    def _end_base64(self) -> None:
        if self.carry:
            self.data += _b64(self.carry) or b""
            self.carry = ""

    def text(self) -> str:
        self._end_base64()
        return decode_text(bytes(self.data), self.charset)[0] if self.data else ""


def _b64(text: str) -> bytes | None:
    if len(text) % 4 == 1:
        text = text[:-1]  # a lone sextet carries no whole byte
    try:
        return binascii.a2b_base64(text + "=" * (-len(text) % 4))
    except binascii.Error:
        return None


def decode_encoded_words(value: str) -> str:
    """Decode RFC 2047 encoded words leniently (see the module docstring).

    Args:
        value: a header value (or a display name, or a parameter) as written.

    Returns:
        The decoded text; text outside encoded words is left as it is.
    """
    if "=?" not in value:
        return value
    out: list[str] = []
    run: _Run | None = None
    pos = 0
    for match in _WORD.finditer(value):
        between = value[pos:match.start()]
        charset = match.group(1).split("*", 1)[0].lower()
        adjacent = run is not None and _BETWEEN.fullmatch(between) is not None
        if run is None or not adjacent or charset != run.charset:
            if run is not None:
                out.append(run.text())
            if not adjacent:
                out.append(between)
            run = _Run(charset)
        if not run.add(match.group(2), match.group(3)):
            out.append(run.text())
            out.append(match.group(0))
            run = None
        pos = match.end()
    if run is not None:
        out.append(run.text())
    out.append(value[pos:])
    return "".join(out)


def first_subject(values: Iterable[str]) -> str:
    """The first non-empty Subject, whitespace folded (an empty first one is a quirk)."""
    for value in values:
        folded = " ".join(value.split())
        if folded:
            return folded
    return ""


def body_charset(root: MimePart, *, limit: int = 64) -> str | None:
    """The charset the first text part declares (depth-first, at most ``limit`` parts)."""
    stack = [root]
    seen = 0
    while stack and seen < limit:
        part = stack.pop()
        seen += 1
        if part.children:
            stack.extend(reversed(part.children))
        elif part.content_type.startswith("text/") and part.params.get("charset"):
            return part.params["charset"]
    return None


_HEADER_LINE = re.compile(rb"^([!-9;-~]+)[ \t]*:[ \t]*(.*(?:\r?\n[ \t].*)*)", re.M)


def repair_headers(raw: bytes, root: MimePart) -> tuple[list[tuple[str, str]], list[str]]:
    """The top-level headers re-read where the first pass had to guess.

    Args:
        raw: the whole message.
        root: its parsed tree (``root.headers`` from :func:`~daemon.mail.mime.split_headers`).

    Returns:
        ``(headers, defects)``: ``headers`` is ``root.headers`` itself when nothing
        needed repair; defects are ``header-charset:<hint>`` (8-bit values re-decoded
        with the body's charset) and ``subject-fold-repaired``.
    """
    headers = root.headers
    defects: list[str] = []
    if "8bit-header" in root.defects:
        hint = body_charset(root)
        if hint is not None:
            headers = _redecoded(raw, headers, hint)
            if headers is not root.headers:
                defects.append(f"header-charset:{hint.strip().lower()[:40]}")
    if ("missing-header-separator" in root.defects and headers
            and headers[-1] == ("subject", "")):
        line = _line_after_headers(raw)
        if line:
            headers = [*headers[:-1], ("subject", line)]
            defects.append("subject-fold-repaired")
    return headers, defects


def _redecoded(raw: bytes, headers: list[tuple[str, str]], hint: str
               ) -> list[tuple[str, str]]:
    _, offset, _ = split_headers(raw)
    values = _HEADER_LINE.findall(raw, 0, offset)
    if len(values) != len(headers):
        return headers
    out: list[tuple[str, str]] = []
    changed = False
    for (name, text), (_, value) in zip(headers, values, strict=True):
        if not value.isascii():
            value = value.replace(b"\r\n", b"").replace(b"\n", b"").strip()
            again = decode_8bit(value, hint=hint)
            changed = changed or again != text
            text = again
        out.append((name, text))
    return out if changed else headers


def _line_after_headers(raw: bytes) -> str:
    _, offset, _ = split_headers(raw)
    end = raw.find(b"\n", offset, offset + 2000)
    line = raw[offset:end if end >= 0 else offset + 998].strip()
    if not line or b":" in line.partition(b" ")[0]:
        return ""
    return " ".join(decode_8bit(line).split())
