"""Bounces: a delivery failure becomes an error record on the message follower it hit.

The reference's "Bounce Handling": a bounce that reaches the monitored folder shows as an
error record in the conversation feed. The original message is found through the
bounce's original Message-ID (RFC 3464 ``message/rfc822`` or ``text/rfc822-headers``
part), which is the per-recipient Message-ID we gave that follower's copy:

1. the outbox item with that Message-ID (it knows its message follower), else
2. a message follower whose ``messageid`` is that id, else
3. the message follower id inside our signed Message-ID.

A permanent failure (5.x.x) also marks the follower ``failing`` so later sends can warn.
A bounce that matches nothing is left to the ordinary rules (and, being automatic mail
nobody wrote, never opens a conversation).
"""

from __future__ import annotations

__all__ = ["BounceRecord", "record_bounce"]

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING

from daemon.crm.errors import ErrorKind, mark_failing, record_error
from daemon.mail.model import BounceInfo
from daemon.store.base import Tx

if TYPE_CHECKING:
    from daemon.config import RuntimeConfig


@dataclass(frozen=True, slots=True)
class BounceRecord:
    error_id: int
    message_follower_id: int
    conversation_id: int | None


def record_bounce(tx: Tx, runtime: RuntimeConfig, bounce: BounceInfo, now: datetime,
                  follower_of_token: Callable[[str], int | None]) -> BounceRecord | None:
    """Create the ``conversationmessageerror`` for ``bounce``; None when nothing matches."""
    original = bounce.original_message_id
    if not original:
        return None
    mf_id = _message_follower_for(tx, runtime, original, follower_of_token)
    if mf_id is None:
        return None
    fcfg, mfcfg = runtime.follower, runtime.message_follower
    text = " ".join(p for p in (bounce.status, bounce.diagnostic or bounce.action,
                                f"({bounce.recipient})" if bounce.recipient else None) if p)
    error_id = record_error(tx, runtime, kind=ErrorKind.BOUNCE, text=text or "delivery failed",
                            when=now, message_follower_id=mf_id, status=bounce.status,
                            recipient=bounce.recipient)
    message_follower = tx.get(mfcfg.limetype, mf_id)
    follower_id = message_follower.get(mfcfg.relation_follower) if message_follower else None
    conversation_id = None
    if isinstance(follower_id, int):
        follower = tx.get(fcfg.limetype, follower_id)
        if follower is not None:
            conversation_id = follower.get(fcfg.relation_conversation)
            if bounce.permanent:
                mark_failing(tx, runtime, follower_id)
    return BounceRecord(error_id, mf_id, conversation_id)


def _message_follower_for(tx: Tx, runtime: RuntimeConfig, message_id: str,
                          follower_of_token: Callable[[str], int | None]) -> int | None:
    item = tx.find_outbox_by_message_id(message_id)
    if item is not None and item.message_follower_id is not None:
        return item.message_follower_id
    mfcfg = runtime.message_follower
    row = tx.find_one(mfcfg.limetype, {mfcfg.property_message_id: message_id})
    if row is not None:
        return row.id
    from_token = follower_of_token(message_id)
    if from_token is not None and tx.get(mfcfg.limetype, from_token) is not None:
        return from_token
    return None
