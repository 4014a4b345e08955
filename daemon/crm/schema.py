"""Which lookups the importer makes, so the store can index them up front."""

from __future__ import annotations

__all__ = ["lookup_indexes"]

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from daemon.config import RuntimeConfig


def lookup_indexes(runtime: RuntimeConfig) -> list[tuple[str, str, bool]]:
    """``(limetype, property, unique)`` for every property the pipeline searches by."""
    cm, f, mf = runtime.conversation_message, runtime.follower, runtime.message_follower
    indexes = [
        (cm.limetype, cm.property_email_id, False),
        (cm.limetype, cm.relation_conversation, False),
        (cm.limetype, cm.property_unique_id, True),
        (f.limetype, f.relation_conversation, False),
        (mf.limetype, mf.property_message_id, False),
        (mf.limetype, mf.relation_conversation_message, False),
        (mf.limetype, mf.relation_follower, False),
    ]
    for follower_parent in runtime.follower_parents:
        indexes.append((follower_parent.limetype, follower_parent.property_address, False))
    for parent in runtime.conversation_parents:
        number = runtime.crm.number_property(parent.limetype)
        if number is not None:
            indexes.append((parent.limetype, number, False))
        for entry in parent.properties:
            if entry.search_path and entry.message_property:
                limetype, _, prop = entry.search_path.partition(".")
                indexes.append((limetype, prop.split(".")[0], False))
    return list(dict.fromkeys(indexes))
