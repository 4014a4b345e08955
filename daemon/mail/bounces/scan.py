"""Bounded, linear-time scans over untrusted report text: addresses, hosts, recipient blocks.

A bounce is hostile input like any other mail: a 300 KB ``X-Failed-Recipients`` header
once froze the event loop for 46 s in a regex that retried its local-part run from every
position. The rules here keep every scan linear and bounded:

* An address match may only *start* where a run of local-part characters starts (a
  lookbehind refuses every position inside a run in O(1)), and the local part is at most
  64 characters (RFC 5321 §4.5.3.1.1); so each position of the input is tried once.
* Inputs are cut before scanning: :data:`MAX_SCAN` characters of text, :data:`MAX_LINE`
  per line, :data:`MAX_RECIPIENTS` recipients per report.
* No pattern nests a repetition inside another one, except the domain part of an
  address, whose repetitions are possessive (no backtracking into them).

The line engine (:func:`recipient_blocks`) is what most text formats share: inside the
part of a report that lists the failures, a line that *begins* with an address starts a
recipient, and the lines after it (up to the next such line) are its diagnostic. That one
rule reads qmail, Exim, Postfix, Sendmail, Courier, Exchange 2003-2010, Domino, Yahoo
and the Japanese carriers' layouts.
"""

from __future__ import annotations

__all__ = [
    "MAX_LINE",
    "MAX_RECIPIENTS",
    "MAX_SCAN",
    "Block",
    "addresses",
    "first_address",
    "recipient_blocks",
    "remote_host",
]

import re
from dataclasses import dataclass

MAX_SCAN = 64 * 1024
MAX_LINE = 1000
MAX_RECIPIENTS = 200

_LOCAL = r"A-Za-z0-9.!#$%&'*+/=?^_`{|}~-"
_ADDRESS = re.compile(
    rf"(?<![{_LOCAL}])[{_LOCAL}]{{1,64}}@(?:\[[0-9A-Fa-f:.]{{1,45}}\]"
    r"|[A-Za-z0-9](?:[A-Za-z0-9-]{0,62}+\.?+){0,20}+)")
_LEADING = re.compile(r"[ \t]{0,40}(?:[-*•][ \t]{1,4})?[<\"'(]?")
_SKIP_LINE = re.compile(r"[ \t]*(?:>>>|RCPT TO|MAIL FROM)", re.I)
_LABEL_ONLY = re.compile(r"[ \t]*[A-Za-z][A-Za-z ()'-]{0,40}:[ \t]*\Z")
_HOST = re.compile(
    r"(?:\bhost|talking to|\bserver|\bMX|Generating server:|Remote[- ]MTA:?|mail exchanger|"
    r"Remote Server at|\bby)[ \t]{1,5}(?:dns;[ \t]?)?\[?([A-Za-z0-9-]{1,63}(?:\.[A-Za-z0-9-]"
    r"{1,63}){1,10})\.?\]?|<([A-Za-z0-9-]{1,63}(?:\.[A-Za-z0-9-]{1,63}){1,10}) #[245]\."
    r"|([A-Za-z0-9-]{1,63}(?:\.[A-Za-z0-9-]{1,63}){1,10})\.? ?\[\d{1,3}(?:\.\d{1,3}){3}\]",
    re.I)


def _clean(address: str) -> str:
    return address.rstrip(".-").lower()


def addresses(text: str, *, limit: int = MAX_RECIPIENTS) -> list[str]:
    """Distinct addresses in ``text`` (lower-case, trailing dots dropped), in order.

    Only the first :data:`MAX_SCAN` characters are read and at most ``limit`` addresses
    returned, so a megabyte of address characters costs milliseconds.
    """
    found: dict[str, None] = {}
    for match in _ADDRESS.finditer(text, 0, MAX_SCAN):
        email = _clean(match.group(0))
        if "." in email.partition("@")[2] or "[" in email:
            found.setdefault(email)
            if len(found) >= limit:
                break
    return list(found)


def first_address(text: str, start: int = 0, window: int = 200) -> str | None:
    """The first address within ``window`` characters after ``start``, or None."""
    found = addresses(text[start:start + window], limit=1)
    return found[0] if found else None


def remote_host(text: str) -> str | None:
    """The host a diagnostic names as the refusing server (``host mx.example.net[..]``)."""
    match = _HOST.search(text[:MAX_SCAN])
    if match is None:
        return None
    host = (match.group(1) or match.group(2) or match.group(3)).lower()
    return host if "." in host and not host.replace(".", "").isdigit() else None


@dataclass(frozen=True, slots=True)
class Block:
    """One recipient in a text report and the lines that explain it."""

    recipient: str
    diagnostic: str


def recipient_blocks(section: str, *, exclude: frozenset[str] = frozenset()) -> list[Block]:
    """Recipients of a report section by the leading-address rule (see the module docstring).

    Args:
        section: the part of the report that lists failures (cut to :data:`MAX_SCAN`).
        exclude: addresses never taken as recipients (the report's own To and From).

    Returns:
        One block per distinct recipient, in order; a recipient listed twice (Exchange
        repeats them under "Diagnostic information") gets both diagnostics. A recipient
        whose block has no words inherits the next block's (Domino lists all recipients,
        then one "because:").
    """
    order: list[str] = []
    lines_of: dict[str, list[str]] = {}
    current: str | None = None
    for line in section[:MAX_SCAN].split("\n"):
        line = line[:MAX_LINE].rstrip()
        lead = _LEADING.match(line)
        start = lead.end() if lead else 0
        match = _ADDRESS.match(line, start)
        email = _clean(match.group(0)) if match else None
        if email is not None and "." in email.partition("@")[2] and email not in exclude:
            current = email
            if email not in lines_of:
                if len(order) >= MAX_RECIPIENTS:
                    break
                order.append(email)
                lines_of[email] = []
            rest = line[match.end():].lstrip(">\"') \t").lstrip(":.").strip() if match else ""
            if rest and not _is_date(rest):
                lines_of[email].append(rest)
            continue
        if current is None or not line.strip() or _SKIP_LINE.match(line):
            continue
        if _LABEL_ONLY.match(line):
            continue
        lines_of[current].append(line.strip())
    texts = [" ".join(" ".join(lines_of[e]).split())[:1000] for e in order]
    for i in range(len(texts) - 2, -1, -1):
        if not texts[i]:
            texts[i] = texts[i + 1]
    return [Block(e, t) for e, t in zip(order, texts, strict=True)]


_DATE_ONLY = re.compile(r"on \d{1,4}[/.-]\d{1,2}[/.-]\d{1,4}[ \t0-9:APMapm]{0,20}\Z")


def _is_date(rest: str) -> bool:
    """Exchange 2003's ``ann@x on 3/4/2025 10:01 AM`` is a timestamp, not a diagnostic."""
    return bool(_DATE_ONLY.match(rest))
