"""Bytes in, :class:`~daemon.mail.model.ParsedMessage` out, for any input whatsoever.

:func:`parse_message` never raises: every repair is recorded in ``defects`` (short strings
such as ``duplicate-header:subject``, ``charset:utf-8->cp1252``, ``bad-address:to``), and an
unexpected internal failure still yields a message with the raw text as its body and an
``internal-error:<Type>`` defect, so one poisonous message can never block a mailbox
(Zammad #2754, #1877).

Defects, by source:

* headers: ``duplicate-header:<name>``, ``missing-header:from``,
  ``missing-header:message-id``, ``bad-message-id``, ``bad-address:<field>``,
  ``multiple-from``, ``sender-repaired:<field>:<how>`` (see :mod:`daemon.mail.sender`),
  ``bad-date``, ``8bit-header``, ``mbox-from-line``,
  ``missing-header-separator``, ``leading-continuation-line``, ``too-many-headers``,
  ``header-truncated:<name>``, ``bad-header:<name>`` (that field could not be parsed at
  all and is left empty; the other fields are unaffected);
* structure: ``invalid-content-type``, ``multipart-without-boundary``,
  ``boundary-not-found``, ``multipart-not-closed``, ``nesting-too-deep``,
  ``too-many-parts``;
* content: ``charset:<declared>-><used>``, ``base64-repaired``,
  ``unknown-transfer-encoding``, ``uuencode-repaired``, ``uuencode-without-begin``,
  ``tnef-unreadable``;
* ``internal-error:<ExceptionType>`` - a parser bug; the fuzz tests keep this unreachable.

Design notes (attachments, inline images and charsets, as other helpdesks get them wrong):

* MIME splitting is done by :mod:`daemon.mail.mime` with ``bytes.find`` and compiled
  regular expressions; the stdlib feed parser was 4x slower on the benchmark mix
  (``benchmarks/messages.py``) before any decoding.
* Headers that RFC 5322 §3.6 allows once (From, To, Subject, Message-ID...) use the first
  occurrence; later ones are kept in ``headers`` and reported as ``duplicate-header:<name>``.
* Body: the first non-attachment ``text/plain`` and ``text/html`` parts form the body;
  further inline text parts (list footers, Apple Mail's split HTML around inline images)
  are appended. Without a text part the text is derived from the sanitised HTML.
  ``format=flowed`` (RFC 3676) is unwrapped.
* Attachments are named by the chain Content-Disposition filename → Content-Type name →
  (``message/rfc822``) the inner Subject + ``.eml`` → Content-Location → Content-ID →
  ``attachment-N.<ext>``; names are stripped of paths and control characters and made
  unique (``a.pdf``, ``a (2).pdf``).
* A part referenced from the HTML by ``cid:`` is an inline image (``inline=True``);
  ``data:image/...;base64`` sources in the HTML become inline images too
  (``origin="data-uri"``) and the HTML then refers to them by ``cid:``.
* ``winmail.dat`` is unpacked (:mod:`daemon.mail.tnef`); if that fails the ``.dat`` is kept.
* DSN parts (``message/delivery-status``, ``text/rfc822-headers``, the returned
  ``message/rfc822``) are attachments like any other; :mod:`daemon.mail.bounces` reads them
  from ``ParsedMessage.attachments``.
"""

from __future__ import annotations

__all__ = ["parse_message"]

import base64
import binascii
import hashlib
import mimetypes
import re
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.utils import getaddresses, parsedate_to_datetime

from daemon.mail.charset import decode_text
from daemon.mail.headers import decode_encoded_words, first_subject, repair_headers
from daemon.mail.html import html_to_text, referenced_content_ids, sanitize_html
from daemon.mail.mime import MimePart, decode_transfer, parse_params, parse_part, split_headers
from daemon.mail.model import Address, Attachment, ParsedMessage
from daemon.mail.sender import read_sender
from daemon.mail.tnef import is_tnef, unpack_tnef

# RFC 5322 §3.6: fields that may occur at most once.
_SINGLETONS = frozenset({"from", "sender", "reply-to", "to", "cc", "bcc", "message-id",
                         "in-reply-to", "references", "subject", "date"})
