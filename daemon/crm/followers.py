"""Followers: everyone on a conversation, and who took part in each message.

From, To and Cc of a message become followers of its conversation (one follower per
address per conversation), each linked to its follower parents (``person``, ``coworker``,
found by address). Our own addresses and aliases never become followers. A follower who
unsubscribed stays unsubscribed; one who had gone inactive becomes active again when they
write. Every address also gets a message follower row with its participation level.
"""

from __future__ import annotations

__all__ = ["Participant", "add_followers", "followers_by_address", "participants"]

from dataclasses import dataclass
from typing import Any

from daemon.mail.model import ParsedMessage
from daemon.store.base import Obj, Tx


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


def followers_by_address(tx: Tx, runtime: Any, conversation_id: int) -> dict[str, Obj]:
    """The conversation's followers by address.

    Looked up by conversation alone (a conversation has a handful of followers), never by
    address: one address can follow thousands of conversations (a colleague always in
    Cc), and a lookup that starts from the address index then scans all of them.
    """
    fcfg = runtime.follower
    return {str(f.get(fcfg.property_address)): f
            for f in tx.find(fcfg.limetype, {fcfg.relation_conversation: conversation_id})}


def add_followers(tx: Tx, runtime: Any, conversation_id: int, message_id: int,
                  message_email_id: str | None, people: list[Participant]
                  ) -> list[tuple[int, Participant]]:
    """Find or create the followers of ``people`` and a message follower for each.

    Returns:
        ``(follower id, participant)`` pairs, in the order given.
    """
    fcfg, mfcfg = runtime.follower, runtime.message_follower
    existing = followers_by_address(tx, runtime, conversation_id)
    result = []
    for person in people:
        follower = existing.get(person.email)
        if follower is None:
            links, known_name = _follower_parents(tx, runtime, person.email)
            props = {
                fcfg.relation_conversation: conversation_id,
                fcfg.property_address: person.email,
                fcfg.property_name: person.name or known_name,
                fcfg.property_active: True,
                fcfg.property_subscribed: True,
                **links,
            }
            follower_id = tx.create(fcfg.limetype, props)
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
