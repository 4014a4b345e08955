"""Signed Message-IDs: threading and loop detection that cannot be forged or confused.

Every message we send carries a Message-ID like ``pr.<payload>.<mac>@<domain>``:

* ``payload`` is lower-case base32 (RFC 4648, no padding) of a compact binary record:
  version, kind, installation id, conversation id, message-follower id and a 6-byte random
  nonce (so two messages to the same follower still get different ids);
* ``mac`` is HMAC-SHA-256 over a domain-separation label and the payload, truncated to
  80 bits (16 base32 characters) - comfortably above the 64-bit floor, short enough that
  the id stays under 100 characters.

A reply's In-Reply-To / References then tell us the conversation *and* the exact message
follower, and a forged or damaged id fails :func:`parse_message_id` instead of threading
into someone else's conversation. Compared with how other helpdesks thread replies and
prevent loops:

* FreeScout's ``notify-<thread>-<user>`` ids are unsigned, so two installations misroute
  each other's mail (freescout#4557); ours carry the installation and a MAC per secret.
* osTicket signs with a 5-character HMAC-SHA1 suffix; ours keeps 80 bits.
* The domain is not covered by the MAC: relays that rewrite the right-hand side (or the
  whole id, as Exchange Online sometimes does) are why the same token also travels as a
  body marker (:func:`body_marker`, :func:`text_marker`), found again by
  :func:`find_body_markers` in quoted, re-wrapped or HTML-escaped replies.

Base32 is case-insensitive, so ids survive systems that lower- or upper-case them.
"""

from __future__ import annotations

__all__ = [
    "MessageToken",
    "body_marker",
    "find_body_markers",
    "make_message_id",
    "parse_message_id",
    "text_marker",
]

import base64
import hashlib
import hmac
import html as _html
import re
import secrets
from dataclasses import dataclass

_PREFIX = "pr"
_VERSION = 1
_MAC_BYTES = 10
_NONCE_BYTES = 6
_LABEL = b"postroom/message-id/v1\x00"
_KIND = re.compile(r"[a-z0-9]{1,8}")
_INSTALLATION = re.compile(r"[A-Za-z0-9._-]{1,64}")


@dataclass(frozen=True, slots=True)
class MessageToken:
    """What a verified Message-ID says.

    Attributes:
        conversation_id: the conversation the message belongs to.
        message_follower_id: the follower it was sent to, or None (e.g. a notification
            not tied to one follower).
        installation: the installation id that signed it.
        kind: ``r`` for a reply, or another short kind (``a`` auto-reply, ``n`` notice).
    """

    conversation_id: int
    message_follower_id: int | None
    installation: str
    kind: str


def make_message_id(secret: bytes, *, conversation_id: int, message_follower_id: int | None,
                    installation: str, domain: str, kind: str = "r") -> str:
    """Build a signed Message-ID (without angle brackets).

    Args:
        secret: the installation's signing key (at least 16 bytes).
        conversation_id: a non-negative conversation id.
        message_follower_id: a non-negative message follower id, or None.
        installation: this installation's id (1-64 of ``A-Za-z0-9._-``).
        domain: the right-hand side, usually the account's mail domain.
        kind: 1-8 lower-case letters or digits.

    Returns:
        ``pr.<payload>.<mac>@<domain>``.

    Raises:
        ValueError: an argument is out of range (the message names which one).
    """
    _check_arguments(secret, conversation_id, message_follower_id, installation, domain, kind)
    payload = b"".join((
        bytes([_VERSION, len(kind)]), kind.encode("ascii"),
        bytes([len(installation)]), installation.encode("ascii"),
        _varint(conversation_id),
        _varint(0 if message_follower_id is None else message_follower_id + 1),
        secrets.token_bytes(_NONCE_BYTES),
    ))
    return f"{_PREFIX}.{_b32(payload)}.{_b32(_mac(secret, payload))}@{domain}"


def _check_arguments(secret: bytes, conversation_id: int, follower: int | None,
                     installation: str, domain: str, kind: str) -> None:
    if len(secret) < 16:
        raise ValueError("secret: at least 16 bytes are required")
    if conversation_id < 0:
        raise ValueError("conversation_id: must be non-negative")
    if follower is not None and follower < 0:
        raise ValueError("message_follower_id: must be non-negative or None")
    if not _INSTALLATION.fullmatch(installation):
        raise ValueError("installation: 1-64 characters of A-Z a-z 0-9 . _ -")
    if not _KIND.fullmatch(kind):
        raise ValueError("kind: 1-8 lower-case letters or digits")
    if not domain or re.search(r"[\s<>@]", domain):
        raise ValueError("domain: must be a non-empty domain without spaces, <, > or @")


def parse_message_id(secret: bytes, message_id: str, *,
                     installation: str | None = None) -> MessageToken | None:
    """Verify and decode a Message-ID made by :func:`make_message_id`.

    Args:
        secret: the signing key.
        message_id: with or without ``<>`` and surrounding whitespace; the domain part is
            optional (body markers carry only the local part).
        installation: when given, a token signed for another installation is rejected
            even if the secret matches.

    Returns:
        The token, or None for anything that is not a valid id signed with ``secret``.
        Never raises.
    """
    try:
        local = message_id.strip().strip("<>").strip().rsplit("@", 1)[0]
        prefix, payload_text, mac_text = local.split(".")
        if prefix.lower() != _PREFIX:
            return None
        payload, mac = _unb32(payload_text), _unb32(mac_text)
        if len(mac) != _MAC_BYTES or not hmac.compare_digest(mac, _mac(secret, payload)):
            return None
        token = _decode_payload(payload)
    except (ValueError, IndexError, AttributeError, TypeError):
        return None
    if token is None or (installation is not None and token.installation != installation):
        return None
    return token


