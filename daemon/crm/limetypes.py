"""Which limetypes exist: a typo (``persn``) must be an error, not an empty list.

A limetype is known when the runtime configuration names it (every ``limetype`` of its
sections, and the first step of a ``search_path``) or when the store holds an object of
it (seed objects such as ``company`` need no runtime entry). Anything else is unknown.
"""

from __future__ import annotations

__all__ = ["is_known_limetype", "runtime_limetypes", "runtime_properties"]

from typing import Any

from pydantic import BaseModel


def runtime_limetypes(runtime: Any) -> frozenset[str]:
    """Every limetype the runtime configuration names."""
    found: set[str] = set()
    _walk(runtime, found)
    return frozenset(found)


def runtime_properties(runtime: Any, limetype: str) -> frozenset[str]:
    """Property names the runtime configuration gives ``limetype`` (its ``property_*`` and
    ``relation_*`` values, in every section about that limetype)."""
    found: set[str] = set()
    _walk_properties(runtime, limetype, found)
    return frozenset(found)


def _walk_properties(value: Any, limetype: str, found: set[str]) -> None:
    if isinstance(value, BaseModel):
        names = type(value).model_fields
        if "limetype" in names and getattr(value, "limetype", None) == limetype:
            found.update(getattr(value, n) for n in names
                         if n.startswith(("property_", "relation_"))
                         and isinstance(getattr(value, n), str))
        for name in names:
            _walk_properties(getattr(value, name), limetype, found)
    elif isinstance(value, list | tuple):
        for item in value:
            _walk_properties(item, limetype, found)


def is_known_limetype(tx: Any, runtime: Any, limetype: str) -> bool:
    """True when ``runtime`` names ``limetype`` or ``tx`` holds an object of it."""
    return limetype in runtime_limetypes(runtime) or bool(tx.find(limetype, {}, limit=1))


def _walk(value: Any, found: set[str]) -> None:
    if isinstance(value, BaseModel):
        for name in type(value).model_fields:
            item = getattr(value, name)
            if name == "limetype" and isinstance(item, str):
                found.add(item)
            elif name == "search_path" and isinstance(item, str) and item:
                found.add(item.partition(".")[0])
            else:
                _walk(item, found)
    elif isinstance(value, list | tuple):
        for item in value:
            _walk(item, found)
