"""Mail-security gateways: McAfee/MXLogic, InterScan/Trend Micro, Barracuda, Sophos,
MailFoundry.

A gateway between the sender and the real server writes its own report when the server
behind it refuses, or when its own policy does:

* McAfee MXLogic / McAfee Email Gateway: MXLogic's "mxlogic.net" hosts in the text,
  qmail-like ``<rcpt>:`` blocks.
* InterScan MSS / Trend Micro: "Sent <<< RCPT TO:<rcpt>" / "Received >>> 550 ..." pairs
  and "Unable to deliver message to <rcpt>".
* Barracuda: "Your message to: rcpt was not delivered" / "Reason: ..." and
  "Barracuda" in the text or sender.
* Sophos Email Appliance / PureMessage: "Sophos" and "The following recipients could
  not be delivered".
* MailFoundry: "MailFoundry" and "Delivery failed for the following recipients:".
"""

from __future__ import annotations

__all__ = ["FORMATS"]

from daemon.mail.bounces.report import TextFormat, pattern

FORMATS: tuple[TextFormat, ...] = (
    TextFormat(
        "mxlogic",
        pattern(r"mxlogic|McAfee"),
        inline=pattern(r"deliver (?:your )?message to:?[ \t\n]{0,5}")),
    TextFormat(
        "interscan",
        pattern(r"InterScan|Trend Micro", r"Unable to deliver message to <",
                r"Sent <<< RCPT TO:"),
        inline=pattern(r"Unable to deliver message to ", r"Sent <<< RCPT TO:[ \t]{0,5}")),
    TextFormat(
        "barracuda",
        pattern(r"Barracuda"),
        inline=pattern(r"Your message to:?[ \t]{0,5}", r"Recipient:[ \t]{0,5}")),
    TextFormat(
        "sophos",
        pattern(r"Sophos|PureMessage"),
        start=pattern(r"following recipients? (?:could not be|was not|were not) delivered:?")),
    TextFormat(
        "mailfoundry",
        pattern(r"MailFoundry"),
        start=pattern(r"Delivery failed for the following recipients?:")),
)
