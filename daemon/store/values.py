"""How Python values become stored values, shared by the SQLite and PostgreSQL stores.

Names that end up inside SQL text (limetypes and property names used in lookups and index
definitions) are checked against :data:`NAME_RE`, so they can be spliced in as literals:
both databases only use an expression index when the query repeats the index expression
and its partial ``WHERE limetype = '...'`` clause literally.

Lookup values are JSON scalars, classified by :func:`where_kind` so each backend can compare
them by JSON type (``True`` never matches ``1``, ``"1"`` never matches ``1``).
"""

from __future__ import annotations

__all__ = [
    "NAME_RE",
    "WhereKind",
    "check_name",
    "dumps",
    "loads",
    "utc",
    "where_kind",
]

import enum
import re
from datetime import UTC, datetime
from typing import Any

import orjson

#: Limetype and property names usable in lookups and indexes (no quoting needed anywhere).
NAME_RE = re.compile(r"[A-Za-z0-9_]+")

loads = orjson.loads


def dumps(value: Any) -> str:
    """Serialise ``value`` as compact JSON text.

    Raises:
        TypeError: ``value`` holds something JSON cannot represent (or a non-str key).
    """
    return orjson.dumps(value).decode()


def check_name(name: str, what: str) -> str:
    """Return ``name`` if it is safe to splice into SQL, else raise ValueError.

    Args:
        name: a limetype or property name.
        what: what the name is, for the error message (``"limetype"``, ``"property"``).
    """
    if not isinstance(name, str) or NAME_RE.fullmatch(name) is None:
        raise ValueError(f"{what} name must match [A-Za-z0-9_]+, got {name!r}")
    return name


class WhereKind(enum.Enum):
    """The JSON type a lookup value is compared as."""

    NULL = "null"       # matches a missing property or a JSON null
    TRUE = "true"
    FALSE = "false"
    NUMBER = "number"   # int or float; 1 matches 1.0, never true
    TEXT = "text"


def where_kind(prop: str, value: Any) -> WhereKind:
    """Classify a lookup value.

    Raises:
        TypeError: ``value`` is not a JSON scalar (str, int, float, bool or None).
    """
    if value is None:
        return WhereKind.NULL
    if value is True:
        return WhereKind.TRUE
    if value is False:
        return WhereKind.FALSE
    if isinstance(value, str):
        return WhereKind.TEXT
    if isinstance(value, int | float):
        return WhereKind.NUMBER
    raise TypeError(f"lookup value for {prop!r} must be a JSON scalar, got {type(value).__name__}")


def utc(value: datetime | None, name: str) -> datetime | None:
    """Return an aware datetime in UTC, or None.

    Naive datetimes are refused rather than guessed at: a local time taken for UTC would
    shift retries and event times by hours without any error.

    Raises:
        ValueError: ``value`` is naive.
    """
    if value is None:
        return None
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError(f"{name} must be a timezone-aware datetime")
    return value.astimezone(UTC)
