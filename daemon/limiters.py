"""Worker-thread limits shared by every account of one kind within a Trio run.

Blocking libraries (imapclient, smtplib) run in worker threads. Each kind gets one
:class:`trio.CapacityLimiter` for the whole daemon, so a thousand accounts cannot start a
thousand threads, and one kind cannot starve another of Trio's default 40.
"""

from __future__ import annotations

__all__ = ["shared_limiter"]

from collections.abc import Callable

import trio


def shared_limiter(name: str, default_tokens: int) -> Callable[[], trio.CapacityLimiter]:
    """A function returning this Trio run's limiter called ``name`` (made on first use).

    A :class:`trio.lowlevel.RunVar` holds it: limiters belong to one run, and tests start
    many runs in one process.
    """
    var: trio.lowlevel.RunVar[trio.CapacityLimiter] = trio.lowlevel.RunVar(name)

    def limiter() -> trio.CapacityLimiter:
        try:
            return var.get()
        except LookupError:
            made = trio.CapacityLimiter(default_tokens)
            var.set(made)
            return made

    limiter.__doc__ = f"The {name} limiter shared in this Trio run ({default_tokens} threads)."
    return limiter
