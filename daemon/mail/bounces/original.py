"""The Message-ID of the message that bounced, so the error finds its message follower.

Sources, best first:

1. the ``Message-ID`` of a returned ``message/rfc822`` / ``message/global`` part or a
   ``text/rfc822-headers`` / ``message/global-headers`` part (RFC 3462, RFC 6533);
2. a DSN's ``Original-Message-ID`` / ``X-Original-Message-ID`` field (handled per
   recipient in :mod:`daemon.mail.bounces.dsn`);
3. a ``Message-ID:`` line quoted in the text: qmail, Sendmail, Domino, the Japanese
   carriers and most gateways append the original headers below the report, sometimes
   indented or ``>``-quoted, sometimes with the id folded onto the next line. The
   report's own id is never taken.
"""

from __future__ import annotations

__all__ = ["HEADER_TYPES", "original_message_id"]

import re

from daemon.mail.bounces.dsn import strip_id
from daemon.mail.bounces.scan import MAX_SCAN
from daemon.mail.mime import split_headers
from daemon.mail.model import ParsedMessage

HEADER_TYPES = frozenset({"text/rfc822-headers", "message/global-headers",
                          "message/rfc822", "message/global"})

_QUOTED_MESSAGE_ID = re.compile(
    r"^[ \t>]{0,20}Message-I[Dd][ \t]{0,10}:[ \t]{0,10}\n?[ \t]{0,20}<([^<>\s]{1,500})>",
    re.I | re.M)


def original_message_id(msg: ParsedMessage) -> str | None:
    """The original Message-ID (without ``<>``) found in ``msg``, or None."""
    for part in msg.attachments:
        if part.content_type in HEADER_TYPES:
            headers, _, _ = split_headers(part.data[:65536])
            for name, value in headers:
                if name == "message-id":
                    found = strip_id(value)
                    if found:
                        return found
    for quoted in _QUOTED_MESSAGE_ID.finditer(msg.text, 0, MAX_SCAN):
        if quoted.group(1) != msg.message_id:
            return quoted.group(1)
    return None
