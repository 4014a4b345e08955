"""A conversation parent's properties, mapped from a message as the runtime config says.

Each entry of ``conversationParents[].properties`` has one of these forms (the reference's
"Runtime Configuration Reference")::

    {"property": "subject", "messageProperty": "subject"}          # a message value
    {"property": "person", "messageProperty": "fromAddress",
     "searchPath": "person.email"}                                 # look an object up by it
    {"property": "company", "searchPath": "person.company"}        # follow a relation
    {"property": "source", "default": "email"}                     # a constant
    {"property": "x", "messageProperty": "subject", "default": "-"}  # value or default

The reference's simplified form (``{"subject": "email_subject", "person": "sender_email"}``)
arrives here already expanded into these entries
(:func:`daemon.config.runtime.expand_simplified_properties`).

A search that finds nothing leaves the property empty (or at its default); it never fails
the import. Entries are applied in order, so a relation can be followed from a property an
earlier entry set.
"""

from __future__ import annotations

__all__ = ["map_parent_properties", "message_properties"]

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from daemon.mail.model import ParsedMessage
from daemon.store.base import Tx

if TYPE_CHECKING:
    from daemon.config.runtime import PropertyMapping


def message_properties(message: ParsedMessage) -> dict[str, Any]:
    """Every value a ``messageProperty`` may name, computed once per message."""
    sender = message.from_
    return {
        "subject": message.subject,
        "plainText": message.text,
        "htmlBody": message.html,
        "fromAddress": sender.email if sender else None,
        "fromName": sender.name if sender else None,
        "toAddresses": ", ".join(a.email for a in message.to),
        "ccAddresses": ", ".join(a.email for a in message.cc),
        "date": message.date.isoformat() if message.date else None,
        "messageId": message.message_id,
        "language": message.header("content-language"),
    }


def map_parent_properties(tx: Tx, mappings: Sequence[PropertyMapping], values: Mapping[str, Any]
                          ) -> dict[str, Any]:
    """Apply a parent's property mappings.

    Args:
        tx: the open transaction, for searchPath lookups.
        mappings: ``conversationParents[].properties`` entries (runtime config models).
        values: :func:`message_properties` of the message.

    Returns:
        The parent's properties. A relation property holds the related object's id.
    """
    props: dict[str, Any] = {}
    targets: dict[str, str] = {}  # property -> limetype it points at
    for entry in mappings:
        value = values.get(entry.message_property) if entry.message_property else None
        if entry.search_path:
            limetype, _, path = entry.search_path.partition(".")
            if entry.message_property:
                value = _search(tx, limetype, path, value)
                targets[entry.property] = limetype
            else:
                value = _follow(tx, props, targets, limetype, path)
        if value in (None, "") and entry.default is not None:
            value = entry.default
        if value is not None:
            props[entry.property] = value
    return props


def _search(tx: Tx, limetype: str, path: str, value: Any) -> int | None:
    """The id of the first ``limetype`` whose ``path`` equals ``value``."""
    if value in (None, ""):
        return None
    found = tx.find_one(limetype, {path: value})
    return found.id if found else None


def _follow(tx: Tx, props: Mapping[str, Any], targets: Mapping[str, str], start: str,
            path: str) -> Any:
    """Follow ``start.path`` from a property set earlier (``person.company``).

    ``start`` names an earlier property of this parent; its limetype is the one its own
    searchPath named, or else a limetype of the same name. Each further step reads a
    relation id and loads that object.
    """
    current_id = props.get(start)
    limetype = targets.get(start, start)
    steps = path.split(".")
    for i, step in enumerate(steps):
        if not isinstance(current_id, int):
            return None
        obj = tx.get(limetype, current_id)
        if obj is None:
            return None
        value = obj.get(step)
        if i == len(steps) - 1:
            return value
        current_id, limetype = value, step
    return None
