"""From a parsed message to a :class:`~daemon.mail.bounces.report.BounceReport`.

Order of the checks, each recorded as a rule name in :attr:`BounceReport.rules`:

``feedback.arf``
    An ARF feedback report: a complaint, never a bounce (nothing else is read).
``bounce.dsn``
    A ``message/delivery-status`` part (RFC 3464 / RFC 6533): its per-recipient blocks
    are the recipients, and no text format is consulted.
``bounce.x-failed-recipients``, ``bounce.exchange-ndr``
    Exim's/Gmail's ``X-Failed-Recipients`` and Exchange's ``X-MS-Exchange-Message-Is-Ndr``
    headers: evidence, and the recipient list when nothing better exists.
``challenge.response``, ``list.held``
    A challenge-response / sender-verification mail, or a list holding a post for
    moderation (only without a DSN part, and only checked when something else suggested
    a report): not a bounce.
``bounce.format.<name>`` and ``bounce.text``
    A text layout of :data:`~daemon.mail.bounces.registry.FORMATS` matched, from a
    mail system (see :func:`from_mail_system`) or from the format's own senders.
``bounce.subject``
    An NDR subject from a mail system.

The original Message-ID comes from :mod:`daemon.mail.bounces.original`.
"""

from __future__ import annotations

__all__ = ["detect_bounce", "from_mail_system", "parse_bounce"]

import functools
import re

from daemon.mail.bounces.dsn import DSN_TYPES, parse_delivery_status
from daemon.mail.bounces.generic import is_report_subject
from daemon.mail.bounces.lists import HELD
from daemon.mail.bounces.notbounce import is_challenge, is_feedback_report
from daemon.mail.bounces.original import original_message_id
from daemon.mail.bounces.registry import FORMATS
from daemon.mail.bounces.report import BounceReport, TextFormat, pattern
from daemon.mail.bounces.scan import addresses
from daemon.mail.bounces.text import Head, prefixed, read_format, signature_match
from daemon.mail.model import BounceInfo, ParsedMessage

_FALLBACK = TextFormat("fallback", pattern(r"(?!)"))


def parse_bounce(msg: ParsedMessage) -> BounceInfo | None:
    """The first failed recipient a bounce is about, or None if ``msg`` is no failure report.

    A convenience over :func:`detect_bounce`: delayed, success, complaint and challenge
    reports give None.
    """
    report = detect_bounce(msg)
    if report is None or not report.failed:
        return None
    return report.primary


def detect_bounce(msg: ParsedMessage) -> BounceReport | None:
    """Collect bounce evidence and every recipient from a parsed message.

    Args:
        msg: the parsed message.

    Returns:
        A report, or None when nothing suggests a delivery report. Recipients of a text
        report get ``action="failed"`` (``delayed`` for a warning), the status found in
        or inferred from the text, and a reason.
    """
    if "report" in (msg.header("content-type") or "").lower() and is_feedback_report(msg):
        return BounceReport((), ("feedback.arf",), format="arf", complaint=True)
    rules: list[str] = []
    reports = [part for part in msg.attachments if part.content_type in DSN_TYPES]
    if reports:
        rules.append("bounce.dsn")
    failed_header = msg.header("x-failed-recipients")
    if failed_header:
        rules.append("bounce.x-failed-recipients")
    if msg.header("x-ms-exchange-message-is-ndr") is not None:
        rules.append("bounce.exchange-ndr")
    system = from_mail_system(msg)
    candidates = FORMATS if system else _by_sender(msg)
    if not (rules or candidates):
        return None  # mail from a person: nothing below could fire
    original = original_message_id(msg) if reports else None
    recipients: list[BounceInfo] = []
    for part in reports:
        recipients += parse_delivery_status(part.data, original_message_id=original)
    head = Head.of(msg)
    exclude = _ours(msg)
    name = "rfc3464" if recipients else None
    found: tuple[TextFormat, int] | None = None
    if not recipients:
        found = next(((f, at) for f in candidates
                      if (at := signature_match(f, head)) is not None), None)
    if system and is_report_subject(head):
        rules.append("bounce.subject")
    if not recipients and (head.in_subject(HELD) or head.search(HELD) is not None):
        return BounceReport((), (*rules, "list.held"), challenge=True)
    if not rules and found is None:
        return None
    if not reports:
        original = original_message_id(msg)
    if not recipients and is_challenge(msg, head):
        return BounceReport((), (*rules, "challenge.response"), challenge=True)
    text = head.text
    if found is not None:
        fmt, begin = found
        recipients = read_format(fmt, msg, text, begin, exclude, original)
        rules += [f"bounce.format.{fmt.name}", "bounce.text"]
        name = fmt.name
    if not rules:
        return None
    if not recipients:
        listed = [e for e in addresses(failed_header or "") if e not in exclude]
        recipients = read_format(_FALLBACK, msg, text, 0, exclude, original)
        if listed:
            recipients = [_listed(e, recipients) for e in listed]
    return BounceReport(tuple(recipients), tuple(dict.fromkeys(rules)), format=name)