_BODY_TYPES = frozenset({"text/plain", "text/html"})
_MESSAGE_TYPES = frozenset({"message/rfc822", "message/global"})
_EXTENSIONS = {
    "message/rfc822": "eml", "message/global": "eml", "message/delivery-status": "txt",
    "message/global-delivery-status": "txt", "text/rfc822-headers": "txt",
    "message/global-headers": "txt", "text/plain": "txt", "text/html": "html",
    "image/jpeg": "jpg", "text/calendar": "ics", "application/octet-stream": "bin",
    "message/disposition-notification": "txt", "message/feedback-report": "txt",
}


def parse_message(raw: bytes) -> ParsedMessage:
    """Parse one RFC 5322 message.

    Args:
        raw: the message exactly as fetched (CRLF or LF line endings).

    Returns:
        The parsed message; ``size`` and ``sha256`` describe ``raw``. Never raises:
        problems are listed in ``defects``.
    """
    try:
        return _parse(raw)
    except Exception as exc:  # the promise is "never raises"; the defect says what broke
        return _fallback(raw, exc)


def _parse(raw: bytes) -> ParsedMessage:
    root = parse_part(raw)
    root.headers, repaired = repair_headers(raw, root)
    root.defects += repaired
    defects: list[str] = []
    headers = _decoded_headers(root.headers, defects)
    body = _Body()
    body.walk(root, depth=0)
    defects += body.defects
    html = sanitize_html("\n".join(body.htmls)).strip() if body.htmls else None
    inline_from_data: list[Attachment] = []
    if html is not None and "data:" in html:
        html, inline_from_data = _extract_data_uris(html)
    text = "\n".join(body.texts)
    if not body.texts:
        if html is not None:
            text = html_to_text(html)
        elif body.tnef_text:
            text = body.tnef_text
    attachments, inline = _split_inline(body.files, html)
    # Addresses and ids are parsed from the raw values: a decoded display name may
    # contain commas, quotes or angle brackets that would split or merge addresses.
    first: dict[str, str] = {}
    for name, value in root.headers:
        first.setdefault(name, value)
    return ParsedMessage(
        **_envelope(first, headers, defects),  # type: ignore[arg-type]
        headers=headers,
        text=text,
        html=html,
        attachments=attachments,
        inline_images=(*inline, *inline_from_data),
        defects=tuple(dict.fromkeys(defects)),
        size=len(raw),
        sha256=hashlib.sha256(raw).hexdigest(),
    )


def _envelope(first: dict[str, str], headers: dict[str, tuple[str, ...]],
              defects: list[str]) -> dict[str, object]:
    """Sender (with its source: From, Sender, Reply-To or Return-Path), recipients, ids,
    subject and date, each field parsed on its own.

    A field whose parsing fails unexpectedly is left empty with ``bad-header:<name>``,
    so one absurd header (a 500-deep comment in Cc) never costs the others.
    """
    fields: dict[str, object] = {}
    steps = (
        ("message_id", "message-id", lambda: _first_id(first.get("message-id"), defects)),
        ("subject", "subject", lambda: first_subject(headers.get("subject", ()))),
        ("from_", "from", lambda: read_sender(first, _addresses, defects)),
        ("to", "to", lambda: _addresses(first.get("to"), "to", defects)),
        ("cc", "cc", lambda: _addresses(first.get("cc"), "cc", defects)),
        ("reply_to", "reply-to", lambda: _addresses(first.get("reply-to"), "reply-to",
                                                    defects)),
        ("in_reply_to", "in-reply-to", lambda: _ids(first.get("in-reply-to"))),
        ("references", "references", lambda: _ids(first.get("references"))),
        ("date", "date", lambda: _date(first.get("date"), defects)),
    )
    for attribute, header, parse in steps:
        try:
            value = parse()
        except Exception:  # the field is dropped, the message survives
            defects.append(f"bad-header:{header}")
            continue
        if attribute == "from_":  # the sender comes with the header it was read from
            assert isinstance(value, tuple)
            fields["from_"], fields["from_source"] = value
        else:
            fields[attribute] = value
    return fields


_SPACES = str.maketrans(dict.fromkeys(
    "\t\n\r\x0b\x0c\x1c\x1d\x1e\x1f\x85\xa0\u1680\u2028\u2029\u202f\u205f\u3000"
    + "".join(map(chr, range(0x2000, 0x200B))), " "))


def _squash(text: str) -> str:
    """Whitespace runs folded to one space, as ``" ".join(text.split())`` does.

    Without the list of words and without a regex substitution (both cost tens of
    bytes per word on a megabyte-sized header): each ``replace`` pass halves the runs.
    """
    text = text.translate(_SPACES) if not text.isascii() or not text.isprintable() else text
    while "  " in text:
        text = text.replace("  ", " ")
    return text.strip(" ")


