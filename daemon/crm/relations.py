"""The to-many side of a relation: a list of ids on the "one" object.

The store keeps relations as ids on the object that points (a document holds its
message's id). The runtime JSON also names relations seen from the other side:
``conversationParents[].relationDocument`` (the parent's documents) and
``followerParents[].relationFollower`` (a person's followers). Those are kept as a list of
ids on the parent, appended to as objects are created, so a CRM that reads the parent
finds them under the configured name. The list grows with the objects it names (a
colleague always in Cc follows thousands of conversations); each append rewrites it, a
cost paid once per new follower, not per message.
"""

from __future__ import annotations

__all__ = ["append_related"]

from daemon.store.base import Tx


def append_related(tx: Tx, limetype: str, object_id: int, relation: str,
                   related_id: int) -> None:
    """Add ``related_id`` to the id list ``relation`` of ``limetype`` ``object_id``.

    A missing object or an id already listed changes nothing; a property that holds
    something other than a list is replaced by a list.
    """
    obj = tx.get(limetype, object_id)
    if obj is None:
        return
    current = obj.get(relation)
    ids = [i for i in current if type(i) is int] if isinstance(current, list) else []
    if related_id not in ids:
        tx.update(limetype, object_id, {relation: [*ids, related_id]})
