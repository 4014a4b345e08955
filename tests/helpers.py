"""Functions the tests of several directories share; the shared fixtures are in
tests/conftest.py.

* :func:`wait_for_status`: event-driven waits on any status with a ``changed`` event
  (an account's :class:`~daemon.actors.status.AccountStatus`, the outbox's
  :class:`~daemon.actors.outbox.OutboxStatus`): no sleeps, no polling.
"""

from __future__ import annotations

__all__ = ["wait_for_status"]

from collections.abc import Callable
from typing import Any, Protocol, TypeVar

import trio


class _Changing(Protocol):
    @property
    def changed(self) -> trio.Event: ...


S = TypeVar("S", bound=_Changing)


async def wait_for_status(status: S, predicate: Callable[[S], Any], *,
                          seconds: float | None = None) -> None:
    """Return once ``predicate(status)`` holds; re-checked on every status change.

    Args:
        seconds: fail (``trio.TooSlowError``) after this long; None leaves the deadline
            to the caller (the drills set their own, and under ``autojump_clock`` a
            deadline here would be virtual time).
    """
    with trio.fail_after(seconds) if seconds is not None else trio.CancelScope():
        while not predicate(status):
            await status.changed.wait()