def _fallback(raw: bytes, exc: Exception) -> ParsedMessage:
    """The message as plain text when parsing failed in an unexpected way.

    The envelope (From, Subject, Message-ID...) is still read from the header block if
    that much works, so the sender is not lost.
    """
    defects = [f"internal-error:{type(exc).__name__}"]
    envelope: dict[str, object] = {"message_id": None, "subject": "", "from_": None}
    try:
        raw_headers, _, _ = split_headers(raw)
        first: dict[str, str] = {}
        for name, value in raw_headers:
            first.setdefault(name, value)
        envelope.update(_envelope(first, {"subject": (decode_encoded_words(
            first.get("subject", "")),)}, defects))
    except Exception:  # the raw text below is all there is
        pass
    return ParsedMessage(
        **envelope,  # type: ignore[arg-type]
        text=raw.decode("utf-8", "replace").replace("\r\n", "\n"),
        defects=tuple(dict.fromkeys(defects)),
        size=len(raw), sha256=hashlib.sha256(raw).hexdigest(),
    )


# -- headers -------------------------------------------------------------------------------


def _decoded_headers(raw: list[tuple[str, str]], defects: list[str]) -> dict[str, tuple[str, ...]]:
    collected: dict[str, list[str]] = {}
    for name, value in raw:
        values = collected.setdefault(name, [])
        if values and name in _SINGLETONS:
            defects.append(f"duplicate-header:{name}")
        values.append(decode_encoded_words(value) if "=?" in value else value)
    if "from" not in collected:
        defects.append("missing-header:from")
    if "message-id" not in collected:
        defects.append("missing-header:message-id")
    return {name: tuple(values) for name, values in collected.items()}


_ANGLE_ID = re.compile(r"<([^<>]*)>")
_WHITESPACE = re.compile(r"\s+")


#: Ids kept from one In-Reply-To / References header: the first (the thread's root)
#: and the last ones (the nearest ancestors); the middle of a huge chain is dropped.
MAX_IDS = 100
_BARE_ID = re.compile(r"[^\s,]+")


def _ids(value: str | None) -> tuple[str, ...]:
    """Message ids from In-Reply-To / References: ``<>`` and inner whitespace removed.

    Ids in angle brackets win; without any, whitespace- or comma-separated tokens are
    taken (some clients omit the brackets). Duplicates are dropped, order is kept. At
    most :data:`MAX_IDS` are kept (the first and the last), in linear time and bounded
    memory however long the header.
    """
    if not value:
        return ()
    found = _bounded_ids(_WHITESPACE.sub("", m.group(1)) for m in _ANGLE_ID.finditer(value))
    if not found:
        found = _bounded_ids(m.group(0).strip("<>") for m in _BARE_ID.finditer(value))
    return tuple(dict.fromkeys(f for f in found if f))


def _bounded_ids(ids: Iterable[str]) -> list[str]:
    """The first id and the last ``MAX_IDS - 1`` non-empty ids of ``ids``."""
    head: list[str] = []
    tail: deque[str] = deque(maxlen=MAX_IDS - 1)
    for item in ids:
        if not item:
            continue
        if head:
            tail.append(item)
        else:
            head.append(item)
    return head + list(tail)


def _first_id(value: str | None, defects: list[str]) -> str | None:
    ids = _ids(value)
    if value is not None and not ids:
        defects.append("bad-message-id")
    return ids[0] if ids else None


_EMAIL = re.compile(r"[^@\s<>(),;:\"\[\]\\]+@[^@\s<>(),;:\"\[\]\\]+")


#: Characters of an address header parsed at most (``bad-address:<field>`` past it).
MAX_ADDRESS_HEADER = 256 * 1024
#: Addresses kept from one header (``bad-address:<field>`` past it).
MAX_ADDRESSES = 1000


