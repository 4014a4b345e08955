"""Query strings of the API's lists: cursor paging, and no unknown parameter.

Every list takes ``_after`` (an id: answer only items with a larger id, in id order) and
``_limit`` (1 to :data:`LIMIT_MAX`, default :data:`LIMIT_DEFAULT`); the next page starts
after the last id of this one. A parameter the route does not know is refused with 400
naming it: ``?subjct=x`` silently matching nothing would look like "no such records".
"""

from __future__ import annotations

__all__ = ["LIMIT_DEFAULT", "LIMIT_MAX", "PAGING", "page_arguments", "page_by_name",
           "refuse_unknown"]

from collections.abc import Callable, Iterable
from typing import Any

from quart import request

from daemon.http.input import ApiError, path_id, whole_number

LIMIT_DEFAULT = 100
LIMIT_MAX = 1000
PAGING = ("_after", "_limit")


def refuse_unknown(allowed: Iterable[str]) -> None:
    """400 naming every query parameter not in ``allowed``."""
    unknown = sorted(set(request.args) - set(allowed))
    if unknown:
        raise ApiError(unknown[0], "unknown query parameter"
                       + (f"s: {', '.join(unknown)}" if len(unknown) > 1 else ""))


def page_arguments(*, allowed: Iterable[str] = ()) -> tuple[int, int, dict[str, str]]:
    """``(after, limit, other parameters)``; refuses unknown ones (see the docstring)."""
    allowed = tuple(allowed)
    refuse_unknown((*allowed, *PAGING))
    after_text = request.args.get("_after")
    after = 0 if after_text in (None, "0") else path_id("_after", after_text)
    limit = whole_number("_limit", request.args.get("_limit", str(LIMIT_DEFAULT)),
                         low=0, high=LIMIT_MAX)
    return after, limit, {k: request.args[k] for k in allowed if k in request.args}


def page_by_name(items: list[dict[str, Any]], key: str, *,
                 cursor: Callable[[str], Any] = str) -> list[dict[str, Any]]:
    """A page of an in-memory list, in the list's order (accounts, actions, snippets).

    ``_after`` names the last item of the previous page (``cursor`` turns the text into
    the key's type); an ``_after`` that names nothing is 400.
    """
    limit = whole_number("_limit", request.args.get("_limit", str(LIMIT_DEFAULT)),
                         low=0, high=LIMIT_MAX)
    after = request.args.get("_after")
    start = 0
    if after is not None:
        names = [item[key] for item in items]
        try:
            start = names.index(cursor(after)) + 1
        except ValueError:
            raise ApiError("_after", f"no item {after!r} in this list") from None
    return items[start:start + limit]
