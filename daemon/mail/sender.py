"""Who sent a message, read the way a person reading the headers would.

Malformed From headers are common in real mail, and a sender of ``None`` loses the
customer: the ticket has nobody to answer. :func:`read_sender` therefore never gives up
while an address-like token exists, and says what it had to do:

1. The headers are tried in the order From → Sender → Reply-To → Return-Path (RFC 5322
   §3.6.2 makes Sender the agent acting for From; Reply-To and the envelope sender are
   the last addresses that still belong to the writer). The one used is returned as the
   *source*; a null Return-Path (``<>``) is no sender.
2. Each value is first parsed strictly (the caller's RFC 5322 address parser). Then, in
   order, the repairs, each recorded as the defect ``sender-repaired:<field>:<how>``:

   ``encoded-address``
       The address itself sits inside an RFC 2047 encoded word
       (``=?utf-8?Q?John_<john@example.com>?=``): the value is decoded, then parsed.
   ``address-token``
       No parseable mailbox, but an address-like token (``John Doe john@example.com``,
       ``"Doe, John" john@example.com``, quoted-pairs outside quotes): the first token
       is the address, the rest of the value the display name.
   ``at-word``
       ``<john at example.com>``, ``<john(at)example.com>``: the ``@`` spelled out,
       only inside angle brackets.
   ``no-domain``
       ``<MAILER-DAEMON>``: a local part alone in angle brackets (mail systems send
       this); the address is the local part.

The display name is decoded as a mail client shows it: encoded words decoded, quotes and
quoted-pairs removed, a comment's parentheses dropped, whitespace folded, and no name at
all when it only repeats the address. Every pattern is linear and reads at most
:data:`MAX_VALUE` characters.
"""

from __future__ import annotations

__all__ = ["MAX_VALUE", "SOURCES", "display_name", "read_sender"]

import re
from collections.abc import Callable, Mapping

from daemon.mail.headers import decode_encoded_words
from daemon.mail.model import Address

MAX_VALUE = 4096
SOURCES = ("from", "sender", "reply-to", "return-path")
"""The headers a sender is read from, in order."""

StrictParser = Callable[[str | None, str, list[str]], tuple[Address, ...]]

_LOCAL = r"A-Za-z0-9.!#$%&'*+/=?^_`{|}~-"
_TOKEN = re.compile(rf"(?<![{_LOCAL}])[{_LOCAL}]{{1,64}}@[A-Za-z0-9](?:[A-Za-z0-9-]{{0,62}}+"
                    r"\.?+){0,20}+")
_AT_WORD = re.compile(
    rf"<[ \t]{{0,3}}([{_LOCAL}]{{1,64}})[ \t]{{0,3}}(?:\(at\)|\[at\]|[ \t]at[ \t])"
    r"[ \t]{0,3}([A-Za-z0-9-]{1,63}(?:\.[A-Za-z0-9-]{1,63}){1,10})[ \t]{0,3}>", re.I)
_NO_DOMAIN = re.compile(r"<[ \t]{0,3}([A-Za-z0-9._%+-]{1,64})[ \t]{0,3}>")
_ENCODED = re.compile(r"=\?[^?\s]{1,75}\?[bBqQ]\?[^?\s]{0,998}\?=")
_QUOTED_PAIR = re.compile(r"\\(.)")


def read_sender(first: Mapping[str, str], strict: StrictParser, defects: list[str]
                ) -> tuple[Address | None, str | None]:
    """The sender's mailbox and the header it came from (see the module docstring).

    Args:
        first: the first raw (still encoded) value of each header, lower-case names.
        strict: the RFC 5322 parser, ``(value, field, defects) -> addresses``; it
            records ``bad-address:<field>`` itself.
        defects: receives ``sender-repaired:<field>:<how>`` and ``multiple-from``.

    Returns:
        ``(address, source)``, or ``(None, None)`` when no header holds anything
        address-like.
    """
    for field in SOURCES:
        value = first.get(field)
        if not value or not value.strip() or value.replace(" ", "") == "<>":
            continue
        found = _read(field, value[:MAX_VALUE], strict, defects)
        if found is not None:
            return found, field
    return None, None


def _read(field: str, value: str, strict: StrictParser, defects: list[str]) -> Address | None:
    found = _parsed(value, field, strict, defects)
    if found is not None and "=?" not in found.name:
        return found  # the common case: one strict parse
    if "=?" in value and "@" not in _ENCODED.sub("", value):
        decoded = decode_encoded_words(value)
        if "@" in decoded:
            repaired = _parsed(decoded, field, strict, []) or _token(decoded)
            if repaired is not None:
                defects.append(f"sender-repaired:{field}:encoded-address")
                return repaired
    if found is not None:
        return found
    for how, repair in (("address-token", _token), ("at-word", _at_word),
                        ("no-domain", _no_domain)):
        found = repair(value)
        if found is not None:
            defects.append(f"sender-repaired:{field}:{how}")
            return found
    return None


def _parsed(value: str, field: str, strict: StrictParser, defects: list[str]) -> Address | None:
    found = [a for a in strict(value, field, defects) if "=?" not in a.email]
    if len(found) > 1 and field == "from":
        defects.append("multiple-from")
    if not found:
        return None
    first = found[0]
    if not any(c in first.name for c in "\"'()\\"):
        return first  # the strict parser already decoded, unquoted and folded the name
    return Address(first.email, display_name(first.name, first.email))


def _token(value: str) -> Address | None:
    match = _TOKEN.search(value)
    if match is None:
        return None
    email = match.group(0).strip(".").lower()
    if "." not in email.partition("@")[2]:
        return None
    rest = value[:match.start()].rstrip("<[ \t") + " " + value[match.end():].lstrip(">] \t")
    return Address(email, display_name(rest, email))


def _at_word(value: str) -> Address | None:
    match = _AT_WORD.search(value)
    if match is None:
        return None
    email = f"{match.group(1)}@{match.group(2)}".lower()
    return Address(email, display_name(value[:match.start()] + value[match.end():], email))


def _no_domain(value: str) -> Address | None:
    match = _NO_DOMAIN.search(value)
    if match is None:
        return None
    local = match.group(1).strip(".").lower()
    if not local:
        return None
    return Address(local, display_name(value[:match.start()] + value[match.end():], local))


def display_name(name: str, email: str = "") -> str:
    """A display name as a mail client shows it (see the module docstring)."""
    name = name[:MAX_VALUE]
    if "=?" in name:
        name = decode_encoded_words(name)
    name = " ".join(name.split()).strip(" ,;:")
    for _ in range(3):  # "'John'", ("John"), "\"John\"" - a few layers at most
        if len(name) >= 2 and (name[0], name[-1]) in (('"', '"'), ("'", "'"), ("(", ")")):
            name = name[1:-1].strip()
    if "\\" in name:
        name = _QUOTED_PAIR.sub(r"\1", name)
    name = name.replace('"', "") if name.count('"') == 1 else name
    return "" if name.lower() == email.lower() else name
