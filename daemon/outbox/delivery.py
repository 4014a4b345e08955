"""The outbox's bookkeeping: what one delivery attempt's result writes to the store.

Each function is one store transaction (run through :meth:`AsyncStore.run`, in the
store's worker thread) that the outbox actor (:mod:`daemon.actors.outbox`) runs after an
attempt: the item's new state in the ``outbox`` table, the error records on its message
follower (through :mod:`daemon.crm.errors`, their only writer) and the event. The actor
keeps the loop and the retry policy; what a result *means* for the store is here.
"""

from __future__ import annotations

__all__ = ["record_failure", "record_retry", "record_sent", "record_sent_copy_failed"]

from datetime import datetime

from daemon.config.runtime import RuntimeConfig
from daemon.crm import errors
from daemon.crm.errors import ErrorKind
from daemon.store.base import OutboxItem, Tx


def record_sent(tx: Tx, runtime: RuntimeConfig, item: OutboxItem, reply: str,
                when: datetime) -> None:
    """The server accepted ``item`` with ``reply``: mark it sent, resolve its delay record,
    add ``outbox.sent``."""
    assert item.id is not None
    tx.mark_sent(item.id, when)
    errors.resolve_delays(tx, runtime, outbox_id=item.id, when=when)
    tx.add_event("outbox.sent", item.account, {
        "outbox": item.id, "recipient": item.recipient, "message_id": item.message_id,
        "kind": item.kind, "conversationmessage": item.conversation_message_id,
        "reply": reply})


def record_retry(tx: Tx, runtime: RuntimeConfig, item: OutboxItem, error: str, next_at: datetime,
                  now: datetime) -> None:
    """A transient failure: schedule ``item`` for ``next_at``; the first one also records a
    ``delivery_delayed`` error on its message follower. Adds ``outbox.retry``."""
    assert item.id is not None
    tx.mark_retry(item.id, error, next_at)
    if item.attempts == 0:
        errors.record_error(
            tx, runtime, kind=ErrorKind.DELIVERY_DELAYED,
            text=f"delivery to {item.recipient} is delayed and will be retried: {error}",
            when=now, message_follower_id=item.message_follower_id,
            recipient=item.recipient, outbox_id=item.id)
    tx.add_event("outbox.retry", item.account, {
        "outbox": item.id, "recipient": item.recipient, "attempts": item.attempts + 1,
        "error": error, "next_attempt_at": next_at.isoformat()})


def record_failure(tx: Tx, runtime: RuntimeConfig, item: OutboxItem, error: str, now: datetime,
                    recipient_refused: bool) -> None:
    """``item`` failed for good: mark it failed, resolve its delay record, record a
    ``delivery`` error; a refused recipient also marks the follower ``failing``. Adds
    ``outbox.failed``."""
    assert item.id is not None
    tx.mark_failed(item.id, error)
    errors.resolve_delays(tx, runtime, outbox_id=item.id, when=now)
    errors.record_error(tx, runtime, kind=ErrorKind.DELIVERY, text=error, when=now,
                        message_follower_id=item.message_follower_id,
                        recipient=item.recipient, outbox_id=item.id)
    if recipient_refused and item.message_follower_id is not None:
        follower_id = errors.follower_of(tx, runtime, item.message_follower_id)
        if follower_id is not None:
            errors.mark_failing(tx, runtime, follower_id)
    tx.add_event("outbox.failed", item.account, {
        "outbox": item.id, "recipient": item.recipient, "message_id": item.message_id,
        "conversationmessage": item.conversation_message_id, "error": error})


def record_sent_copy_failed(tx: Tx, account_id: str, count: int, error: str) -> None:
    """The copies of a round could not be put in the Sent folder (the mail went out)."""
    tx.add_event("outbox.sent_copy_failed", account_id, {"count": count, "error": error})