def _addresses(value: str | None, field_name: str, defects: list[str]) -> tuple[Address, ...]:
    """Parse an address list; unusable entries are dropped with ``bad-address:<field>``.

    Bounded: at most :data:`MAX_ADDRESS_HEADER` characters are read (cut at the last
    comma before the limit), at most :data:`MAX_ADDRESSES` addresses are kept, and
    comments nested deeper than :data:`MAX_COMMENT_DEPTH` are removed before the
    stdlib's recursive comment parser sees them.
    """
    if not value:
        return ()
    if len(value) > MAX_ADDRESS_HEADER:
        defects.append(f"bad-address:{field_name}")
        cut = value.rfind(",", 0, MAX_ADDRESS_HEADER)
        value = value[:cut if cut > 0 else MAX_ADDRESS_HEADER]
    found: list[Address] = []
    for name, email in _address_pairs(value):
        if len(found) >= MAX_ADDRESSES:
            defects.append(f"bad-address:{field_name}")
            break
        email = email.strip().strip(".").lower()
        if not email:
            if name.strip():
                defects.append(f"bad-address:{field_name}")
            continue
        if not _EMAIL.fullmatch(email):
            defects.append(f"bad-address:{field_name}")
            continue
        name = _squash(decode_encoded_words(name))
        if len(name) >= 2 and name[0] == name[-1] and name[0] in "\"'":
            name = name[1:-1].strip()  # 'John Doe' <j@x> from some clients
        found.append(Address(email=email, name="" if name.lower() == email else name))
    return tuple(dict.fromkeys(found))


# The common shapes - ``a@b``, ``Name <a@b>``, ``"Name, Inc." <a@b>`` - in a comma list,
# matched by one regex; anything else (comments, groups, routes) goes to getaddresses,
# which is exact but ~10x slower. Every repetition is possessive, so hostile input
# (thousands of spaces, unclosed quotes) cannot make the regex backtrack.
_FAST_ITEM = (r'\s*+(?:(?:"((?:[^"\\\r\n]|\\.)*+)"\s*+|([^<>",;:()@\\]*+))'
              r'<([^<>\s",;:()]++)>|([^\s<>",;:()@]++@[^\s<>",;:()@]++))\s*+')
_FAST_LIST = re.compile(f"(?:{_FAST_ITEM},)*+{_FAST_ITEM}")
_FAST_ONE = re.compile(_FAST_ITEM)
_QUOTED_PAIR = re.compile(r"\\(.)")


def _address_pairs(value: str) -> list[tuple[str, str]]:
    if _FAST_LIST.fullmatch(value):
        pairs = []
        for match in _FAST_ONE.finditer(value):
            quoted, bare, bracketed, plain = match.groups()
            if plain:
                pairs.append(("", plain))
            else:
                name = _QUOTED_PAIR.sub(r"\1", quoted) if quoted is not None else bare or ""
                pairs.append((name.strip(), bracketed))
        return pairs
    return getaddresses([_shallow_comments(value)])


#: Comment nesting the stdlib's (recursive) address parser is given at most.
MAX_COMMENT_DEPTH = 20
_COMMENT_SYNTAX = re.compile(r'[()"\\]')


def _shallow_comments(value: str) -> str:
    """``value`` with its comments removed when they nest deeper than the limit.

    One pass over the special characters (parentheses, quotes, backslashes), so linear;
    shallow comments are left alone (getaddresses reads ``a@b (Name)`` as a name). An
    unclosed comment runs to the end and is dropped.
    """
    if value.count("(") <= MAX_COMMENT_DEPTH:
        return value
    kept: list[str] = []
    depth = deepest = pos = 0
    quoted = False
    escaped_until = -1
    for match in _COMMENT_SYNTAX.finditer(value):
        at, char = match.start(), match.group(0)
        if at < escaped_until:
            continue
        if char == "\\":
            escaped_until = at + 2
        elif quoted:
            quoted = char != '"'
        elif depth == 0:
            if char == '"':
                quoted = True
            elif char == "(":
                kept.append(value[pos:at])
                depth = 1
                deepest = max(deepest, 1)
        elif char == "(":
            depth += 1
            deepest = max(deepest, depth)
        elif char == ")":
            depth -= 1
            if depth == 0:
                kept.append(" ")
                pos = at + 1
    if depth == 0:
        kept.append(value[pos:])
    return value if deepest <= MAX_COMMENT_DEPTH else "".join(kept)


def _date(value: str | None, defects: list[str]) -> datetime | None:
    if not value:
        return None
    try:
        parsed = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError, OverflowError):
        defects.append("bad-date")
        return None
    return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed


# -- body ------------------------------------------------------------------------------------


@dataclass(slots=True)
class _File:
    """An attachment before naming: ``names`` is the filename chain, best first."""

    names: list[str | None]
    content_type: str
    data: bytes
    content_id: str | None
    origin: str = "mime"


