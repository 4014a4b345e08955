"""Why a recipient failed: a small fixed vocabulary, read from the status and the words.

A report states the reason three ways, each less reliable than the one before: an RFC 3463
enhanced status code (``5.1.1``), a basic SMTP reply code (``550``, RFC 5321 §4.2), or
only words ("mailbox full", "Host unknown", "Benutzer unbekannt"). :func:`reason_of`
reads the words first, because they are more specific than a status (``5.7.1`` covers
spam, policy and blocklists alike) and because many servers send a generic ``550`` for
everything; the status decides only when no phrase matches. :func:`infer_status` gives a
status for a report that carries none, from the diagnostic text or from the reason.

Every pattern here is a plain alternation of phrases without nested repetition, run on
text of bounded length (:data:`MAX_DIAGNOSTIC`), so the scan is linear.
"""

from __future__ import annotations

__all__ = [
    "MAX_DIAGNOSTIC",
    "PERMANENT_REASONS",
    "REASONS",
    "TEMPORARY_REASONS",
    "infer_status",
    "reason_of",
]

import re

MAX_DIAGNOSTIC = 2000

REASONS: tuple[str, ...] = (
    "user-unknown",       # no such mailbox (5.1.1)
    "host-unknown",       # no such domain / no MX (5.1.2)
    "mailbox-full",       # over quota (5.2.2, 4.2.2)
    "message-too-large",  # size limit (5.3.4, 5.2.3)
    "rejected",           # refused as spam or by content/policy rules (5.7.1)
    "blocked",            # the sending server or IP is blocklisted (5.7.1, 554)
    "expired",            # the queue gave up after retrying (5.4.7, 4.4.7)
    "suspended",          # mailbox disabled, inactive or suspended (5.2.1)
    "filtered",           # dropped by the recipient's filter or a list's rules
    "not-accepted",       # the domain accepts no mail at all (null MX, RFC 7505)
    "network",            # connection or DNS failure on the way (4.4.x)
    "system-error",       # a fault of the receiving system (x.3.x)
    "security",           # virus, malware or authentication failure (5.7.x)
    "unknown",            # a failure whose reason nobody stated
)
"""Every reason a :class:`~daemon.mail.model.BounceInfo` may carry."""

PERMANENT_REASONS = frozenset({"user-unknown", "host-unknown", "suspended", "not-accepted"})
"""Reasons that say the address is bad: the follower is marked failing."""

TEMPORARY_REASONS = frozenset({"mailbox-full", "message-too-large", "rejected", "blocked",
                               "expired", "filtered", "network", "system-error",
                               "security"})
"""Reasons about this message or this moment, not the address: an error, not failing."""

