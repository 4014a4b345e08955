"""Queueing hub mail: one composed email per follower, durably, inside the caller's transaction.

The hub model (the reference's "conversation" with followers): whoever writes into a
conversation, every other active, subscribed follower gets a copy from the account's
address, so the conversation stays one thread for everyone. :func:`queue_to_followers` is
the one entry point, called inside a store transaction:

* by the API, for an agent's reply (``kind="reply"``, :mod:`daemon.outbox.reply`);
* by the importer, for a hub notification when a follower wrote (``"notification"``) and
  for the automatic reply to a new conversation (``"auto_reply"``).

For each recipient it creates the outgoing *message follower* row, signs a Message-ID
that names that row (:func:`daemon.mail.ids.make_message_id`), threads the copy onto that
follower's own last message (In-Reply-To / References), renders the account's template,
builds the complete RFC 5322 bytes and enqueues them. The bytes are final at this point:
the outbox actor only ever sends what was stored, so a retry after a crash or restart
sends the identical message with the identical Message-ID, and a bounce or an answer
finds its way back to the row through that id. Because everything happens in the
caller's transaction, mail is queued exactly when the message it belongs to is committed.

Who receives a copy is decided by :mod:`daemon.outbox.recipients` (its docstring lists
the rules); what every copy shares by :mod:`daemon.outbox.content`; each copy is made and
queued by :mod:`daemon.outbox.copies`. The composer of one account is
:class:`~daemon.outbox.outgoing.Outgoing`.

Automatic mail (notifications and automatic replies) counts against the account's
sliding-hour budget (:mod:`daemon.outbox.budget`); copies beyond it are queued ``held``.
"""

from __future__ import annotations

__all__ = [
    "KINDS",
    "REFERENCES_LIMIT",
    "Outgoing",
    "StoreObject",
    "mail_queuer",
    "queue_to_followers",
]

from collections.abc import Callable
from datetime import datetime
from typing import TYPE_CHECKING, Any

from daemon.crm.followers import vouch
from daemon.outbox.budget import HELD, take_automatic_mail_budget
from daemon.outbox.content import StoreObject, content_for
from daemon.outbox.copies import KINDS, REFERENCES_LIMIT, queue_one
from daemon.outbox.outgoing import Outgoing
from daemon.outbox.recipients import active_followers, recipients_for
from daemon.store.base import Obj, Tx

if TYPE_CHECKING:
    from daemon.config.load import Config


def mail_queuer(config: Config, secret: bytes, *, now: Callable[[], datetime] | None = None
                ) -> Callable[..., list[int]]:
    """``queue_mail(tx, account_id, **kwargs)`` for the importer's ``Processing.queue_mail``.

    Keeps one :class:`Outgoing` per account and passes ``kwargs`` on to
    :func:`queue_to_followers`.
    """
    composers: dict[str, Outgoing] = {}

    def queue_mail(tx: Tx, account_id: str, **kwargs: Any) -> list[int]:
        out = composers.get(account_id)
        if out is None:
            out = composers[account_id] = Outgoing.from_config(config, secret, account_id,
                                                               now=now)
        return queue_to_followers(tx, out, **kwargs)

    return queue_mail


def queue_to_followers(tx: Tx, out: Outgoing, *, conversation_id: int,
                       conversation_message_id: int, kind: str, author_email: str | None,
                       only: frozenset[str] | None = None) -> list[int]:
    """Compose and enqueue one email per active, subscribed follower of the conversation.

    Leaves out the author and our own addresses and aliases (see :mod:`daemon.outbox.recipients`
    for every rule); ``only`` restricts the recipients further (the automatic reply goes to its
    sender only). Creates the outgoing message follower rows
    (``participationlevel`` ``to``, ``direction`` ``outgoing``, ``kind``) with their
    ``messageid`` and ``queueid``. Runs inside the caller's transaction; does no I/O
    besides the store.

    Args:
        tx: the open transaction.
        out: the account's composer.
        conversation_id: the conversation.
        conversation_message_id: the message this mail carries (the agent's reply, the
            follower's incoming message) or answers (the automatic reply).
        kind: ``reply`` (an agent), ``notification`` (another follower wrote) or
            ``auto_reply``.
        author_email: who wrote the message; never gets a copy (ignored for
            ``auto_reply``).
        only: when given, the addresses (any case) that may receive a copy.

    Returns:
        The outbox ids, in follower order (any ``held`` ones last); empty when nobody
        is to receive a copy.

    Raises:
        ValueError: an unknown ``kind``, or no such conversation or message.
        OutgoingTooLarge: an agent's reply is larger than ``max_outgoing_bytes`` (nothing
            is queued if the caller lets the transaction roll back). Automatic mail that
            is too large is sent without its attachments, or, if still too large, not at
            all (event ``outbox.skipped``).
    """
    if kind not in KINDS:
        raise ValueError(f"kind: must be one of {', '.join(KINDS)}, not {kind!r}")
    rt = out.runtime
    conversation = _require(tx, rt.conversation.limetype, conversation_id, "conversation_id")
    message = _require(tx, rt.conversation_message.limetype, conversation_message_id,
                       "conversation_message_id")
    followers = active_followers(tx, out, conversation_id)
    recipients = recipients_for(tx, out, followers, kind=kind, author_email=author_email,
                             only=only, message_id=conversation_message_id)
    if not recipients:
        return []
    if kind == "reply":
        vouch(tx, rt, [r.follower for r in recipients])
    content = content_for(tx, out, kind, conversation, message, followers)
    budget = (len(recipients) if kind == "reply" else
              take_automatic_mail_budget(tx, out.account, out.now(), len(recipients)))
    ids: list[int] = []
    held: list[int] = []
    for n, recipient in enumerate(recipients):
        others = tuple(r.mailbox for r in recipients if r is not recipient)
        queued = queue_one(tx, out, kind, conversation, message.id, content, recipient,
                            others, tuple(f.mailbox for f in followers),
                            status="queued" if n < budget else HELD)
        if queued is not None:
            (ids if n < budget else held).append(queued)
    if ids:
        tx.add_event("outbox.queued", out.account_id, {
            "kind": kind, "conversation": conversation_id,
            "conversationmessage": conversation_message_id, "outbox": ids})
    if held:
        tx.add_event("outbox.held", out.account_id, {
            "kind": kind, "conversation": conversation_id,
            "conversationmessage": conversation_message_id, "outbox": held,
            "reason": "automatic_mail_per_hour reached"})
    return ids + held


def _require(tx: Tx, limetype: str, id: int, name: str) -> Obj:
    obj = tx.get(limetype, id)
    if obj is None:
        raise ValueError(f"{name}: no {limetype} with id {id}")
    return obj