def _listed(email: str, found: list[BounceInfo]) -> BounceInfo:
    """A recipient named by X-Failed-Recipients, with the text's details when it has them."""
    same = next((r for r in found if r.recipient == email), None)
    template = same or next((r for r in found if r.recipient is None),
                            found[0] if len(found) == 1 else None)
    if template is None:
        return BounceInfo(recipient=email, action="failed", reason="unknown")
    return BounceInfo(email, template.action, template.status, template.diagnostic,
                      template.original_message_id, template.reporting_mta,
                      template.remote_mta, template.reason)


def _ours(msg: ParsedMessage) -> frozenset[str]:
    own = {a.email for a in (*msg.to, *msg.cc, *msg.reply_to)}
    if msg.from_:
        own.add(msg.from_.email)
    return frozenset(own)


# Every format's sender marks at once: mail from a person (nearly all mail) is answered
# by three string-method calls.
_ALL_SENDER_MARKS = tuple(dict.fromkeys(mark for f in FORMATS for mark in f.senders))


@functools.lru_cache(maxsize=64)
def _mark_kinds(marks: tuple[str, ...]) -> tuple[tuple[str, ...], tuple[str, ...],
                                                 tuple[str, ...]]:
    """Marks split into domain suffixes (``sendgrid.net``), local-part suffixes
    (``-owner@``) and words looked for anywhere (``mailman``, ``internet mail delivery``)."""
    domains = tuple(m for m in marks if "." in m and not m.endswith("@"))
    locals_ = tuple(m[:-1] for m in marks if m.endswith("@"))
    words = tuple(m for m in marks if "." not in m and not m.endswith("@"))
    return domains, locals_, words


def _marked(marks: tuple[str, ...], email: str, local: str, key: str) -> bool:
    domains, locals_, words = _mark_kinds(marks)
    return (email.endswith(domains) or local.endswith(locals_)
            or any(map(key.__contains__, words)))


def _by_sender(msg: ParsedMessage) -> tuple[TextFormat, ...]:
    """The formats whose sender marks match the From address or display name."""
    sender = msg.from_
    if sender is None:
        return ()
    email = sender.email.lower()
    local = email.partition("@")[0]
    key = f"{email}\n{sender.name[:200].lower()}"
    if not _marked(_ALL_SENDER_MARKS, email, local, key):
        return ()
    return tuple(f for f in FORMATS if f.senders and _marked(f.senders, email, local, key))


_SYSTEM_LOCAL = re.compile(r"^(?:mailer[-_]?daemon|postmaster|mail[-_]?daemon|mdaemon|"
                           r"bounces?|nobody|double-bounce|mail[-_.]?router|"
                           r"mail[-_.]?delivery|returned[-_.]?mail|nondelivery|ndr)"
                           r"(?:[+=._-].{0,200})?$", re.I)
_SYSTEM_NAME = re.compile(r"mail delivery (?:system|subsystem|service)|mailer-daemon|postmaster"
                          r"|microsoft outlook|mail administrator|internet mail delivery"
                          r"|mail router|mail system|delivery status notification"
                          r"|system administrator", re.I)


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
    if _SYSTEM_LOCAL.match(sender.email.split("@", 1)[0][:300]):
        return True
    name = sender.name[:300].lower()
    return bool(name) and any(literal in name and branch.search(name)
                              for literal, branch in prefixed(_SYSTEM_NAME))
