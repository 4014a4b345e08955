"""Exchange Server 2003-2019, Microsoft 365 and Outlook.com non-delivery reports.

Modern Exchange sends a DSN part too (read by :mod:`daemon.mail.bounces.dsn`); these
layouts matter when the report arrives as text only (forwarded through a gateway, or
an older server):

* Exchange 2000/2003: "Your message did not reach some or all of the intended
  recipients." then "The following recipient(s) could not be reached:" with
  ``ann@x on 3/4/2025 10:01 AM``, an explanation, and ``<server #5.1.1>``.
* Exchange 2007/2010: "Delivery has failed to these recipients or groups:" (a warning
  says "Delivery is delayed to these recipients or groups:") and
  "Diagnostic information for administrators:" with "Generating server:" and
  ``#550 5.1.1 RESOLVER.ADR.RecipNotFound; not found ##``.
* Exchange 2013-2019, Microsoft 365, Outlook.com: "Your message to ann@x couldn't be
  delivered." with "Remote Server returned '550 5.1.10 RESOLVER.ADR.RecipientNotFound'".
"""

from __future__ import annotations

__all__ = ["FORMATS"]

from daemon.mail.bounces.report import TextFormat, pattern

FORMATS: tuple[TextFormat, ...] = (
    TextFormat(
        "exchange-2003",
        pattern(r"did not reach some or all of the intended recipients",
                r"The following recipient\(s\) (?:could|cannot) not? ?be reached"),
        start=pattern(r"The following recipient\(s\) (?:could|cannot) not? ?be reached:"),
        ),
    TextFormat(
        "exchange-2007",
        pattern(r"Delivery (?:has failed|is delayed) to these recipients or groups"),
        start=pattern(r"Delivery (?:has failed|is delayed) to these recipients or groups:"),
        end=pattern(r"^Original message headers:", r"^Content-Type:[ \t]{0,5}message/rfc822"),
        ),
    TextFormat(
        "microsoft-365",
        pattern(r"Your message to \S{1,320} couldn't be delivered",
                r"Office 365|Microsoft 365|outlook\.com|protection\.outlook",
                r"Diagnostic information for administrators"),
        start=pattern(r"Diagnostic information for administrators:"),
        end=pattern(r"^Original message headers:", r"^Content-Type:[ \t]{0,5}message/rfc822"),
        inline=pattern(r"Your message to ", r"wasn't delivered to ")),
)
