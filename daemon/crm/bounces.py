"""Bounces: a delivery failure becomes an error record on the message follower it hit.

The reference's "Bounce Handling": a bounce that reaches the monitored folder shows as an
error record in the conversation feed. The original message is found through the
bounce's original Message-ID (RFC 3464 ``message/rfc822`` or ``text/rfc822-headers``
part), which is the per-recipient Message-ID we gave that follower's copy:

1. the outbox item with that Message-ID (it knows its message follower), else
2. a message follower whose ``messageid`` is that id, else
3. the message follower id inside our signed Message-ID;

then, when that message follower's follower is not the failed recipient but another
message follower of the same conversation message is (one copy reached two addresses,
an alias expanded), the recipient's own message follower.

Decisions come from the recipient's reason (:attr:`BounceInfo.permanent`): a permanent
reason (``user-unknown``, ``host-unknown``, ``suspended``, ``not-accepted``; or a 5.x.x
status nothing explains) also marks the follower ``failing`` so later sends can warn; a
temporary one (``mailbox-full``, ``rejected``, ``blocked``, ``expired``...) records the
error and leaves the follower as it is. Nothing here ever clears ``failing`` or deletes
an error: a later successful delivery leaves the error in place, to be resolved by a
person (see :mod:`daemon.http.message_errors`). A report with several failed recipients
records one error per recipient, each on its own message follower. A bounce that matches
nothing is left to the ordinary rules (and, being automatic mail nobody wrote, never
opens a conversation).
"""

from __future__ import annotations

__all__ = ["BounceRecord", "record_bounce"]

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

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
    if bounce.recipient:
        mf_id = _recipients_own(tx, runtime, mf_id, bounce.recipient)
    fcfg, mfcfg = runtime.follower, runtime.message_follower
    text = " ".join(p for p in (bounce.status, f"[{bounce.reason}]" if bounce.reason else None,
                                bounce.diagnostic or bounce.action,
                                f"({bounce.recipient})" if bounce.recipient else None) if p)
    error_id = record_error(tx, runtime, kind=ErrorKind.BOUNCE, text=text or "delivery failed",
                            when=now, message_follower_id=mf_id, status=bounce.status,
                            recipient=bounce.recipient, reason=bounce.reason,
                            permanent=bounce.permanent)
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


def _recipients_own(tx: Tx, runtime: Any, mf_id: int, recipient: str) -> int:
    """The message follower of ``recipient`` on ``mf_id``'s message, else ``mf_id``.

    A copy we sent (``direction`` ``outgoing``) is preferred over the recipient's
    incoming participation (its ``cc`` row) on the same message.
    """
    mfcfg, fcfg = runtime.message_follower, runtime.follower
    found = tx.get(mfcfg.limetype, mf_id)
    if found is None or _email_of(tx, fcfg, found.get(mfcfg.relation_follower)) == recipient:
        return mf_id
    message_id = found.get(mfcfg.relation_conversation_message)
    if message_id is None:
        return mf_id
    siblings = [m for m in tx.find(mfcfg.limetype,
                                   {mfcfg.relation_conversation_message: message_id}, limit=500)
                if _email_of(tx, fcfg, m.get(mfcfg.relation_follower)) == recipient]
    # the copy we sent before the recipient's incoming participation (its "cc")
    siblings.sort(key=lambda m: m.get("direction") != "outgoing")
    return siblings[0].id if siblings else mf_id


def _email_of(tx: Tx, fcfg: Any, follower_id: Any) -> str | None:
    follower = tx.get(fcfg.limetype, follower_id) if isinstance(follower_id, int) else None
    email = follower.get(fcfg.property_address) if follower is not None else None
    return email.lower() if isinstance(email, str) else None
