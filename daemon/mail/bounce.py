"""Reading delivery status notifications: standard (RFC 3464) and the shapes MTAs really send.

Input is a :class:`~daemon.mail.model.ParsedMessage`: the parser keeps the DSN parts as
attachments (``message/delivery-status``, ``text/rfc822-headers``, the returned
``message/rfc822``), so no second pass over the raw bytes is needed.

Evidence, each recorded as a rule name in :attr:`BounceReport.rules`:

``bounce.dsn``
    A ``message/delivery-status`` (or ``message/global-delivery-status``, RFC 6533) part.
    Postfix, Exim 4.9x, Gmail, Exchange and most modern MTAs send one. Its per-recipient
    fields (Final-Recipient, Original-Recipient, Action, Status, Diagnostic-Code) and
    Reporting-MTA fill one :class:`BounceInfo` per recipient.
``bounce.x-failed-recipients``
    Exim's and Gmail's ``X-Failed-Recipients`` header; the addresses are the recipients.
``bounce.exchange-ndr``
    Exchange's ``X-MS-Exchange-Message-Is-Ndr`` header.
``bounce.text``
    A non-standard text bounce (qmail, old Exim, Sendmail, Exchange, Gmail wording), read
    only when the message also comes from a mail system (see :func:`from_mail_system`):
    a customer forwarding a bounce to support is a person, not a bounce.
``bounce.subject``
    An NDR subject ("Undelivered Mail Returned to Sender", "Undeliverable:", "Delivery
    Status Notification (Failure)", "Mail delivery failed", "DELIVERY FAILURE", and local
    variants), likewise only from a mail system.

The original Message-ID comes from the returned message or headers part, then from the
DSN's ``Original-Message-ID``/``X-Original-Message-ID`` fields, then from a
``Message-ID:`` line quoted in the text (qmail and old Exim append the original there).

A report whose recipients are all ``delayed`` (or 4.x.x) is not a failure: see
:attr:`BounceReport.delayed`. The classifier turns that into an automatic message.
"""

from __future__ import annotations

__all__ = ["BounceReport", "detect_bounce", "from_mail_system", "parse_bounce",
           "parse_delivery_status"]

import re
from dataclasses import dataclass

from daemon.mail.charset import decode_text
from daemon.mail.mime import split_headers
from daemon.mail.model import BounceInfo, ParsedMessage

_DSN_TYPES = frozenset({"message/delivery-status", "message/global-delivery-status"})
_HEADER_TYPES = frozenset({"text/rfc822-headers", "message/global-headers",
                           "message/rfc822", "message/global"})


@dataclass(frozen=True, slots=True)
class BounceReport:
    """Everything a bounce-like message says.

    Attributes:
        recipients: one :class:`BounceInfo` per recipient, in report order (may be empty
            when only a subject or header says "bounce").
        rules: the evidence that fired, e.g. ``("bounce.dsn", "bounce.subject")``.
    """

    recipients: tuple[BounceInfo, ...]
    rules: tuple[str, ...]

    @property
    def failed(self) -> tuple[BounceInfo, ...]:
        """Recipients that failed (action ``failed`` or a 5.x.x status)."""
        return tuple(r for r in self.recipients if _is_failure(r))

    @property
    def delayed(self) -> bool:
        """True when the report only says delivery is delayed (action delayed or 4.x.x)."""
        return bool(self.recipients) and not self.failed and all(
            (r.action or "").lower() == "delayed" or (r.status or "").startswith("4")
            for r in self.recipients)

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


def parse_bounce(msg: ParsedMessage) -> BounceInfo | None:
    """The failed recipient a bounce is about, or None if ``msg`` is no failure report.

    A convenience over :func:`detect_bounce`: delayed or success reports give None.
    """
    report = detect_bounce(msg)
    if report is None or report.delayed or not report.failed:
        return None
    return report.primary


