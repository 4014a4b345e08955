"""Who receives a copy of hub mail: the rules, in the order they apply.

1. followers of the conversation that are active and subscribed;
2. never one of our own addresses or aliases (any account's);
3. never the author (``author_email``), except for the automatic reply;
4. for a notification, not a follower who got the incoming mail directly (they were in
   its To or Cc: a second copy would be a duplicate);
5. for a notification, only followers a coworker vouched for
   (:func:`daemon.crm.followers.is_vouched`, with the account's ``notify_known_people``):
   an address that merely appeared in a stranger's To or Cc gets nothing until an agent
   answers; an agent's reply goes to every follower and vouches for them;
6. only addresses in ``only`` when it is given.

Reads the store inside the caller's transaction; writes nothing.
"""

from __future__ import annotations

__all__ = ["Recipient", "active_followers", "recipients_for"]

from dataclasses import dataclass

from daemon.crm.followers import is_vouched
from daemon.outbox.compose import Mailbox
from daemon.outbox.outgoing import Outgoing
from daemon.store.base import Obj, Tx


@dataclass(frozen=True, slots=True)
class Recipient:
    """One follower who is to receive a copy, with the address it goes to."""

    follower_id: int
    mailbox: Mailbox
    follower: Obj


def active_followers(tx: Tx, out: Outgoing, conversation_id: int) -> list[Recipient]:
    """Active followers that are not us, in follower order, each address once."""
    fcfg = out.runtime.follower
    ours = out.own_addresses
    result: dict[str, Recipient] = {}
    for follower in tx.find(fcfg.limetype, {fcfg.relation_conversation: conversation_id}):
        address = str(follower.get(fcfg.property_address) or "").strip().lower()
        if not address or address in ours or follower.get(fcfg.property_active) is False:
            continue
        if follower.get(fcfg.property_subscribed) is False:
            continue
        name = str(follower.get(fcfg.property_name) or "")
        result.setdefault(address, Recipient(follower.id, Mailbox(address, name), follower))
    return list(result.values())


def recipients_for(tx: Tx, out: Outgoing, followers: list[Recipient], *, kind: str,
                author_email: str | None, only: frozenset[str] | None, message_id: int
                ) -> list[Recipient]:
    author = (author_email or "").strip().lower() if kind != "auto_reply" else ""
    allowed = None if only is None else {a.strip().lower() for a in only}
    notification = kind == "notification"
    direct = _direct_recipients(tx, out, message_id) if notification else set()
    known = out.account.notify_known_people
    return [f for f in followers
            if f.mailbox.address != author
            and (allowed is None or f.mailbox.address in allowed)
            and f.follower_id not in direct
            and (not notification or is_vouched(f.follower, known_people=known))]


def _direct_recipients(tx: Tx, out: Outgoing, message_id: int) -> set[int]:
    """Followers who were in the To or Cc of the incoming message itself."""
    mf = out.runtime.message_follower
    rows = tx.find(mf.limetype, {mf.relation_conversation_message: message_id})
    return {row.get(mf.relation_follower) for row in rows
            if row.get(mf.property_participation_level) in ("to", "cc")
            and row.get("direction") != "outgoing"}
