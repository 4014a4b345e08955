"""Report-like mail that is no bounce: feedback reports and challenge-response requests.

* An ARF feedback report (RFC 5965: ``multipart/report; report-type=feedback-report``
  with a ``message/feedback-report`` part), sent by Yahoo, AOL, Microsoft's JMRP and
  others when a recipient presses "spam", says the mail *was* delivered: it is a
  complaint. Recording it as a delivery failure would mark a working address failing.
* A challenge-response or whitelist-verification mail (Boxbe, SpamArrest, ChoiceMail,
  Mailblocks, home-grown "please confirm you are human" filters) asks the sender to
  prove they are a person; the message is held, not refused. Such mail often comes from
  a MAILER-DAEMON-like address and says "your message could not be delivered until...",
  so it is checked before the text formats.
"""

from __future__ import annotations

__all__ = ["is_challenge", "is_feedback_report"]

import re

from daemon.mail.bounces.text import Head
from daemon.mail.model import ParsedMessage

_FEEDBACK_TYPES = frozenset({"message/feedback-report"})
_REPORT_TYPE = re.compile(r"report-type\s{0,5}=\s{0,5}\"?feedback-report", re.I)

_CHALLENGE = re.compile((
    r"confirm (?:that )?you are (?:a )?(?:human|real person|person)"
    r"|verify (?:that )?you are (?:a )?(?:human|real person|person|not a robot)"
    r"|prove (?:that )?you are (?:a )?(?:human|person)"
    r"|challenge[- ]response|(?:whitelist|white list) (?:request|verification|confirmation)"
    r"|added to (?:my|the|our) (?:whitelist|white list)|approved senders? list"
    r"|to be added to (?:my|the|our) (?:approved|allowed|safe|trusted) (?:senders?|list)"
    r"|sender verification (?:request|required)|verify your (?:email|e-mail|address|message)"
    r"|spam ?arrest|boxbe|choicemail|mailblocks|i (?:am|'m) protected by"
    r"|(?:held|quarantined) (?:pending|until) (?:your )?(?:verification|confirmation)"
    r"|awaiting (?:your )?(?:verification|confirmation)"
    r"|bestätigen sie, dass sie ein mensch sind|confirmez que vous êtes humain"
    ).replace(" ", r"\s{1,3}"), re.I)  # the words may be wrapped onto the next line
_CHALLENGE_HEADERS = ("x-boxbe-", "x-spamarrest", "x-challenge", "x-choicemail")


def is_feedback_report(msg: ParsedMessage) -> bool:
    """True for an ARF feedback report (RFC 5965; always a ``multipart/report``)."""
    if any(a.content_type in _FEEDBACK_TYPES for a in msg.attachments):
        return True
    return any("feedback-report" in v[:2000].lower() and _REPORT_TYPE.search(v[:2000])
               for v in msg.headers.get("content-type", ()))


def is_challenge(msg: ParsedMessage, head: Head) -> bool:
    """True for a challenge-response or sender-verification request."""
    if any(name.startswith(_CHALLENGE_HEADERS) for name in msg.headers):
        return True
    return head.in_subject(_CHALLENGE) or head.search(_CHALLENGE) is not None
