"""The object API's lookups, with the checks that make a typo an error.

``GET /api/v1/objects/<limetype>`` used to answer ``[]`` for a misspelt limetype
(``persn``) or property (``?subjct=x``), which reads as "no such records". Here an
unknown limetype is 404 (:mod:`daemon.crm.limetypes`) and a filter on a property that
neither the runtime configuration gives the limetype nor any of its newest :data:`SAMPLE`
objects has is 400 naming it. The sample
keeps the check one indexed query; a property only very old objects carry is the price.
"""

from __future__ import annotations

__all__ = ["SAMPLE", "find_objects", "get_object"]

from collections.abc import Mapping
from typing import Any

from daemon.crm.limetypes import is_known_limetype, runtime_properties
from daemon.http.input import ApiError
from daemon.store.base import Obj, Tx

SAMPLE = 200


def _known(tx: Any, runtime: Any, limetype: str) -> None:
    if not is_known_limetype(tx, runtime, limetype):
        raise ApiError("limetype", f"unknown limetype {limetype!r}", 404)


def find_objects(tx: Tx, runtime: Any, limetype: str, where: Mapping[str, Any], *,
                 after: int, limit: int, newest_first: bool) -> list[Obj]:
    """One page of ``limetype`` objects matching ``where`` (in the store's thread)."""
    _known(tx, runtime, limetype)
    if where:
        seen = {"id", *runtime_properties(runtime, limetype)}
        for obj in tx.find(limetype, {}, limit=SAMPLE, newest_first=True):
            seen.update(obj.props)
        unknown = sorted(set(where) - seen)
        if unknown:
            raise ApiError(unknown[0], f"no {limetype} has this property")
    return tx.find_page(limetype, where, after_id=after, limit=limit,
                        newest_first=newest_first)


def get_object(tx: Tx, runtime: Any, limetype: str, object_id: int) -> Obj | None:
    """The object, None when absent; ApiError 404 for an unknown limetype."""
    _known(tx, runtime, limetype)
    return tx.get(limetype, object_id)
