"""What every mailbox actor shows the outside world: its state, counters and last error.

An actor owns its :class:`AccountStatus` and is the only writer; the HTTP app and the CLI
only read it (same Trio thread, so no locking). :class:`AccountHandle` is what the daemon
keeps per account: the status plus a way to wake the actor ("Sync emails").
"""

from __future__ import annotations

__all__ = ["AccountHandle", "AccountState", "AccountStatus"]

import contextlib
import enum
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import trio

from daemon.messages import Outcome

_COUNTERS = {"imported": "imported", "duplicate": "duplicates",
             "discarded": "discarded", "failed": "failed"}


class AccountState(enum.Enum):
    INIT = "init"              # configured, actor not started yet
    CONNECTING = "connecting"  # opening the connection / logging in
    SYNCING = "syncing"        # fetching and importing messages
    IDLE = "idle"              # caught up, waiting for new mail (IDLE, poll or watch)
    BACKOFF = "backoff"        # a transient failure; waiting before the next attempt
    AUTH_ERROR = "auth_error"  # credentials refused: parked until a human acts
    NEEDS_AUTHENTICATION = "needs_authentication"  # OAuth, never signed in: waits for it
    DISABLED = "disabled"      # enabled = false, or parked after repeated resyncs


@dataclass
class AccountStatus:
    """Mutable, owned by one actor. ``as_json`` is what /status shows."""

    account: str
    kind: str
    state: AccountState = AccountState.INIT
    last_sync: datetime | None = None
    last_error: str | None = None
    imported: int = 0
    duplicates: int = 0
    discarded: int = 0
    failed: int = 0
    reconnects: int = 0
    extra: dict[str, Any] = field(default_factory=dict)
    changed: trio.Event = field(default_factory=trio.Event, repr=False)

    def set_state(self, state: AccountState, error: str | None = None) -> None:
        """Move to ``state``; record ``error`` when given and wake anyone watching."""
        self.state = state
        if error is not None:
            self.last_error = error
        self._notify()

    def count(self, outcome: Outcome) -> None:
        """Add one outcome to the counters."""
        counter = _COUNTERS[outcome.status.value]
        setattr(self, counter, getattr(self, counter) + 1)
        self._notify()

    def synced(self) -> None:
        """Record a completed sync round."""
        self.last_sync = datetime.now(UTC)
        self._notify()

    def _notify(self) -> None:
        self.changed.set()
        self.changed = trio.Event()

    def as_json(self) -> dict[str, Any]:
        return {
            "account": self.account,
            "kind": self.kind,
            "state": self.state.value,
            "last_sync": self.last_sync.isoformat() if self.last_sync else None,
            "last_error": self.last_error,
            "counts": {"imported": self.imported, "duplicates": self.duplicates,
                       "discarded": self.discarded, "failed": self.failed},
            "reconnects": self.reconnects,
            **self.extra,
        }


class AccountHandle:
    """The daemon's grip on one mailbox actor: its status and a coalescing wake-up.

    ``wake()`` never blocks: many wake-ups before the actor looks collapse into one sync.
    """

    def __init__(self, status: AccountStatus) -> None:
        self.status = status
        self._send, self.wakeups = trio.open_memory_channel[None](1)

    def wake(self) -> None:
        """Ask the actor to sync now (the reference's "Sync emails")."""
        with contextlib.suppress(trio.WouldBlock):
            self._send.send_nowait(None)