def _decode_payload(payload: bytes) -> MessageToken | None:
    if payload[0] != _VERSION:
        return None
    pos = 1
    kind = payload[pos + 1:pos + 1 + payload[pos]].decode("ascii")
    pos += 1 + payload[pos]
    installation = payload[pos + 1:pos + 1 + payload[pos]].decode("ascii")
    pos += 1 + payload[pos]
    conversation_id, pos = _read_varint(payload, pos)
    follower, pos = _read_varint(payload, pos)
    if len(payload) - pos != _NONCE_BYTES:
        return None
    return MessageToken(conversation_id, follower - 1 if follower else None, installation, kind)


def _mac(secret: bytes, payload: bytes) -> bytes:
    return hmac.new(secret, _LABEL + payload, hashlib.sha256).digest()[:_MAC_BYTES]


def _b32(data: bytes) -> str:
    return base64.b32encode(data).decode("ascii").rstrip("=").lower()


def _unb32(text: str) -> bytes:
    """Decode unpadded base32, accepting only the canonical spelling.

    The last character of a string whose bit length is not a multiple of 5 carries unused
    bits; without the round-trip check, changing only those would decode to the same bytes
    and a tampered id would still verify.
    """
    if not text or not re.fullmatch(r"[A-Za-z2-7]+", text):
        raise ValueError("not base32")
    data = base64.b32decode(text.upper() + "=" * (-len(text) % 8))
    if _b32(data) != text.lower():
        raise ValueError("not canonical base32")
    return data


def _varint(value: int) -> bytes:
    out = bytearray()
    while True:
        byte, value = value & 0x7F, value >> 7
        out.append(byte | (0x80 if value else 0))
        if not value:
            return bytes(out)


def _read_varint(data: bytes, pos: int) -> tuple[int, int]:
    value = shift = 0
    while True:
        byte = data[pos]
        pos += 1
        value |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return value, pos
        shift += 7
        if shift > 63:
            raise ValueError("varint too long")


# -- body markers ---------------------------------------------------------------------------


def text_marker(message_id: str) -> str:
    """The marker for the plain-text part's signature line: ``[ref:pr.<payload>.<mac>]``.

    Only the local part is used: it is what the MAC covers, and without an ``@`` mail
    clients do not turn it into a mailto link.
    """
    return f"[ref:{message_id.strip().strip('<>').rsplit('@', 1)[0]}]"


def body_marker(message_id: str) -> str:
    """An HTML snippet carrying :func:`text_marker`, invisible to readers.

    A ``display:none`` span survives most clients' quoting (an HTML comment does not:
    Outlook and Gmail drop comments when replying); ``mso-hide:all`` hides it in Outlook,
    zero size and colour cover clients that ignore ``display``.
    """
    return ('<span class="postroom-ref" style="display:none;font-size:0;line-height:0;'
            'max-height:0;overflow:hidden;opacity:0;color:transparent;mso-hide:all">'
            f"{_html.escape(text_marker(message_id))}</span>")


_MARKER = re.compile(r"\[\s*ref\s*:([^\[\]]{10,400}?)\]", re.I)
_TAGS = re.compile(r"<[^<>]*>")
# Every character reference that html.unescape turns into "[" (a superset: &#910 too).
_BRACKET_REFERENCE = re.compile(r"&(?:#0*91|#[xX]0*5[bB]|lsqb|lbrack)")
# Inside a marker, quoting and re-wrapping can only have added line breaks, quote
# prefixes ("> ", "| ") and spaces; an encoded reply may have added soft-break "=".
_NOISE = re.compile(r"(?:=?\r?\n[ \t>|]*)|[ \t]")
_TOKEN = re.compile(r"pr\.[a-z2-7]{8,}\.[a-z2-7]{16}", re.I)


def find_body_markers(text_or_html: str) -> list[str]:
    """Find our markers in a body, however it was quoted, re-wrapped or HTML-escaped.

    Args:
        text_or_html: a plain-text or HTML body.

    Returns:
        The ``pr.<payload>.<mac>`` tokens found, in order, without duplicates. Each can
        be passed to :func:`parse_message_id` (which verifies it); nothing is verified
        here.
    """
    if "[" not in text_or_html and _BRACKET_REFERENCE.search(text_or_html) is None:
        return []  # no view can hold "[ref:" (the HTML view gets "[" only from these)
    if "ref" not in text_or_html.lower():
        return []
    views = [text_or_html]
    if "<" in text_or_html or "&" in text_or_html:
        views.append(_html.unescape(_TAGS.sub("", text_or_html)))
    found: list[str] = []
    for view in views:
        for match in _MARKER.finditer(view):
            token = _NOISE.sub("", match.group(1))
            if _TOKEN.fullmatch(token):
                found.append(token.lower())
    return list(dict.fromkeys(found))
