"""The last resort: "undeliverable" in the report's own words, in several languages.

Only read when the message comes from a mail system (null Return-Path, MAILER-DAEMON or
postmaster, Auto-Submitted, a "Mail Delivery System" name): a customer forwarding a
bounce to support is a person writing, not a bounce.
"""

from __future__ import annotations

__all__ = ["FORMATS", "SUBJECT", "is_report_subject"]

from daemon.mail.bounces.report import TextFormat, pattern
from daemon.mail.bounces.text import Head

UNDELIVERABLE = (
    # English
    r"could not be delivered|couldn't be delivered|was not delivered|wasn't delivered"
    r"|undeliverable|undelivered|delivery (?:has )?failed|delivery failure|failed to deliver"
    r"|unable to deliver|cannot be delivered|permanent error|message not delivered"
    r"|returned mail|non-?delivery",
    # German, French, Spanish, Italian, Dutch, Portuguese, Swedish, Danish/Norwegian
    r"unzustellbar|nicht zugestellt|konnte nicht zugestellt|Zustellung fehlgeschlagen",
    r"non remis|n'a pas pu être (?:remis|distribué|délivré)|échec de (?:la )?(?:remise|livraison)",
    r"no se (?:pudo|ha podido) entregar|no ha podido ser entregado|no entregado",
    r"non (?:è stato possibile )?recapitat[oa]|impossibile recapitare|mancato recapito",
    r"onbestelbaar|kon niet worden (?:bezorgd|afgeleverd)|niet bezorgd",
    r"não (?:foi possível )?entregue|não foi possível entregar|falha na entrega",
    r"kunde inte levereras|olevererbart|leverans misslyckades|kan ikke leveres"
    r"|kunne ikke leveres|ikke levert",
    # Polish, Czech, Russian, Chinese
    r"nie (?:można|mogła zostać) dostarczon|niedostarczon|nelze doručit|nedoručitelná",
    r"не (?:может быть |было )?доставлено|недоставленное|невозможно доставить",
    r"无法投递|退信|邮件投递失败|未能送达|無法傳遞|傳送失敗",
)
SUBJECT = pattern(
    r"Undelivered Mail Returned to Sender", r"Undeliver(?:able|ed)\b",
    r"Delivery Status Notification", r"Mail delivery failed", r"DELIVERY FAILURE",
    r"Delivery Failure", r"Returned mail",
    r"failure notice", r"Mail System Error", r"Non[- ]?deliver(?:y|able)", r"Unzustellbar",
    r"Non remis", r"Onbestelbaar", r"No se puede entregar", r"Non recapitabile", r"Olevererbart",
    r"Kan ikke leveres", r"Warning: could not send message", r"Delayed Mail", r"Delivery delayed",
    r"Permanent Delivery Failure", r"Delivery Notification", r"Message delivery has failed",
    r"Mail could not be delivered", r"Nondeliverable mail", r"Undeliverable mail",
    r"Rejected posting", r"Returned to sender", r"Benachrichtigung zum Übermittlungsstatus",
    r"Notification d'état de remise", r"Недоставленное сообщение", r"Mail Delivery Failure",
    r"Delivery report", r"Address not found", r"Message not delivered")
"""Subjects of delivery reports (English and local variants), read from mail systems only.

Each phrase must open the subject (after at most five non-word characters, see
:func:`is_report_subject`); the phrases are kept as plain branches so that each is
found by a fast literal scan."""


def is_report_subject(head: Head) -> bool:
    """True when the subject opens with one of :data:`SUBJECT`'s phrases."""
    start = head.subject_start(SUBJECT)
    return start is not None and start <= 5 and not any(
        ch.isalnum() or ch == "_" for ch in head.subject[:start])

FORMATS: tuple[TextFormat, ...] = (
    TextFormat("generic", pattern(*UNDELIVERABLE), in_subject=False),
)
