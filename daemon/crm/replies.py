"""When importing a message should send mail: automatic replies and hub notifications.

* **Automatic reply** (the reference's "Automatic Replies"): a new conversation started by
  a person (never automatic mail, bounces or our own mail) gets the account's automatic
  reply, to the sender alone (RFC 3834 §3.1: never to the other recipients, whose
  addresses are only the sender's word) — unless the message is older than
  ``auto_reply.max_age_hours`` (it was stuck somewhere; replying days later looks broken),
  or the recipient already got ``rate_limit_per_hour`` automatic replies in the last hour
  (or four times that in a day): the loop breaker for bots that slip through.
* **Hub notification**: when a follower writes into an existing conversation, every other
  active, subscribed follower a coworker vouched for gets a copy. Never for automatic mail.
* Both count against the account's ``automatic_mail_per_hour``
  (:mod:`daemon.outbox.budget`): beyond it they are queued held, not sent.

The mail itself is composed and queued by :func:`daemon.outbox.queue.queue_to_followers`
in the same transaction, so a crash cannot send a reply for a message that was not stored.
"""

from __future__ import annotations

__all__ = ["auto_reply_due", "take_auto_reply_allowance"]

import json
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from daemon.mail.model import ParsedMessage
from daemon.store.base import Tx

if TYPE_CHECKING:
    from daemon.config import Account

HOUR = timedelta(hours=1)
DAY = timedelta(days=1)
DAILY_FACTOR = 4


def auto_reply_due(account: Account, message: ParsedMessage, received_at: datetime | None,
                   now: datetime) -> bool:
    """Whether the account sends automatic replies and the message is recent enough."""
    settings = account.auto_reply
    if not settings.enabled:
        return False
    sent_at = received_at or message.date
    if sent_at is None:
        return True
    return now - sent_at <= timedelta(hours=settings.max_age_hours)


def take_auto_reply_allowance(tx: Tx, account: Account, recipient: str, now: datetime) -> bool:
    """Count one automatic reply to ``recipient`` if the sliding windows allow it.

    The send times of the last day live in the checkpoint ``autoreply:<address>`` of the
    account, in the same transaction as the reply itself.
    """
    key = f"autoreply:{recipient.lower()}"
    stored = tx.get_checkpoint(account.id, key)
    times = [datetime.fromisoformat(t) for t in json.loads(stored)] if stored else []
    times = [t for t in times if now - t < DAY]
    per_hour = account.auto_reply.rate_limit_per_hour
    if (sum(now - t < HOUR for t in times) >= per_hour
            or len(times) >= per_hour * DAILY_FACTOR):
        return False
    times.append(now)
    tx.set_checkpoint(account.id, key, json.dumps([t.isoformat() for t in times]))
    return True