@dataclass(slots=True)
class _Body:
    """Collects body texts, HTML and files while walking the MIME tree."""

    texts: list[str] = field(default_factory=list)
    htmls: list[str] = field(default_factory=list)
    files: list[_File] = field(default_factory=list)
    defects: list[str] = field(default_factory=list)
    tnef_text: str | None = None

    def walk(self, part: MimePart, depth: int) -> None:
        self.defects += part.defects
        if part.children or part.content_type.startswith("multipart/"):
            for child in part.children:
                self.walk(child, depth + 1)
            return
        disposition, dparams = _disposition(part.get("content-disposition"))
        filename = dparams.get("filename") or part.params.get("name")
        data, defect = decode_transfer(part.body, part.transfer_encoding)
        if defect:
            self.defects.append(defect)
        ctype = part.content_type
        if ctype in _BODY_TYPES and disposition != "attachment" and not filename:
            self._add_text(part, data)
        elif is_tnef(ctype, filename):
            self._add_tnef(part, data, filename)
        else:
            names = [filename]
            origin = "mime"
            if ctype in _MESSAGE_TYPES:
                names.append(_inner_subject(data))
                origin = "rfc822"
            self.files.append(_File(names + _fallback_names(part), ctype, data,
                                    _content_id(part), origin))

    def _add_text(self, part: MimePart, data: bytes) -> None:
        charset = part.params.get("charset")
        if charset is None and part.content_type == "text/html":
            charset = _meta_charset(data)
        text, defect = decode_text(data, charset)
        if defect:
            self.defects.append(defect)
        if "\r" in text:
            text = text.replace("\r\n", "\n").replace("\r", "\n")
        if part.content_type == "text/html":
            self.htmls.append(text)
            return
        if part.params.get("format", "").lower() == "flowed":
            text = _unflow(text, delsp=part.params.get("delsp", "").lower() == "yes")
        self.texts.append(text)

    def _add_tnef(self, part: MimePart, data: bytes, filename: str | None) -> None:
        content = unpack_tnef(data)
        if content is None:
            self.defects.append("tnef-unreadable")
            self.files.append(_File([filename, "winmail.dat"], part.content_type, data,
                                    _content_id(part)))
            return
        for item in content.attachments:
            self.files.append(_File([item.filename], item.content_type, item.data,
                                    item.content_id, origin="tnef"))
        if content.html and not self.htmls:
            self.htmls.append(content.html)
        if content.text:
            self.tnef_text = content.text


def _disposition(value: str | None) -> tuple[str, dict[str, str]]:
    if not value:
        return "", {}
    kind, _, rest = value.partition(";")
    return kind.strip().lower(), parse_params(rest) if rest else {}


def _content_id(part: MimePart) -> str | None:
    value = part.get("content-id")
    if not value:
        return None
    cleaned = _WHITESPACE.sub("", value).strip("<>")
    return cleaned or None


def _fallback_names(part: MimePart) -> list[str | None]:
    """Content-Location's last path segment, then the Content-ID, as name candidates."""
    names: list[str | None] = []
    location = part.get("content-location")
    if location:
        segment = location.strip().split("?", 1)[0].rstrip("/").rsplit("/", 1)[-1]
        names.append(segment if "." in segment else None)
    content_id = _content_id(part)
    if content_id:
        local = content_id.split("@", 1)[0]
        names.append(local if "." in local else f"{local}.{_extension(part.content_type)}")
    return names


def _inner_subject(data: bytes) -> str | None:
    headers, _, _ = split_headers(data[:65536])
    for name, value in headers:
        if name == "subject":
            subject = _squash(decode_encoded_words(value[:4096]))
            return f"{subject}.eml" if subject else None
    return None


_META_CHARSET = re.compile(rb"""<meta[^>]+charset\s*=\s*["']?([A-Za-z0-9_:.-]+)""", re.I)


def _meta_charset(data: bytes) -> str | None:
    found = _META_CHARSET.search(data[:4096])
    return found.group(1).decode("ascii") if found else None


def _unflow(text: str, *, delsp: bool) -> str:
    """Join RFC 3676 soft line breaks (a line ending in a space, same quote depth)."""
    out: list[str] = []
    carry = ""
    carry_depth = -1
    for line in text.split("\n"):
        depth = len(line) - len(line.lstrip(">"))
        content = line[depth:]
        if content.startswith(" "):
            content = content[1:]  # space-stuffing
        if carry and depth != carry_depth:
            out.append(">" * carry_depth + (" " if carry_depth else "") + carry)
            carry = ""
        if content.endswith(" ") and content != "-- ":
            carry += content[:-1] if delsp else content
            carry_depth = depth
            continue
        joined = carry + content
        carry = ""
        out.append((">" * depth + " " if depth else "") + joined)
    if carry:
        out.append((">" * carry_depth + " " if carry_depth else "") + carry)
    return "\n".join(out)


