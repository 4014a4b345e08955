"""Every text format, in the order they are tried: the most specific first.

A provider's layout often reuses an MTA's (Yandex and docomo run Postfix, GMX runs Exim,
Yahoo writes qmail-like blocks), so providers, carriers and gateways are tried before
the MTA families, and the multilingual heuristics last. The first format whose signature
occurs (and whose sender looks like a mail system or matches the format's own senders)
reads the recipients.
"""

from __future__ import annotations

__all__ = ["FORMATS"]

from daemon.mail.bounces import (
    gateways,
    generic,
    japan,
    lists,
    microsoft,
    providers,
    servers,
    unix,
)
from daemon.mail.bounces.report import TextFormat

FORMATS: tuple[TextFormat, ...] = (
    *lists.FORMATS,
    *japan.FORMATS[:-1],
    *gateways.FORMATS,
    *providers.FORMATS,
    *microsoft.FORMATS,
    *servers.FORMATS,
    *unix.FORMATS,
    *japan.FORMATS[-1:],
    *generic.FORMATS,
)
"""The formats :func:`~daemon.mail.bounces.detect_bounce` tries, in order."""
