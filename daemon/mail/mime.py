"""The raw MIME tree: header blocks and body parts split out of bytes, nothing interpreted.

Why not :mod:`email`? The stdlib's feed parser walks a message line by line in Python;
on a realistic 13 KiB message it manages ~1,600 messages/s with ``policy.compat32``
before a single payload is decoded, and ~380 with ``policy.default``. This module finds
header blocks and MIME boundaries with compiled regular expressions over the whole buffer
(C speed) and leaves decoding to the caller, which needs it only for the parts it keeps.

Tolerances, matching what real mail needs (and what :mod:`email` tolerates):

* CRLF or bare LF line endings, also mixed.
* A header block ends at the first empty line; a line that is neither a header nor a
  continuation also ends it (the rest is body, defect ``missing-header-separator``).
  A leading mbox ``From `` line is skipped.
* Header values are unfolded (RFC 5322 §2.2.3) and raw 8-bit bytes are decoded per
  value (UTF-8, else windows-1252); RFC 2047 words are left for the caller, because
  addresses and parameters must be split before encoded words are decoded.
* A multipart without a boundary parameter, or whose boundary never occurs, is read as
  one ``text/plain`` part (the text stays readable); a missing close delimiter ends the
  multipart at the end of its body. Nesting deeper than :data:`MAX_DEPTH` is kept as an
  opaque part.
* Parameters follow RFC 2045 with RFC 2231 continuations and charsets
  (``filename*0*=utf-8''...``), and tolerate unquoted values with spaces.
"""

from __future__ import annotations

__all__ = [
    "MAX_DEPTH",
    "MimePart",
    "decode_transfer",
    "parse_params",
    "parse_part",
    "split_headers",
]

import binascii
import re
from dataclasses import dataclass, field
from urllib.parse import unquote_to_bytes

from daemon.mail.charset import decode_8bit, decode_text

MAX_DEPTH = 40

# One header line (name, optional spaces, colon) or one continuation line; the block is
# the longest run of those from the start. The two alternatives differ in their first
# character, so the match is linear.
_HEADER_RUN = re.compile(rb"(?:[!-9;-~]+[ \t]*:[^\n]*(?:\n|\Z)|[ \t][^\n]*(?:\n|\Z))*")
_HEADER_LINE = re.compile(rb"^([!-9;-~]+)[ \t]*:[ \t]*(.*(?:\r?\n[ \t].*)*)", re.M)
_BLANK = re.compile(rb"\r?\n")


@dataclass(slots=True)
class MimePart:
    """One node of the MIME tree.

    Attributes:
        headers: ``(lower-case name, value)`` in order; values unfolded and stripped,
            8-bit repaired, RFC 2047 still encoded.
        content_type: ``type/subtype``, lower-case; the RFC 2045 default when missing
            or invalid.
        params: Content-Type parameters (lower-case names, RFC 2231 decoded).
        body: the raw body bytes (still transfer-encoded), empty for multiparts.
        children: sub-parts of a multipart, in order.
        defects: what was repaired while splitting this node.
    """

    headers: list[tuple[str, str]]
    content_type: str
    params: dict[str, str]
    body: bytes = b""
    children: list[MimePart] = field(default_factory=list)
    defects: list[str] = field(default_factory=list)

    def get(self, name: str) -> str | None:
        """The first value of header ``name`` (lower-case), or None."""
        for key, value in self.headers:
            if key == name:
                return value
        return None

    @property
    def transfer_encoding(self) -> str:
        """Content-Transfer-Encoding, lower-case, ``7bit`` when missing."""
        value = self.get("content-transfer-encoding")
        return value.strip().lower() if value else "7bit"


def split_headers(data: bytes) -> tuple[list[tuple[str, str]], int, list[str]]:
    """Split the header block off the start of ``data``.

    Args:
        data: a message or a MIME part, starting with its headers.

    Returns:
        ``(headers, body_offset, defects)``; header names are lower-case, values are
        unfolded, stripped str (see module notes).
    """
    defects: list[str] = []
    start = 0
    if data.startswith(b"From "):
        start = data.find(b"\n") + 1 or len(data)
        defects.append("mbox-from-line")
    if data.startswith(b"\n", start) or data.startswith(b"\r\n", start):
        return [], start + (1 if data[start] == 0x0A else 2), defects
    end = _HEADER_RUN.match(data, start).end()
    block = data[start:end]
    if end < len(data):
        blank = _BLANK.match(data, end)
        if blank:
            body = blank.end()
        else:
            body = end
            defects.append("missing-header-separator")
    else:
        body = end
    if block[:1] in (b" ", b"\t"):
        defects.append("leading-continuation-line")
    if not block.isascii():
        defects.append("8bit-header")
    headers = [
        (name.decode("ascii").lower(),
         _header_text((value.replace(b"\r\n", b"").replace(b"\n", b"")
                       if b"\n" in value else value).strip()))
        for name, value in _HEADER_LINE.findall(block)
    ]
    return headers, body, defects


