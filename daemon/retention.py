"""Retention: forget raw message bytes and events older than ``[daemon] retain_days``.

Without it the store grows forever: every raw message is kept (for duplicates, retries
and support) and so is every event. :func:`purge` keeps an imported message's row (its
Message-ID and digest still recognise a late re-delivery as a duplicate) and drops its
bytes; events older than the cutoff are deleted. A failed message is never touched while
it is unresolved: a retry needs its bytes (:meth:`daemon.store.base.Tx.purge`).

The daemon runs :func:`run_retention` when ``retain_days`` is set: once at start, then
every :data:`PURGE_EVERY` seconds; ``postroom purge --older-than 90d`` runs :func:`purge`
once, by hand.
"""

from __future__ import annotations

__all__ = ["PURGE_EVERY", "Purged", "parse_age", "purge", "run_retention"]

import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import structlog
import trio

from daemon.config import HOURS

log = structlog.get_logger("postroom.retention")

PURGE_EVERY = 24 * HOURS
_AGE = re.compile(r"([0-9]+(?:\.[0-9]+)?)([dhw]?)")
_UNIT_DAYS = {"": 1.0, "d": 1.0, "w": 7.0, "h": 1 / 24}


@dataclass(frozen=True)
class Purged:
    """What one purge removed: raw messages whose bytes went, events deleted."""

    raw_messages: int
    events: int


def parse_age(text: str) -> float:
    """``90d``, ``12w``, ``36h`` or a bare number of days -> days. Raises ValueError."""
    match = _AGE.fullmatch(text.strip())
    if match is None or float(match.group(1)) <= 0:
        raise ValueError(f"{text!r}: an age such as 90d, 12w or 36h")
    return float(match.group(1)) * _UNIT_DAYS[match.group(2)]


def purge(tx: Any, older_than_days: float, now: datetime | None = None) -> Purged:
    """Purge what was stored more than ``older_than_days`` before ``now`` (in ``tx``)."""
    cutoff = (now or datetime.now(UTC)) - timedelta(days=older_than_days)
    raws, events = tx.purge(cutoff)
    return Purged(raws, events)


async def run_retention(store: Any, retain_days: float) -> None:
    """Purge now and every :data:`PURGE_EVERY` seconds, until cancelled.

    A failed purge is logged by the store's caller and tried again next time: retention
    is housekeeping, never a reason to stop the daemon.
    """
    while True:
        try:
            done = await store.run(purge, retain_days)
        except Exception as exc:
            log.warning("daemon.purge_failed", error=f"{type(exc).__name__}: {exc}")
        else:
            if done.raw_messages or done.events:
                log.info("daemon.purged", raw_messages=done.raw_messages, events=done.events,
                         older_than_days=retain_days)
        await trio.sleep(PURGE_EVERY)