# -- naming and inline images ---------------------------------------------------------------

_UNSAFE_NAME = re.compile(r"[\x00-\x1f\x7f\u202a-\u202e\u2066-\u2069]")


def _clean_name(name: str | None) -> str | None:
    """A safe file name: no directories, control or bidi characters, at most 200 chars."""
    if not name:
        return None
    if "=?" in name:
        name = decode_encoded_words(name)
    name = _UNSAFE_NAME.sub("", name.replace("\\", "/").rsplit("/", 1)[-1]).strip(" .")
    if not name:
        return None
    if len(name) > 200:
        stem, dot, ext = name.rpartition(".")
        name = (stem[:190] + dot + ext[:9]) if dot and len(ext) <= 9 else name[:200]
    return name


def _extension(content_type: str) -> str:
    known = _EXTENSIONS.get(content_type)
    if known:
        return known
    guessed = mimetypes.guess_extension(content_type, strict=False)
    return guessed[1:] if guessed else "bin"


def _split_inline(files: list[_File], html: str | None
                  ) -> tuple[tuple[Attachment, ...], tuple[Attachment, ...]]:
    """Name every file and put those the HTML references by ``cid:`` into inline images."""
    referenced = referenced_content_ids(html) if html else set()
    taken: dict[str, int] = {}
    attachments: list[Attachment] = []
    inline: list[Attachment] = []
    unnamed = 0
    for item in files:
        name = next((n for n in map(_clean_name, item.names) if n), None)
        if name is None:
            unnamed += 1
            name = f"attachment-{unnamed}.{_extension(item.content_type)}"
        name = _unique(name, taken)
        is_inline = item.content_id is not None and item.content_id in referenced
        attachment = Attachment(filename=name, content_type=item.content_type, data=item.data,
                                content_id=item.content_id, inline=is_inline,
                                origin=item.origin)
        (inline if is_inline else attachments).append(attachment)
    return tuple(attachments), tuple(inline)


def _unique(name: str, taken: dict[str, int]) -> str:
    """``name``, or ``stem (N).ext`` with the lowest free N, case-insensitively.

    ``taken`` maps every name given out (lower-case) to the last counter tried for it,
    so the n-th copy of one name resumes where the previous stopped: linear, not
    quadratic, in the number of same-name attachments.
    """
    key = name.lower()
    if key not in taken:
        taken[key] = 1
        return name
    stem, dot, ext = name.rpartition(".")
    if not dot or not stem:
        stem, dot, ext = name, "", ""
    counter = taken[key]
    while True:
        counter += 1
        candidate = f"{stem} ({counter}){dot}{ext}"
        if candidate.lower() not in taken:
            break
    taken[key] = counter
    taken[candidate.lower()] = 1
    return candidate


_DATA_IMG = re.compile(
    r"""(<img\b[^>]*?\bsrc=")data:(image/[a-z0-9.+-]+);base64,([A-Za-z0-9+/=\s]+)(")""", re.I)


def _extract_data_uris(html: str) -> tuple[str, list[Attachment]]:
    """Move ``data:image/...;base64`` sources into inline images referenced by ``cid:``."""
    images: list[Attachment] = []

    def replace(match: re.Match[str]) -> str:
        try:
            data = base64.b64decode(_WHITESPACE.sub("", match.group(3)), validate=False)
        except (binascii.Error, ValueError):
            return match.group(0)
        content_type = match.group(2).lower()
        content_id = f"data-{hashlib.sha256(data).hexdigest()[:20]}@postroom"
        images.append(Attachment(filename=f"image-{len(images) + 1}.{_extension(content_type)}",
                                 content_type=content_type, data=data, content_id=content_id,
                                 inline=True, origin="data-uri"))
        return f"{match.group(1)}cid:{content_id}{match.group(4)}"

    html = _DATA_IMG.sub(replace, html)
    return html, list(_dedupe(images))


def _dedupe(images: Iterable[Attachment]) -> Iterable[Attachment]:
    seen: set[str | None] = set()
    for image in images:
        if image.content_id not in seen:
            seen.add(image.content_id)
            yield image
