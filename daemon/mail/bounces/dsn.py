"""RFC 3464 delivery status notifications (and RFC 6533's internationalised variant).

A ``message/delivery-status`` body is one per-message block (Reporting-MTA,
Arrival-Date...) followed by one block per recipient (Final-Recipient,
Original-Recipient, Action, Status, Remote-MTA, Diagnostic-Code). Postfix, Exim 4.9x,
Gmail, Exchange, Amazon SES and most current MTAs send one. What real DSNs get wrong and
this reader tolerates: a missing Status (the code is then read from the Diagnostic-Code,
see :func:`~daemon.mail.bounces.reasons.infer_status`), ``rfc822;`` in any case or
missing, addresses in angle brackets, folded diagnostics, CRLF or LF.
"""

from __future__ import annotations

__all__ = ["DSN_TYPES", "parse_delivery_status"]

import re

from daemon.mail.bounces.reasons import infer_status, reason_of
from daemon.mail.bounces.scan import MAX_RECIPIENTS, MAX_SCAN
from daemon.mail.charset import decode_text
from daemon.mail.mime import split_headers
from daemon.mail.model import BounceInfo

DSN_TYPES = frozenset({"message/delivery-status", "message/global-delivery-status"})

_STATUS = re.compile(r"(?<![\d.])([245]\.\d{1,3}\.\d{1,3})(?!\d)")
_BLOCKS = re.compile(r"\n[ \t]*\n")


def parse_delivery_status(data: bytes, *, original_message_id: str | None = None
                          ) -> list[BounceInfo]:
    """Parse the body of a ``message/delivery-status`` part (RFC 3464 §2).

    Args:
        data: the part body (transfer-decoded); only the first 64 KiB are read.
        original_message_id: filled into every result (the DSN itself does not carry it
            unless an ``Original-Message-ID`` field is present, which then wins).

    Returns:
        One :class:`BounceInfo` per per-recipient block (at most 200); recipients
        lower-cased without the ``rfc822;`` type, MTAs without ``dns;``, status inferred
        from the diagnostic when the Status field is missing, and a reason.
    """
    text = decode_text(data[:MAX_SCAN], "utf-8")[0].replace("\r\n", "\n").replace("\r", "\n")
    per_message: dict[str, str] = {}
    found: list[BounceInfo] = []
    for block in _BLOCKS.split(text.strip("\n")):
        fields = _fields(block)
        if "final-recipient" not in fields and "original-recipient" not in fields:
            per_message.update({k: v for k, v in fields.items() if k not in per_message})
            continue
        found.append(_recipient_info(fields, per_message, original_message_id))
        if len(found) >= MAX_RECIPIENTS:
            break
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
    diagnostic = _typed_value(fields.get("diagnostic-code")) or None
    found = _STATUS.search(fields.get("status", ""))
    status = found.group(1) if found else None
    action = (fields.get("action") or "").strip().lower() or None
    if status is None and action not in ("delivered", "relayed", "expanded"):
        status = infer_status(diagnostic)
    if action == "delayed" and status and status.startswith("5"):
        status = "4" + status[1:]
    own_id = (fields.get("original-message-id") or fields.get("x-original-message-id")
              or per_message.get("original-message-id")
              or per_message.get("x-original-message-id"))
    return BounceInfo(
        recipient=recipient.strip("<>").lower() or None if recipient else None,
        action=action,
        status=status,
        diagnostic=diagnostic,
        original_message_id=strip_id(own_id) or original,
        reporting_mta=_typed_value(per_message.get("reporting-mta")) or None,
        remote_mta=_typed_value(fields.get("remote-mta")).strip("[]").lower() or None,
        reason=None if action in ("delivered", "relayed", "expanded")
        else reason_of(status, diagnostic),
    )


def _typed_value(value: str | None) -> str:
    """``rfc822; a@b`` -> ``a@b``; ``smtp; 550 ...`` -> ``550 ...``."""
    if not value:
        return ""
    kind, sep, rest = value.partition(";")
    return " ".join((rest if sep and " " not in kind.strip() else value).split())


_ANGLE = re.compile(r"<([^<>]{1,998})>")


def strip_id(value: str | None) -> str | None:
    """A Message-ID without ``<>`` and whitespace, or None."""
    if not value:
        return None
    value = value[:2000]
    match = _ANGLE.search(value)
    cleaned = "".join((match.group(1) if match else value).split()).strip("<>")
    return cleaned or None
