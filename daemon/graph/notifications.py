"""What the webhook routes know: which subscriptions are ours, and whom to wake.

Graph proves a notification is ours only through the subscription's ``clientState``, a
random secret we chose at creation. We keep no copy of it: the store holds
``HMAC(secret key, clientState)`` (:func:`client_state_mac`), which is enough to check a
notification and useless to anyone reading the database. Checks compare MACs with
:func:`hmac.compare_digest` (constant time).

A valid notification is a *kick*: "sync this account now". Kicks are made durable before
the route answers 202 (a checkpoint ``graph:kick`` in the store), so a crash after the
answer still syncs. To keep the route in the millisecond range under a notification
storm, the record is written once and stays while notifications keep coming; the actor
clears it (:meth:`WebhookRegistry.settle_kick`) after a round during which none arrived.
Notifications that find the record being written wait for that one write. Lifecycle
events are kept the same way (``graph:lifecycle``, the set of pending event names) and
handed to the actor's subscription task.

The registry is filled by the Graph actors (:meth:`WebhookRegistry.register`) and read by
:mod:`daemon.http.graph_webhooks`; both run in the event loop's thread.
"""

from __future__ import annotations

__all__ = ["KICK_KEY", "LIFECYCLE_EVENTS", "LIFECYCLE_KEY", "Verdict", "WebhookRegistry",
           "client_state_mac"]

import enum
import hashlib
import hmac
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import trio

from daemon.store import AsyncStore

KICK_KEY = "graph:kick"
LIFECYCLE_KEY = "graph:lifecycle"
LIFECYCLE_EVENTS = frozenset({"reauthorizationRequired", "subscriptionRemoved", "missed"})


def client_state_mac(secret: bytes, client_state: str) -> str:
    """The verifier we store for a ``clientState`` (hex HMAC-SHA256 under the secret key)."""
    return hmac.new(secret, b"graph-client-state\x00" + client_state.encode(),
                    hashlib.sha256).hexdigest()


class Verdict(enum.Enum):
    VALID = "valid"        # ours: kicked
    INVALID = "invalid"    # unknown subscription or wrong clientState: ignored, counted


@dataclass
class _Account:
    subscription_id: str | None = None
    mac: str | None = None
    wake: Callable[[], None] = lambda: None
    on_lifecycle: Callable[[str], None] = lambda event: None
    kick_recorded: bool = False
    kicks: int = 0
    kick_lock: trio.Lock = field(default_factory=trio.Lock)
    lifecycle_recorded: set[str] = field(default_factory=set)


@dataclass
class WebhookCounters:
    notifications: int = 0
    invalid: int = 0
    malformed: int = 0
    lifecycle: int = 0
    validations: int = 0

    def as_json(self) -> dict[str, int]:
        return dict(self.__dict__)


class WebhookRegistry:
    """Subscriptions by account, and the kicks they cause; see the module docstring."""

    def __init__(self, store: AsyncStore, secret: bytes) -> None:
        self.store = store
        self.secret = secret
        self.counters = WebhookCounters()
        self._accounts: dict[str, _Account] = {}

    # -- the actors' side --------------------------------------------------------------

    def attach(self, account: str, *, wake: Callable[[], None],
               on_lifecycle: Callable[[str], None]) -> None:
        """The account's actor runs: route its kicks and lifecycle events to it."""
        entry = self._accounts.setdefault(account, _Account())
        entry.wake, entry.on_lifecycle = wake, on_lifecycle

    def register(self, account: str, subscription_id: str | None, mac: str | None) -> None:
        """The account's current subscription (None: none) and its clientState MAC."""
        entry = self._accounts.setdefault(account, _Account())
        entry.subscription_id, entry.mac = subscription_id, mac

    def kicks(self, account: str) -> int:
        """Valid notifications for ``account`` so far (the actor notes it before a round)."""
        return self._accounts.setdefault(account, _Account()).kicks

    async def settle_kick(self, account: str, seen: int, *, force: bool = False) -> None:
        """A round that started at ``kicks == seen`` is done: clear the durable kick if no
        notification arrived since (``force``: clear what a previous run left).

        A checkpoint when it writes; raises ``StoreBusyError`` if the store cannot commit.
        """
        entry = self._accounts.setdefault(account, _Account())
        async with entry.kick_lock:
            if entry.kicks == seen and (entry.kick_recorded or force):
                await self.store.run(lambda tx: tx.delete_checkpoints(account, KICK_KEY))
                entry.kick_recorded = False

    def lifecycle_taken(self, account: str) -> None:
        self._accounts.setdefault(account, _Account()).lifecycle_recorded.clear()

    # -- the routes' side --------------------------------------------------------------

    def verify(self, account: str | None, subscription_id: Any, client_state: Any
               ) -> tuple[Verdict, str | None]:
        """Whether one notification item is ours; returns the verdict and the account."""
        entry_name = account if account in self._accounts else self._by_subscription(
            subscription_id)
        entry = self._accounts.get(entry_name) if entry_name else None
        if (entry is None or entry.mac is None or not isinstance(client_state, str)
                or subscription_id != entry.subscription_id):
            return Verdict.INVALID, None
        given = client_state_mac(self.secret, client_state)
        if not hmac.compare_digest(given.encode(), entry.mac.encode()):
            return Verdict.INVALID, None
        return Verdict.VALID, entry_name

    async def kick(self, account: str) -> None:
        """Record a durable kick (first one per round only) and wake the actor.

        A checkpoint when it writes. Raises ``StoreBusyError`` if the store cannot commit:
        the route then answers 5xx and Graph retries.
        """
        entry = self._accounts[account]
        entry.kicks += 1
        if not entry.kick_recorded:
            async with entry.kick_lock:  # one write; notifications meanwhile wait for it
                if not entry.kick_recorded:
                    await self.store.run(lambda tx: tx.set_checkpoint(account, KICK_KEY, "1"))
                    entry.kick_recorded = True
        entry.wake()

    async def lifecycle(self, account: str, event: str) -> None:
        """Record a durable lifecycle event and hand it to the actor's subscription task."""
        entry = self._accounts[account]
        if event not in entry.lifecycle_recorded:
            entry.lifecycle_recorded.add(event)
            value = json.dumps(sorted(entry.lifecycle_recorded))
            await self.store.run(lambda tx: tx.set_checkpoint(account, LIFECYCLE_KEY, value))
        entry.on_lifecycle(event)
        entry.wake()

    def _by_subscription(self, subscription_id: Any) -> str | None:
        for name, entry in self._accounts.items():
            if entry.subscription_id is not None and entry.subscription_id == subscription_id:
                return name
        return None
