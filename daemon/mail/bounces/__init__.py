"""Reading delivery reports: RFC 3464 and the text layouts of real MTAs and providers.

Layout (one concept per module):

* :mod:`~daemon.mail.bounces.detect`: :func:`detect_bounce`, the order of the checks and
  the rule names they record;
* :mod:`~daemon.mail.bounces.report`: :class:`BounceReport`, :class:`ReportKind` and
  :class:`TextFormat` (a layout described as data);
* :mod:`~daemon.mail.bounces.dsn`: RFC 3464 ``message/delivery-status``;
* :mod:`~daemon.mail.bounces.text`: the engine that reads every text layout;
* the family tables, tried in the order of :mod:`~daemon.mail.bounces.registry`:
  :mod:`~daemon.mail.bounces.unix` (Postfix, Exim, Sendmail, qmail, Courier),
  :mod:`~daemon.mail.bounces.microsoft` (Exchange 2003-2019, Microsoft 365),
  :mod:`~daemon.mail.bounces.servers` (Domino, iMail, MDaemon),
  :mod:`~daemon.mail.bounces.providers` (Google, Yahoo/AOL, SES, SendGrid, Mailgun,
  Postmark, Zoho, Yandex, GMX/Web.de/1&1), :mod:`~daemon.mail.bounces.japan` (au/KDDI,
  docomo, SoftBank, Biglobe), :mod:`~daemon.mail.bounces.gateways` (MXLogic,
  InterScan, Barracuda, Sophos, MailFoundry), :mod:`~daemon.mail.bounces.lists`
  (Mailman, FML) and :mod:`~daemon.mail.bounces.generic` (multilingual words);
* :mod:`~daemon.mail.bounces.notbounce`: ARF complaints and challenge-response mail;
* :mod:`~daemon.mail.bounces.reasons`: the reason vocabulary and status inference;
* :mod:`~daemon.mail.bounces.original`: the original Message-ID;
* :mod:`~daemon.mail.bounces.scan`: the bounded, linear scans all of them use.
"""

from __future__ import annotations

__all__ = [
    "REASONS",
    "BounceReport",
    "ReportKind",
    "TextFormat",
    "detect_bounce",
    "from_mail_system",
    "parse_bounce",
    "parse_delivery_status",
]

from daemon.mail.bounces.detect import detect_bounce, from_mail_system, parse_bounce
from daemon.mail.bounces.dsn import parse_delivery_status
from daemon.mail.bounces.reasons import REASONS
from daemon.mail.bounces.report import BounceReport, ReportKind, TextFormat
