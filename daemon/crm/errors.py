"""Error records: the one writer of ``conversationmessageerror`` and of ``follower.failing``.

The reference's conversation feed shows what went wrong with a message: an import that
failed, a bounce, a delivery the server refused, a delivery that is delayed. Four parts
of the daemon notice such things (the importer, the bounce matcher, the outbox and the
HTTP route an agent resolves them through); they all write through this module, so the
shape of a record, which failures mark the follower ``failing`` and what "resolved"
means are decided in one place.

Every function here runs inside a store transaction (the store's worker thread) and
never commits by itself: the caller's transaction makes the record and the rest of its
bookkeeping (an outbox item marked failed, a raw message kept) one atomic change.

The record (names from the runtime configuration's ``conversationMessageError``):
``type`` (an :class:`ErrorKind`), ``errormessage``, ``date``, the ``messagefollower`` it
hit (none for a failed import), and when known the ``recipient``, the bounce's
``status`` (``5.1.1``) and the ``outbox`` item. Resolving sets ``resolveddate`` and the
resolving ``coworker``; a delayed delivery is resolved by the daemon itself once the item
is sent or fails for good.
"""

from __future__ import annotations

__all__ = ["ErrorKind", "follower_of", "mark_failing", "record_error", "resolve",
           "resolve_delays"]

import enum
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from daemon.config.runtime import RuntimeConfig
from daemon.store.base import Obj, Tx


class ErrorKind(enum.StrEnum):
    """The ``type`` of an error record."""

    IMPORT = "import"                      # the message could not be processed
    BOUNCE = "bounce"                      # a delivery status notification came back
    DELIVERY = "delivery"                  # the outbox gave up on (or was refused) a copy
    DELIVERY_DELAYED = "delivery_delayed"  # the outbox will retry; resolved when it ends


@dataclass(frozen=True, slots=True)
class _Names:
    """The property names of a record's extras and of the follower's flag."""

    recipient: str
    status: str
    outbox: str
    failing: str


def _names(runtime: RuntimeConfig) -> _Names:
    """The one place those names come from: the ``[crm]`` table (daemon/config/crm.py)."""
    crm = runtime.crm
    return _Names(recipient=crm.error_recipient, status=crm.error_status,
                  outbox=crm.error_outbox, failing=crm.follower_failing)


def record_error(tx: Tx, runtime: RuntimeConfig, *, kind: ErrorKind, text: str,
                 when: datetime, message_follower_id: int | None = None,
                 recipient: str | None = None, status: str | None = None,
                 outbox_id: int | None = None, reason: str | None = None,
                 permanent: bool | None = None) -> int:
    """Create one error record and return its id.

    Args:
        kind: what went wrong.
        text: the ``errormessage`` an agent reads (never a secret).
        when: the record's ``date``.
        message_follower_id: the copy it hit; None for a failed import.
        recipient, status, outbox_id: kept when given (an address, a DSN status such
            as ``5.1.1``, the outbox item), left out otherwise.
        reason, permanent: a bounce's reason category (``user-unknown``,
            ``mailbox-full``...) and whether it is permanent, kept as ``reason`` and
            ``permanent`` when given.
    """
    ecfg = runtime.conversation_message_error
    props: dict[str, Any] = {ecfg.property_type: kind.value,
                             ecfg.property_error_message: text,
                             ecfg.property_date: when.isoformat()}
    names = _names(runtime)
    optional = {ecfg.relation_message_follower: message_follower_id,
                names.recipient: recipient, names.status: status, names.outbox: outbox_id,
                "reason": reason, "permanent": permanent}
    props.update((key, value) for key, value in optional.items() if value is not None)
    return tx.create(ecfg.limetype, props)


def follower_of(tx: Tx, runtime: RuntimeConfig, message_follower_id: int) -> int | None:
    """The follower behind a message follower, or None when either is gone."""
    mfcfg, fcfg = runtime.message_follower, runtime.follower
    row = tx.get(mfcfg.limetype, message_follower_id)
    follower_id = row.get(mfcfg.relation_follower) if row is not None else None
    if type(follower_id) is not int or tx.get(fcfg.limetype, follower_id) is None:
        return None
    return follower_id


def mark_failing(tx: Tx, runtime: RuntimeConfig, follower_id: int) -> None:
    """Set the follower's ``failing`` flag: mail to this address cannot be delivered, so
    later sends can warn. Nothing is cleared here; an agent clears it in the CRM."""
    tx.update(runtime.follower.limetype, follower_id, {_names(runtime).failing: True})


def resolve_delays(tx: Tx, runtime: RuntimeConfig, *, outbox_id: int,
                   when: datetime) -> None:
    """Mark the open ``delivery_delayed`` records of one outbox item resolved at ``when``
    (the item was sent, or failed for good and has a ``delivery`` record now)."""
    ecfg = runtime.conversation_message_error
    delayed = {_names(runtime).outbox: outbox_id,
               ecfg.property_type: ErrorKind.DELIVERY_DELAYED.value}
    for record in tx.find(ecfg.limetype, delayed):
        if not record.get(ecfg.property_resolved_date):
            tx.update(ecfg.limetype, record.id, {ecfg.property_resolved_date: when.isoformat()})


def resolve(tx: Tx, runtime: RuntimeConfig, error_id: int, *, coworker: int | None,
            when: datetime) -> Obj | None:
    """A coworker resolves an error record; returns it, or None when there is none.

    Resolving twice keeps the first resolution (its date and coworker). The first one
    adds the event ``error.resolved``.
    """
    ecfg = runtime.conversation_message_error
    record = tx.get(ecfg.limetype, error_id)
    if record is None:
        return None
    if record.get(ecfg.property_resolved_date) is None:
        tx.update(ecfg.limetype, error_id, {ecfg.property_resolved_date: when.isoformat(),
                                            ecfg.relation_resolved_by: coworker})
        tx.add_event("error.resolved", None, {"id": error_id, "coworker": coworker})
    return tx.get(ecfg.limetype, error_id)


def open_errors(tx: Tx, runtime: RuntimeConfig, *, limit: int) -> list[Obj]:
    """The error records nobody resolved yet, newest first (the status page's list)."""
    ecfg = runtime.conversation_message_error
    return tx.find(ecfg.limetype, {ecfg.property_resolved_date: None}, limit=limit,
                   newest_first=True)