def detect_bounce(msg: ParsedMessage) -> BounceReport | None:
    """Collect bounce evidence and recipients from a parsed message.

    Args:
        msg: the parsed message.

    Returns:
        A report, or None when nothing suggests a delivery report. Recipients without a
        DSN get ``action="failed"`` and the status found in the text (if any).
    """
    rules: list[str] = []
    reports = [part for part in msg.attachments if part.content_type in _DSN_TYPES]
    if reports:
        rules.append("bounce.dsn")
    failed_header = msg.header("x-failed-recipients")
    if failed_header:
        rules.append("bounce.x-failed-recipients")
    if msg.header("x-ms-exchange-message-is-ndr") is not None:
        rules.append("bounce.exchange-ndr")
    system = from_mail_system(msg)
    if system and _search_in_slices(_TEXT_BOUNCE, msg.text[:MAX_BOUNCE_TEXT]):
        rules.append("bounce.text")
    if system and _SUBJECT_BOUNCE.search(msg.subject[:1000]):
        rules.append("bounce.subject")
    if not rules:
        return None
    original = _original_message_id(msg)
    recipients: list[BounceInfo] = []
    for part in reports:
        recipients += parse_delivery_status(part.data[:4 * MAX_BOUNCE_TEXT],
                                            original_message_id=original)
    if not recipients:
        recipients = _text_recipients(msg, failed_header, original)
    return BounceReport(tuple(recipients), tuple(rules))


#: Characters one search of a slow pattern covers; slices overlap by :data:`_OVERLAP`.
_SLICE = 16 * 1024
_OVERLAP = 1024


def _search_in_slices(pattern: re.Pattern[str], text: str) -> bool:
    """``pattern.search(text)`` in overlapping slices, for a slow alternation.

    One C-level regex call holds the GIL throughout: the bounce wording alternation
    costs ~1 us a character, so 256 KB in one call would stall the event loop for a
    quarter of a second even from a worker thread. Matches up to :data:`_OVERLAP`
    characters long are found across slice edges.
    """
    for start in range(0, max(len(text), 1), _SLICE):
        if pattern.search(text, start, start + _SLICE + _OVERLAP):
            return True
    return False


# -- RFC 3464 ------------------------------------------------------------------------------

_STATUS = re.compile(r"\b([245]\.\d{1,3}\.\d{1,3})\b")
_BLOCKS = re.compile(r"\n[ \t]*\n")


def parse_delivery_status(data: bytes, *, original_message_id: str | None = None
                          ) -> list[BounceInfo]:
    """Parse the body of a ``message/delivery-status`` part (RFC 3464 §2).

    Args:
        data: the part body (transfer-decoded).
        original_message_id: filled into every result (the DSN itself does not carry it
            unless an ``Original-Message-ID`` field is present, which then wins).

    Returns:
        One :class:`BounceInfo` per per-recipient block; recipients lower-cased without
        the ``rfc822;`` type, ``Reporting-MTA`` without ``dns;``.
    """
    text = decode_text(data, "utf-8")[0].replace("\r\n", "\n").replace("\r", "\n")
    per_message: dict[str, str] = {}
    found: list[BounceInfo] = []
    for block in _BLOCKS.split(text.strip("\n")):
        fields = _fields(block)
        if "final-recipient" not in fields and "original-recipient" not in fields:
            per_message.update({k: v for k, v in fields.items() if k not in per_message})
            continue
        found.append(_recipient_info(fields, per_message, original_message_id))
    return found


def _fields(block: str) -> dict[str, str]:
    headers, _, _ = split_headers(block.encode("utf-8", "replace") + b"\n\n")
    fields: dict[str, str] = {}
    for name, value in headers:
        fields.setdefault(name, value)
    return fields


def _recipient_info(fields: dict[str, str], per_message: dict[str, str],
                    original: str | None) -> BounceInfo:
    recipient = _typed_value(fields.get("final-recipient") or fields.get("original-recipient"))
    status = _STATUS.search(fields.get("status", ""))
    own_id = (fields.get("original-message-id") or fields.get("x-original-message-id")
              or per_message.get("original-message-id")
              or per_message.get("x-original-message-id"))
    return BounceInfo(
        recipient=recipient.strip("<>").lower() or None if recipient else None,
        action=(fields.get("action") or "").strip().lower() or None,
        status=status.group(1) if status else None,
        diagnostic=_typed_value(fields.get("diagnostic-code")) or None,
        original_message_id=_strip_id(own_id) or original,
        reporting_mta=_typed_value(per_message.get("reporting-mta")) or None,
    )