def _header_text(value: bytes) -> str:
    if value.isascii() and b"\x1b" not in value:
        return value.decode("ascii")
    return decode_8bit(value)


def parse_part(data: bytes, *, default_type: str = "text/plain", depth: int = 0) -> MimePart:
    """Parse a message or body part into a :class:`MimePart` tree.

    Args:
        data: raw bytes starting with the header block.
        default_type: the content type when none is declared (``message/rfc822`` inside
            ``multipart/digest``).
        depth: nesting level; past :data:`MAX_DEPTH` multiparts are not split further.

    Returns:
        The tree. Never raises for malformed input; repairs are listed in ``defects``.
    """
    headers, offset, defects = split_headers(data)
    part = MimePart(headers, default_type, {}, defects=defects)
    raw_type = part.get("content-type")
    if raw_type is not None:
        _set_type(part, raw_type, default_type)
    if not part.content_type.startswith("multipart/"):
        part.body = data[offset:]
        return part
    if depth >= MAX_DEPTH:
        part.defects.append("nesting-too-deep")
        part.content_type, part.body = "application/octet-stream", data[offset:]
        return part
    _split_multipart(part, data[offset:], depth)
    return part


_TYPE = re.compile(r"[!#$%&'*+.^_`|~0-9a-z-]+/[!#$%&'*+.^_`|~0-9a-z-]+")


def _set_type(part: MimePart, raw: str, default_type: str) -> None:
    main, _, rest = raw.partition(";")
    ctype = main.strip().lower()
    if _TYPE.fullmatch(ctype):
        part.content_type = ctype
    else:
        part.defects.append("invalid-content-type")
        part.content_type = default_type
    if rest:
        part.params = parse_params(rest)


def _split_multipart(part: MimePart, body: bytes, depth: int) -> None:
    boundary = part.params.get("boundary")
    if not boundary:
        part.defects.append("multipart-without-boundary")
        part.content_type, part.body = "text/plain", body
        return
    delimiters = _find_delimiters(body, b"--" + boundary.encode("utf-8", "replace"))
    if not delimiters:
        part.defects.append("boundary-not-found")
        part.content_type, part.body = "text/plain", body
        return
    child_type = "message/rfc822" if part.content_type == "multipart/digest" else "text/plain"
    closed = False
    for (_, start, close), following in zip(delimiters, [*delimiters[1:], None], strict=True):
        if close:
            closed = True
            break
        end = following[0] if following else len(body)
        part.children.append(parse_part(body[start:end], default_type=child_type,
                                        depth=depth + 1))
    if not closed:
        part.defects.append("multipart-not-closed")


def _find_delimiters(body: bytes, marker: bytes) -> list[tuple[int, int, bool]]:
    """Find delimiter lines (RFC 2046 §5.1.1) with :meth:`bytes.find`, not a regex scan.

    Returns:
        ``(start, after, close)`` per delimiter: ``start`` includes the line break before
        it (which belongs to the delimiter), ``after`` is where the next part begins
        (past the line break that ends the delimiter line), ``close`` marks ``--b--``.
    """
    found: list[tuple[int, int, bool]] = []
    size = len(body)
    pos = body.find(marker)
    while pos >= 0:
        if pos == 0 or body[pos - 1] == 0x0A:
            end = pos + len(marker)
            close = body.startswith(b"--", end)
            end += 2 if close else 0
            while end < size and body[end] in (0x20, 0x09):
                end += 1
            if end == size or body[end] == 0x0A or body.startswith(b"\r\n", end):
                start = pos - 1 if pos else 0
                if start and body[start - 1] == 0x0D:
                    start -= 1
                after = end + (2 if body.startswith(b"\r\n", end) else 1)
                found.append((start, min(after, size), close))
                if close:
                    break
        pos = body.find(marker, pos + len(marker))
    return found


_PARAM = re.compile(r"""[ \t\r\n]*([^\s=;"]+)[ \t\r\n]*=[ \t\r\n]*("(?:[^"\\]|\\.)*"?|[^;]*)""",
                    re.S)
_SECTION = re.compile(r"^(.*?)\*(\d+)(\*?)$")
_QUOTED_PAIR = re.compile(r"\\(.)", re.S)


