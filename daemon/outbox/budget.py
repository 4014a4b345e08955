"""The per-account budget for automatic mail: a sliding hour, held beyond it.

Automatic replies and hub notifications are mail a stranger's message can cause; a flood
of incoming mail must not become a flood of outgoing mail from our address. Each account
may queue ``automatic_mail_per_hour`` of them in any sliding hour; a copy beyond that is
queued *held* (outbox status ``held``): kept, counted in ``/status``, listed by the
outbox API, and sent only when an operator releases it. An agent's reply never counts.

This sits beside the per-recipient limit of automatic replies
(:func:`daemon.crm.replies.take_auto_reply_allowance`), which breaks loops with one
robot; this one bounds what many senders together can cause. The send times of the last
hour live in the account's checkpoint :data:`CHECKPOINT` (seconds since the epoch), in
the transaction that queues the mail, so the budget holds across restarts and nodes.
"""

from __future__ import annotations

__all__ = ["CHECKPOINT", "HELD", "take_automatic_mail_budget"]

import json
from datetime import datetime
from typing import TYPE_CHECKING

from daemon.store.base import Tx

if TYPE_CHECKING:
    from daemon.config import Account

#: The checkpoint key holding the send times of the last hour.
CHECKPOINT = "automatic-mail:sent"
#: The outbox status of automatic mail over the budget.
HELD = "held"
_WINDOW_SECONDS = 3600.0


def take_automatic_mail_budget(tx: Tx, account: Account, now: datetime, wanted: int) -> int:
    """Count up to ``wanted`` automatic mails against the account's sliding hour.

    Args:
        tx: the open transaction (the caller's, so the count commits with the mail).
        account: the account (its ``id`` and ``automatic_mail_per_hour``).
        now: the clock.
        wanted: how many copies are about to be queued.

    Returns:
        How many of them fit (0 to ``wanted``); the caller holds the rest.
    """
    stored = tx.get_checkpoint(account.id, CHECKPOINT)
    stamp = now.timestamp()
    times = [t for t in (json.loads(stored) if stored else [])
             if stamp - t < _WINDOW_SECONDS]
    granted = max(0, min(wanted, account.automatic_mail_per_hour - len(times)))
    if granted or stored:
        times += [stamp] * granted
        tx.set_checkpoint(account.id, CHECKPOINT, json.dumps(times))
    return granted