def _typed_value(value: str | None) -> str:
    """``rfc822; a@b`` -> ``a@b``; ``smtp; 550 ...`` -> ``550 ...``."""
    if not value:
        return ""
    kind, sep, rest = value.partition(";")
    return " ".join((rest if sep and " " not in kind.strip() else value).split())


def _strip_id(value: str | None) -> str | None:
    if not value:
        return None
    match = re.search(r"<([^<>]+)>", value)
    cleaned = re.sub(r"\s+", "", match.group(1) if match else value).strip("<>")
    return cleaned or None


# -- original message ----------------------------------------------------------------------

_QUOTED_MESSAGE_ID = re.compile(r"^[ \t>]*Message-ID:[ \t]*(<[^<>\s]+>)", re.I | re.M)


def _original_message_id(msg: ParsedMessage) -> str | None:
    for part in msg.attachments:
        if part.content_type in _HEADER_TYPES:
            headers, _, _ = split_headers(part.data[:65536])
            for name, value in headers:
                if name == "message-id":
                    found = _strip_id(value)
                    if found:
                        return found
    quoted = _QUOTED_MESSAGE_ID.search(msg.text[:MAX_BOUNCE_TEXT])
    if quoted and msg.message_id != quoted.group(1).strip("<>"):
        return quoted.group(1).strip("<>")
    return None


# -- non-standard bounces ------------------------------------------------------------------

_SYSTEM_LOCAL = re.compile(r"^(?:mailer-daemon|postmaster|mail-daemon|maildaemon|"
                           r"mdaemon|bounces?|nobody)(?:[+=-].*)?$", re.I)
_SYSTEM_NAME = re.compile(r"mail delivery (?:system|subsystem)|mailer-daemon|postmaster|"
                          r"microsoft outlook|mail administrator", re.I)
_TEXT_BOUNCE = re.compile(
    r"This is the qmail-send program"
    r"|I'm afraid I wasn't able to deliver your message"
    r"|could not be delivered to one or more of its\s+recipients"
    r"|following address(?:\(es\)|es)? failed"
    r"|your message could not\s+be delivered"
    r"|Delivery has failed to these recipients or groups"
    r"|Your message (?:to .{1,200}? )?couldn't be delivered"
    r"|did not reach some or all of the intended recipients"
    r"|Delivery to the following recipients? failed permanently"
    r"|The following addresses had permanent fatal errors"
    r"|permanent error\. The following address"
    r"|Message not delivered"
    r"|Delivery to the following recipient has been delayed"
    r"|Unzustellbar|Die Nachricht konnte nicht zugestellt werden"
    r"|La remise a échoué|Non remis"
    r"|No se pudo entregar|Leverans misslyckades",
    re.I)
_SUBJECT_BOUNCE = re.compile(
    r"^\W*(?:Undelivered Mail Returned to Sender|Undeliver(?:able|ed)\b|"
    r"Delivery Status Notification|Mail delivery failed|DELIVERY FAILURE|"
    r"Delivery Failure|Returned mail|failure notice|Mail System Error|"
    r"Non[- ]?deliver(?:y|able)|Unzustellbar|Non remis|Onbestelbaar|"
    r"No se puede entregar|Non recapitabile|Olevererbart|Kan ikke leveres|"
    r"Warning: could not send message|Delayed Mail|Delivery delayed)",
    re.I)


def from_mail_system(msg: ParsedMessage) -> bool:
    """True when the message comes from a mail system rather than a person.

    That is: a null Return-Path (RFC 5321 §4.5.5 requires one on notifications), a
    MAILER-DAEMON/postmaster-like sender, a "Mail Delivery System" display name, or an
    Auto-Submitted header other than ``no``.
    """
    return_path = msg.header("return-path")
    if return_path is not None and return_path.replace(" ", "") in ("<>", ""):
        return True
    auto = (msg.header("auto-submitted") or "").strip().lower()
    if auto and not auto.startswith("no"):
        return True
    sender = msg.from_
    if sender is None:
        return False
    return bool(_SYSTEM_LOCAL.match(sender.email.split("@", 1)[0])
                or _SYSTEM_NAME.search(sender.name))


