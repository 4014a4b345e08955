"""Seed objects from a JSON file: the demo's persons and companies, test fixtures.

The file maps limetypes to lists of objects. An object may carry ``"_ref": "name"``;
another may point at it with ``{"$ref": "name"}`` as a property value, which becomes the
id. Objects are created in file order. A limetype that already has objects is skipped, so
seeding at every start is harmless.
"""

from __future__ import annotations

__all__ = ["seed_objects"]

from collections.abc import Mapping
from typing import Any

from daemon.store.base import Tx


def seed_objects(tx: Tx, data: Mapping[str, list[Mapping[str, Any]]]) -> int:
    """Create the objects in ``data``; return how many were created."""
    refs: dict[str, int] = {}
    created = 0
    for limetype, objects in data.items():
        if tx.find(limetype, {}, limit=1):
            for obj in tx.find(limetype, {}):
                if "_ref" in obj.props:
                    refs[obj.props["_ref"]] = obj.id
            continue
        for item in objects:
            props = {k: _resolve(v, refs) for k, v in item.items()}
            new_id = tx.create(limetype, props)
            created += 1
            if "_ref" in item:
                refs[item["_ref"]] = new_id
    return created


def _resolve(value: Any, refs: Mapping[str, int]) -> Any:
    if isinstance(value, Mapping) and set(value) == {"$ref"}:
        return refs.get(value["$ref"])
    return value
