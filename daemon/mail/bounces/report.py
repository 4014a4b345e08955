"""The values a bounce recogniser produces: a report, and the shape of a text format.

:class:`BounceReport` is what :func:`daemon.mail.bounces.detect_bounce` returns for any
delivery-report-like message; :class:`TextFormat` describes one MTA's or provider's
plain-text layout as data, so that a family module (``unix.py``, ``microsoft.py``...) is a
table, not code, and the one engine in :mod:`daemon.mail.bounces.text` reads them all.
"""

from __future__ import annotations

__all__ = ["BounceReport", "ReportKind", "TextFormat", "pattern"]

import enum
import re
from dataclasses import dataclass

from daemon.mail.model import BounceInfo


class ReportKind(enum.Enum):
    """What a report-like message turned out to be."""

    FAILURE = "failure"      # at least one recipient failed: a bounce
    DELAY = "delay"          # a warning: delivery is still being retried
    SUCCESS = "success"      # delivered / relayed / expanded notices
    COMPLAINT = "complaint"  # an ARF feedback report (RFC 5965): a complaint, not a bounce
    CHALLENGE = "challenge"  # challenge-response / whitelist verification: not a bounce


@dataclass(frozen=True, slots=True)
class BounceReport:
    """Everything a bounce-like message says.

    Attributes:
        recipients: one :class:`BounceInfo` per recipient, in report order (may be empty
            when only a subject or header says "bounce", and is empty for complaints and
            challenges).
        rules: the evidence that fired, e.g. ``("bounce.dsn", "bounce.subject")``.
        format: the recognised format (``rfc3464``, ``qmail``, ``domino``...), or None.
        complaint: an ARF feedback report.
        challenge: a challenge-response or sender-verification request.
    """

    recipients: tuple[BounceInfo, ...]
    rules: tuple[str, ...]
    format: str | None = None
    complaint: bool = False
    challenge: bool = False

    @property
    def failed(self) -> tuple[BounceInfo, ...]:
        """Recipients that failed (action ``failed`` or a 5.x.x status)."""
        if self.complaint or self.challenge:
            return ()
        return tuple(r for r in self.recipients if _is_failure(r))

    @property
    def delayed(self) -> bool:
        """True when the report only says delivery is delayed (action delayed or 4.x.x)."""
        return bool(self.recipients) and not self.failed and all(
            (r.action or "").lower() == "delayed" or (r.status or "").startswith("4")
            for r in self.recipients)

    @property
    def kind(self) -> ReportKind:
        """The verdict: complaint and challenge first, then failure, delay, success."""
        if self.complaint:
            return ReportKind.COMPLAINT
        if self.challenge:
            return ReportKind.CHALLENGE
        if self.failed:
            return ReportKind.FAILURE
        return ReportKind.DELAY if self.delayed else ReportKind.SUCCESS

    @property
    def primary(self) -> BounceInfo | None:
        """The first failed recipient, else the first recipient, else None."""
        failed = self.failed
        if failed:
            return failed[0]
        return self.recipients[0] if self.recipients else None


def _is_failure(info: BounceInfo) -> bool:
    action = (info.action or "").lower()
    if action in ("delayed", "delivered", "relayed", "expanded"):
        return False
    return action == "failed" or (info.status or "").startswith("5") or (
        not action and not info.status)


@dataclass(frozen=True, slots=True)
class TextFormat:
    """One plain-text report layout, as its MTA or provider writes it.

    Attributes:
        name: the format name, recorded as rule ``bounce.format.<name>``.
        signature: words that identify the format, searched in the first 8 KB of the
            text and in the subject.
        start: where the list of failed recipients begins (searched after the
            signature); None means right after the signature.
        end: where that list stops; None means the common "copy of the message"
            markers.
        inline: phrases followed, within 200 characters, by a recipient inside a
            sentence ("Your message to ann@x couldn't be delivered").
        senders: lower-case marks of a From that identifies the system even when the
            usual mail-system signs (null Return-Path, MAILER-DAEMON) are missing: a
            domain suffix (``sendgrid.net``), a local-part suffix (``-owner@``) or a
            word anywhere in the address or name (``mailman``). Plain strings, not
            patterns: every message is checked against them. Only for senders that are
            never a person (a sending service's bounce domain, a list's ``-owner``
            address): a provider's domain (gmail.com, docomo.ne.jp) is where customers
            write from.
        in_subject: the signature also counts when found in the subject.
    """

    name: str
    signature: re.Pattern[str]
    start: re.Pattern[str] | None = None
    end: re.Pattern[str] | None = None
    inline: re.Pattern[str] | None = None
    senders: tuple[str, ...] = ()
    in_subject: bool = True


def pattern(*phrases: str) -> re.Pattern[str]:
    """A case-insensitive alternation of regex phrases (a helper for the format tables)."""
    return re.compile("|".join(f"(?:{p})" for p in phrases), re.I | re.M)