# (reason, phrases, the status a report without one gets). Order is priority: the first
# reason with a phrase anywhere in the text wins ("554 Service unavailable; client host
# blocked using Spamhaus" is ``blocked``, not ``system-error``).
_PHRASES: tuple[tuple[str, str, str], ...] = (
    ("mailbox-full",
     r"mailbox (?:is )?full|mailbox full|over ?quota|quota exceeded|exceeded (?:his|her|the|its)?"
     r" ?(?:storage|quota)|insufficient (?:system )?storage|mailbox size limit|disk quota"
     r"|user is over|mail ?box has exceeded|postfach (?:ist )?voll|boîte (?:aux lettres )?pleine"
     r"|buzón lleno|casella piena|容量|over the allowed quota|mailbox is over",
     "5.2.2"),
    ("message-too-large",
     r"message (?:is )?too (?:big|large)|message size exceeds|exceeds (?:the )?(?:maximum )?"
     r"(?:message )?size|size limit exceeded|message length exceeds|mail too large"
     r"|message exceeds|too large for",
     "5.3.4"),
    ("suspended",
     r"account (?:has been |is )?(?:disabled|suspended|inactive|deactivated|locked|blocked)"
     r"|mailbox (?:is )?(?:disabled|inactive|suspended|deactivated|not active|unavailable"
     r" for this user)|user (?:account )?(?:is )?(?:disabled|suspended|inactive)"
     r"|account expired|inactive user|is no longer (?:active|valid)"
     r"|user(?:\(s\))? account is disabled|deaktiviert|gesperrt",
     "5.2.1"),
    ("not-accepted",
     r"does not accept mail|accepts no mail|null mx|not accepting (?:any )?mail",
     "5.1.10"),
    ("host-unknown",
     r"host unknown|unknown host|host not found|domain not found|no such domain"
     r"|domain (?:does not|doesn't) exist|unrouteable (?:mail )?domain|no mx (?:record|host)"
     r"|name or service not known|host or domain name not found|nxdomain|unknown domain"
     r"|domain name not found|mx lookup failed|dns error|no route to domain"
     r"|couldn't find (?:the|a) (?:domain|host)|invalid domain|domain is not valid"
     r"|domain could not be found|domain \S{1,255} (?:couldn't|could not) be found",
     "5.1.2"),
    ("user-unknown",
     r"user unknown|unknown user|no such user|unknown recipient|recipient unknown"
     r"|recipient not found|recipnotfound|recipientnotfound|address rejected|invalid recipient"
     r"|invalid mailbox|mailbox unavailable|mailbox not found|no mailbox|mailbox does not exist"
     r"|user does not exist|user doesn't exist|does not exist|doesn't exist|not listed in"
     r"|address (?:couldn't|could not|cannot) be found|address not found|unknown address"
     r"|unrouteable address|no such (?:mailbox|address|recipient|person)|user not found"
     r"|account (?:does not|doesn't) exist|not a valid (?:user|mailbox|recipient)"
     r"|is not a known user|invalid address|bad destination mailbox|addressee unknown"
     r"|unknown local[- ]part|unknown alias|user (?:name )?is not recognized"
     r"|the email account that you tried to reach does not exist|no account by that name"
     r"|(?:doesn't|does not) have an? \S{1,64} account"
     r"|undeliverable address|benutzer unbekannt|unbekannter empfänger"
     r"|destinataire inconnu|utilisateur inconnu|usuario desconocido|utente sconosciuto"
     r"|onbekende gebruiker|okänd mottagare|宛先不明|存在しません|ユーザーが見つかりません",
     "5.1.1"),
    ("blocked",
     r"blacklist|blocklist|black list|block list|listed (?:at|on|in) |spamhaus|spamcop"
     r"|\brbl\b|\bdnsbl\b|sorbs|barracudacentral|client host \S{1,255} blocked"
     r"|ip (?:address )?(?:\S{1,64} )?(?:is |has been )?blocked|blocked using|poor reputation"
     r"|sender ip|connection refused by|access denied|rejected due to (?:ip|reputation)",
     "5.7.1"),
    ("security",
     r"virus|malware|infected|dmarc|dkim|spf (?:check )?fail|authentication (?:failed|required)"
     r"|unauthenticated|phishing",
     "5.7.1"),
    ("rejected",
     r"spam|junk mail|content rejected|message (?:was |has been )?rejected|policy"
     r"|not permitted|not allowed|prohibited|relay (?:access )?denied|relaying denied"
     r"|refused|unsolicited|bulk mail|administrative prohibition|not authorized"
     r"|no permission|not a member|is not allowed to post|rejected posting|you are not"
     r" allowed|(?:was|were|is|been) rejected",
     "5.7.1"),
    ("filtered",
     r"filtered|filter rejected|rejected by (?:the )?(?:recipient'?s? )?(?:filter|rule)"
     r"|content filter|blocked by (?:the )?recipient|sender (?:is )?blocked by recipient",
     "5.7.1"),
    ("expired",
     r"retry time(?:out)? (?:of \S{1,20} )?(?:was )?exceeded|retry timeout exceeded"
     r"|message expired|delivery time expired|has expired|gave up|giving up|too old"
     r"|could not be delivered (?:with|within|for|in) (?:the last )?\d{1,3}"
     r"|exceeded the maximum time|time limit exceeded|maximum delivery time",
     "5.4.7"),
    ("network",
     r"connection (?:refused|reset|closed|timed out|lost)|network (?:is )?unreachable"
     r"|no route to host|temporary failure in name resolution|could not connect"
     r"|unable to connect|connect to \S{1,255} failed|lost connection|timed out",
     "4.4.1"),
    ("system-error",
     r"system error|internal error|local error|server error|mail system (?:is )?full"
     r"|configuration error|mailer error|service unavailable|try again later"
     r"|temporarily (?:unavailable|deferred)|resources temporarily",
     "4.3.0"),
)
_PHRASE_RES = tuple((reason, re.compile(p, re.I)) for reason, p, _ in _PHRASES)