def parse_params(text: str) -> dict[str, str]:
    """Parse ``; name=value`` parameters (RFC 2045) with RFC 2231 extensions.

    Args:
        text: everything after the first ``;`` of a Content-Type or Content-Disposition.

    Returns:
        Lower-case names to decoded values. The first occurrence of a name wins.
        ``name*0*=``, ``name*1=`` sections are joined in order; ``name*=charset''%xx``
        values are percent-decoded and decoded with their charset (with repair).
        Garbage between parameters is skipped up to the next ``;``.
    """
    plain: dict[str, str] = {}
    sections: dict[str, list[tuple[int, bool, str]]] = {}
    pos, length = 0, len(text)
    while pos < length:
        match = _PARAM.match(text, pos)
        if match:
            _add_param(plain, sections, match.group(1).lower(), match.group(2).strip())
            pos = match.end()
        semicolon = text.find(";", pos)
        if semicolon < 0:
            break
        pos = semicolon + 1
    for name, pieces in sections.items():
        plain[name] = _join_sections(sorted(pieces, key=lambda p: p[0]))
    return plain


def _add_param(plain: dict[str, str], sections: dict[str, list[tuple[int, bool, str]]],
               name: str, value: str) -> None:
    if value.startswith('"'):
        inner = value[1:-1] if len(value) > 1 and value.endswith('"') else value[1:]
        value = _QUOTED_PAIR.sub(r"\1", inner) if "\\" in inner else inner
    section = _SECTION.match(name)
    if section:
        sections.setdefault(section.group(1), []).append(
            (int(section.group(2)[:6]), bool(section.group(3)), value))
    elif name.endswith("*"):
        sections.setdefault(name[:-1], []).append((0, True, value))
    else:
        plain.setdefault(name, value)


def _join_sections(pieces: list[tuple[int, bool, str]]) -> str:
    """Join RFC 2231 sections; the first encoded section carries ``charset'lang'``."""
    charset = None
    raw = bytearray()
    for index, (_, encoded, value) in enumerate(pieces):
        if encoded:
            if index == 0 and value.count("'") >= 2:
                charset, _, value = value.split("'", 2)
            raw += unquote_to_bytes(value)
        else:
            raw += value.encode("utf-8", "surrogateescape")
    if not raw:
        return ""
    return decode_text(bytes(raw), charset or None)[0]


def decode_transfer(body: bytes, encoding: str) -> tuple[bytes, str | None]:
    """Undo a Content-Transfer-Encoding.

    Args:
        body: the raw part body.
        encoding: the CTE, lower-case.

    Returns:
        ``(data, defect)``; on broken base64 the decodable prefix is kept
        (``base64-repaired``); an unknown encoding returns the body unchanged
        (``unknown-transfer-encoding``).
    """
    if encoding in ("7bit", "8bit", "binary", ""):
        return body, None
    if encoding == "base64":
        return _base64(body)
    if encoding == "quoted-printable":
        return binascii.a2b_qp(body), None
    if encoding in ("x-uuencode", "uuencode", "x-uue", "uue"):
        return _uudecode(body)
    return body, "unknown-transfer-encoding"


_NOT_BASE64 = re.compile(rb"[^A-Za-z0-9+/]")


def _base64(body: bytes) -> tuple[bytes, str | None]:
    try:
        return binascii.a2b_base64(body), None
    except binascii.Error:
        pass
    cleaned = _NOT_BASE64.sub(b"", body.split(b"=", 1)[0])
    cleaned = cleaned[: len(cleaned) - len(cleaned) % 4 if len(cleaned) % 4 == 1 else None]
    cleaned += b"=" * (-len(cleaned) % 4)
    try:
        return binascii.a2b_base64(cleaned), "base64-repaired"
    except binascii.Error:  # pragma: no cover - cleaned input is always decodable
        return b"", "base64-undecodable"


def _uudecode(body: bytes) -> tuple[bytes, str | None]:
    out = bytearray()
    started = False
    for line in body.splitlines():
        if not started:
            started = line.startswith(b"begin ")
            continue
        if line.strip() in (b"end", b"`", b""):
            if line.strip() == b"end":
                break
            continue
        try:
            out += binascii.a2b_uu(line)
        except binascii.Error:
            # Some encoders pad lines wrongly; decode what the length byte promises.
            length = ((line[0] - 32) & 63) * 4 // 3
            try:
                out += binascii.a2b_uu(line[: length + 1])
            except binascii.Error:
                return bytes(out), "uuencode-repaired"
    return bytes(out), None if started else "uuencode-without-begin"
