"""Unread tracking: ``conversation.propertyEarliestUnread``.

The property holds the date of the earliest incoming message of the conversation that
nobody has answered or marked read yet; empty (null) when there is none. An incoming
person's message sets it when it is empty (an older unread date stays: it is the
earliest); an agent's reply (:func:`daemon.outbox.reply.queue_reply`) or
``POST /api/v1/conversations/{id}/read`` clears it. Automatic mail, bounces and our own
mail never set it: nobody has to answer them.
"""

from __future__ import annotations

__all__ = ["mark_read", "note_unread"]

from typing import Any

from daemon.store.base import Tx


def note_unread(tx: Tx, runtime: Any, conversation_id: int, date: str) -> None:
    """Record an incoming message dated ``date`` (ISO 8601) as unread, if none is."""
    ccfg = runtime.conversation
    conversation = tx.get(ccfg.limetype, conversation_id)
    if conversation is not None and not conversation.get(ccfg.property_earliest_unread):
        tx.update(ccfg.limetype, conversation_id, {ccfg.property_earliest_unread: date})


def mark_read(tx: Tx, runtime: Any, conversation_id: int) -> bool:
    """Clear the conversation's earliest unread date; False when it does not exist."""
    ccfg = runtime.conversation
    if tx.get(ccfg.limetype, conversation_id) is None:
        return False
    tx.update(ccfg.limetype, conversation_id, {ccfg.property_earliest_unread: None})
    return True