# Enhanced status (RFC 3463 §3) -> reason, most specific first.
_BY_STATUS: tuple[tuple[str, str], ...] = (
    ("5.1.10", "not-accepted"), ("5.1.1", "user-unknown"), ("5.1.0", "user-unknown"),
    ("5.1.6", "user-unknown"), ("5.1.2", "host-unknown"), ("5.1.3", "user-unknown"),
    ("5.2.1", "suspended"), ("4.2.1", "suspended"), ("5.2.2", "mailbox-full"),
    ("4.2.2", "mailbox-full"), ("5.2.3", "message-too-large"), ("5.3.4", "message-too-large"),
    ("5.4.7", "expired"), ("4.4.7", "expired"), ("5.7.", "rejected"), ("4.7.", "blocked"),
    ("5.4.", "network"), ("4.4.", "network"), ("5.3.", "system-error"),
    ("4.3.", "system-error"),
)

_ENHANCED = re.compile(r"(?<![\d.])([245])\.(\d{1,3})\.(\d{1,3})(?![\d])")
_BASIC = re.compile(r"(?<![\d.#\[-])([245][0-5]\d)(?=[ \-:;,)\]]|\.(?!\d)|$)", re.M)


def reason_of(status: str | None, diagnostic: str | None) -> str | None:
    """The reason word for a recipient, or None for a success or delay without one.

    Args:
        status: the enhanced status (``5.1.1``), if known.
        diagnostic: the server's words, if any (only the first :data:`MAX_DIAGNOSTIC`
            characters are read).

    Returns:
        One of :data:`REASONS`; ``unknown`` for a 5.x.x failure nothing explains.
    """
    if status and status.startswith("2"):
        return None
    if diagnostic:
        text = diagnostic[:MAX_DIAGNOSTIC]
        for reason, pattern in _PHRASE_RES:
            if pattern.search(text):
                return reason
    if status:
        for prefix, reason in _BY_STATUS:
            if status.startswith(prefix) and (len(prefix) < 5 or status == prefix
                                             or not status[len(prefix)].isdigit()):
                return reason
        return "unknown" if status.startswith("5") else None
    return None


def infer_status(diagnostic: str | None, reason: str | None = None) -> str | None:
    """An enhanced status read from ``diagnostic``, else guessed from an SMTP code or reason.

    ``550 5.1.1 ...`` gives ``5.1.1``; ``552 mailbox full`` gives ``5.2.2`` (the reason's
    status in the class of the SMTP code); ``Host unknown`` alone gives ``5.1.2``.
    """
    text = (diagnostic or "")[:MAX_DIAGNOSTIC]
    enhanced = _ENHANCED.search(text)
    if enhanced is not None:
        return ".".join(enhanced.groups())
    basic = _BASIC.search(text)
    reason = reason or reason_of(None, text)
    typical = next((status for name, _, status in _PHRASES if name == reason), None)
    if basic is not None:
        klass = basic.group(1)[0]
        if klass == "2":
            return "2.0.0"
        if typical is not None:
            return f"{klass}{typical[1:]}"
        return f"{klass}.0.0"
    return typical