_BRACKET_RECIPIENT = re.compile(r"^[ \t]*<([^<>\s@]+@[^<>\s]+)>:", re.M)
_AFTER_FAILURE = re.compile(
    r"(?:following address(?:\(es\)|es)? failed|failed permanently|permanent fatal errors"
    r"|failed to these recipients or groups|couldn't be delivered to|"
    r"wasn't able to deliver your message to the following)[^\n]*\n((?:[^\n]*\n?){1,8})",
    re.I)
# An address starts only where a run of address characters starts (the lookbehind), and
# its parts are bounded (RFC 5321 §4.5.3.1: local part 64, domain 255): a megabyte of
# address characters without an ``@`` is one failed attempt, not one per position.
_LOCAL_CHARS = r"A-Za-z0-9.!#$%&'*+/=?^_`{|}~-"
_ADDRESS = re.compile(rf"(?<![{_LOCAL_CHARS}])[{_LOCAL_CHARS}]{{1,64}}+@"
                      r"[A-Za-z0-9](?:[A-Za-z0-9.-]{0,253}(?<=[A-Za-z0-9]))?")
#: Characters of X-Failed-Recipients and of the bounce text searched for recipients.
MAX_RECIPIENT_TEXT = 64 * 1024
#: Characters of the body text any bounce rule reads (bounce wording is at the top).
MAX_BOUNCE_TEXT = 256 * 1024
#: Recipients read from a text bounce at most.
MAX_TEXT_RECIPIENTS = 100
_SMTP_LINE = re.compile(r"\b([45]\d\d)[ -](?:([245]\.\d{1,3}\.\d{1,3})\b)?[^\n]*", re.M)


def _text_recipients(msg: ParsedMessage, failed_header: str | None,
                     original: str | None) -> list[BounceInfo]:
    """Recipients of a non-DSN bounce, from X-Failed-Recipients or the text."""
    exclude = {a.email for a in (*msg.to, *msg.cc)}
    if msg.from_:
        exclude.add(msg.from_.email)
    candidates: list[str] = []
    text = msg.text[:MAX_RECIPIENT_TEXT]
    if failed_header:
        candidates = _ADDRESS.findall(failed_header[:MAX_RECIPIENT_TEXT])
    if not candidates:
        candidates = _BRACKET_RECIPIENT.findall(text)
    if not candidates:
        for block in _AFTER_FAILURE.findall(text):
            candidates += _ADDRESS.findall(block)
    emails = [c.lower().rstrip(".") for c in candidates]
    emails = [e for e in dict.fromkeys(emails) if e not in exclude][:MAX_TEXT_RECIPIENTS]
    status, diagnostic = _text_status(msg)
    action = "delayed" if (status or "").startswith("4") else "failed"
    return [BounceInfo(recipient=email, action=action, status=status, diagnostic=diagnostic,
                       original_message_id=original) for email in emails] or [
        BounceInfo(recipient=None, action=action, status=status, diagnostic=diagnostic,
                   original_message_id=original)]


_DELAY = re.compile(r"delayed|still being retried|could not send message for past|"
                    r"will (?:continue|keep) trying|Delivery Status Notification \(Delay\)",
                    re.I)


def _text_status(msg: ParsedMessage) -> tuple[str | None, str | None]:
    """The enhanced status code and the SMTP reply line quoted in a text bounce."""
    text = msg.text[:MAX_BOUNCE_TEXT]
    smtp = _SMTP_LINE.search(text)
    status = smtp.group(2) if smtp and smtp.group(2) else None
    if status is None:
        enhanced = _STATUS.search(text)
        status = enhanced.group(1) if enhanced else None
    if status is None and smtp is not None:
        status = f"{smtp.group(1)[0]}.0.0"
    if status is None and (_DELAY.search(msg.subject[:2000]) or _DELAY.search(text[:2000])):
        status = "4.0.0"
    diagnostic = " ".join(smtp.group(0).split())[:500] if smtp else None
    return status, diagnostic
