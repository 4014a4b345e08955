"""Followers: everyone on a conversation, and who took part in each message.

From, To and Cc of a message become followers of its conversation (one follower per
address per conversation), each linked to its follower parents (``person``, ``coworker``,
found by address). Our own addresses and aliases never become followers. A follower who
unsubscribed stays unsubscribed; one who had gone inactive becomes active again when they
write. Every address also gets a message follower row with its participation level.

Followers and strangers: an address in the To or Cc of a mail from anyone on the internet
is only a claim. A follower the importer creates is marked ``vouched = false`` unless a
coworker stands behind it (the author of an agent's reply is); :func:`is_vouched` decides
who may receive copies of *incoming* mail, and :func:`vouch` records that an agent's reply
went to a follower. ``max_new`` caps how many followers one message may create: the rest
are returned unadded, for the caller to record.
"""

from __future__ import annotations

__all__ = [
    "VOUCHED",
    "Participant",
    "add_followers",
    "followers_by_address",
    "is_vouched",
    "participants",
    "vouch",
]

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from daemon.crm.relations import append_related
from daemon.mail.model import ParsedMessage
from daemon.store.base import Obj, Tx

if TYPE_CHECKING:
    from daemon.config import RuntimeConfig

#: The follower property saying a coworker stands behind the address (absent: the CRM
#: created the follower, which a coworker did).
VOUCHED = "vouched"


@dataclass(frozen=True, slots=True)
class Participant:
    email: str
    name: str
    level: str  # from | to | cc


def participants(message: ParsedMessage, own_addresses: frozenset[str]) -> list[Participant]:
    """From, To and Cc in that order, each address once (first role wins), ours left out."""
    seen: set[str] = set()
    result = []
    groups = [("from", [message.from_] if message.from_ else []), ("to", message.to),
              ("cc", message.cc)]
    for level, addresses in groups:
        for address in addresses:
            email = address.email
            if not email or email in seen or email in own_addresses:
                continue
            seen.add(email)
            result.append(Participant(email, address.name, level))
    return result


def followers_by_address(tx: Tx, runtime: RuntimeConfig, conversation_id: int) -> dict[str, Obj]:
    """The conversation's followers by address.

    Looked up by conversation alone (a conversation has a handful of followers), never by
    address: one address can follow thousands of conversations (a colleague always in
    Cc), and a lookup that starts from the address index then scans all of them.
    """
    fcfg = runtime.follower
    return {str(f.get(fcfg.property_address)): f
            for f in tx.find(fcfg.limetype, {fcfg.relation_conversation: conversation_id})}


def add_followers(tx: Tx, runtime: RuntimeConfig, conversation_id: int, message_id: int,
                  message_email_id: str | None, people: list[Participant], *,
                  vouched: bool = False, max_new: int | None = None
                  ) -> list[tuple[int, Participant]]:
    """Find or create the followers of ``people`` and a message follower for each.

    Args:
        vouched: whether a coworker stands behind the new followers (stored as
            ``vouched``; an existing follower is left as it is).
        max_new: create at most this many new followers; people beyond it get neither a
            follower nor a message follower (None: no limit). Existing followers never
            count against it.

    Returns:
        ``(follower id, participant)`` pairs, in the order given; people left out by
        ``max_new`` are missing.
    """
    fcfg, mfcfg = runtime.follower, runtime.message_follower
    existing = followers_by_address(tx, runtime, conversation_id)
    result = []
    created = 0
    for person in people:
        follower = existing.get(person.email)
        if follower is None:
            if max_new is not None and created >= max_new:
                continue
            created += 1
            links, known_name = _follower_parents(tx, runtime, person.email)
            props = {
                fcfg.relation_conversation: conversation_id,
                fcfg.property_address: person.email,
                fcfg.property_name: person.name or known_name,
                fcfg.property_active: True,
                fcfg.property_subscribed: True,
                VOUCHED: vouched,
                **links,
            }
            follower_id = tx.create(fcfg.limetype, props)
            _link_parents(tx, runtime, links, follower_id)
        else:
            follower_id = follower.id
            if not follower.get(fcfg.property_active, True):
                tx.update(fcfg.limetype, follower_id, {fcfg.property_active: True})
        tx.create(mfcfg.limetype, {
            mfcfg.relation_follower: follower_id,
            mfcfg.relation_conversation_message: message_id,
            mfcfg.property_participation_level: person.level,
            mfcfg.property_message_id: message_email_id,
        })
        result.append((follower_id, person))
    return result


def is_vouched(follower: Obj, *, known_people: bool) -> bool:
    """Whether copies of incoming mail may go to ``follower``.

    Yes when a coworker stands behind it: the CRM created it (no ``vouched`` property) or
    it is marked ``vouched`` (an agent's reply went to it), it is a coworker, or — with
    ``known_people`` — it was linked to a CRM person when it was created, so the CRM knew
    the address before the message that named it.
    """
    if follower.get(VOUCHED) is not False:
        return True
    if type(follower.get("coworker")) is int:
        return True
    return known_people and type(follower.get("person")) is int


def vouch(tx: Tx, runtime: RuntimeConfig, followers: list[Obj]) -> None:
    """Mark ``followers`` vouched for (an agent's reply is going to them)."""
    for follower in followers:
        if follower.get(VOUCHED) is False:
            tx.update(runtime.follower.limetype, follower.id, {VOUCHED: True})


def _link_parents(tx: Tx, runtime: Any, links: dict[str, int], follower_id: int) -> None:
    """List the new follower under each follower parent's ``relationFollower``."""
    for parent in runtime.follower_parents:
        if parent.limetype in links:
            append_related(tx, parent.limetype, links[parent.limetype],
                           parent.relation_follower, follower_id)


def _follower_parents(tx: Tx, runtime: Any, email: str) -> tuple[dict[str, int], str]:
    """``{limetype: id}`` for every follower parent with address ``email``, and a name.

    The name is the first non-empty ``propertyName`` among them, for addresses that come
    without a display name.
    """
    links: dict[str, int] = {}
    name = ""
    for parent in runtime.follower_parents:
        found = tx.find_one(parent.limetype, {parent.property_address: email})
        if found is None:
            continue
        links[parent.limetype] = found.id
        name = name or str(found.get(parent.property_name) or "")
    return links, name
