"""Query strings of the API's lists: cursor paging, and no unknown parameter.

Every list takes ``_after`` (an id: answer only items with a larger id, in id order) and
``_limit`` (1 to :data:`LIMIT_MAX`, default :data:`LIMIT_DEFAULT`); the next page starts
after the last id of this one. A parameter the route does not know is refused with 400
naming it: ``?subjct=x`` silently matching nothing would look like "no such records".
"""

from __future__ import annotations

__all__ = ["LIMIT_DEFAULT", "LIMIT_MAX", "PAGING", "page_arguments", "refuse_unknown"]

from collections.abc import Iterable

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
                         low=1, high=LIMIT_MAX)
    return after, limit, {k: request.args[k] for k in allowed if k in request.args}
