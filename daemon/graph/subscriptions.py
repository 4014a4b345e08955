"""One account's change-notification subscription: create, renew, recreate, reauthorize.

The subscription is on ``created`` for the monitored folder's messages, made with
``Prefer: IdType="ImmutableId"`` (only then do notifications carry immutable ids) and with
the lifecycle URL (settable only at creation). Its ``clientState`` is random per
subscription; only its MAC is stored (:func:`~daemon.graph.notifications.client_state_mac`).

Expiry: we ask for ``graph_subscription_minutes`` (default 4,230, below Graph's 10,070 for
messages) and renew at half the remaining lifetime. When Graph refuses the expiry (400),
we halve the request, down to :data:`MIN_MINUTES`, and use what Graph grants. A renewal
that finds the subscription gone (404) recreates it.

Lifecycle events (docs-contrib: change-notifications-lifecycle-events):
``reauthorizationRequired`` → ``POST /subscriptions/{id}/reauthorize`` (a renewal when that
fails); ``subscriptionRemoved`` → recreate; ``missed`` → nothing here. After each, the
caller runs a delta round.

State (:class:`SubState`), persisted per account as the checkpoint ``graph:subscription``
(JSON) — a key of its own, written only by this task, so no unrelated account update can
overwrite it (EmailEngine's March 2026 bug). One :class:`SubscriptionKeeper` per account,
and it changes the state from one task at a time (its own lock).
"""

from __future__ import annotations

__all__ = ["MIN_MINUTES", "SUBSCRIPTION_KEY", "SubState", "Subscription", "SubscriptionKeeper"]

import enum
import json
import secrets
from collections.abc import Awaitable, Callable
from dataclasses import asdict, dataclass, replace
from datetime import UTC, datetime, timedelta
from typing import Any

import structlog
import trio

from daemon.errors import PermanentError, TransientError
from daemon.graph.client import GraphClient, GraphRequestError
from daemon.graph.notifications import WebhookRegistry, client_state_mac
from daemon.store import AsyncStore

log = structlog.get_logger("postroom.graph.subscription")

SUBSCRIPTION_KEY = "graph:subscription"
MIN_MINUTES = 45
#: After a failed creation, wait this long before the next try (never a tight loop).
RETRY_AFTER_FAILURE = 5 * 60.0


class SubState(enum.Enum):
    NONE = "none"          # never created (or deleted)
    CREATING = "creating"  # POST /subscriptions in progress
    ACTIVE = "active"      # Graph confirmed it; renewed at half-life
    RENEWING = "renewing"  # PATCH (or reauthorize) in progress
    FAILED = "failed"      # creation failed; retried after RETRY_AFTER_FAILURE


@dataclass(frozen=True)
class Subscription:
    """The persisted record; ``mac`` is the clientState's MAC, never the clientState."""

    state: SubState = SubState.NONE
    id: str | None = None
    expires: str | None = None
    mac: str | None = None
    error: str | None = None

    def encode(self) -> str:
        return json.dumps({**asdict(self), "state": self.state.value})

    @classmethod
    def decode(cls, value: str | None) -> Subscription:
        if not value:
            return cls()
        data = json.loads(value)
        return cls(SubState(data.get("state", "none")), data.get("id"), data.get("expires"),
                   data.get("mac"), data.get("error"))

    def expires_at(self) -> datetime | None:
        return _parse(self.expires) if self.expires else None


def _parse(value: str) -> datetime:
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


def _iso(when: datetime) -> str:
    return when.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


class SubscriptionKeeper:
    """Keeps ``account``'s subscription alive; see the module docstring.

    Args:
        client: the mailbox's Graph client.
        account: id, folder and ``graph_subscription_minutes``.
        store: holds the ``graph:subscription`` checkpoint.
        registry: told the current subscription id and clientState MAC.
        notification_url / lifecycle_url: our webhook routes (with ``?account=``).
        folder_id: the monitored folder's Graph id.
        after_event: called after each lifecycle event was handled (run a delta round).
        now: the wall clock (UTC), a seam for tests.
    """

    def __init__(self, client: GraphClient, account: Any, *, store: AsyncStore,
                 registry: WebhookRegistry, notification_url: str, lifecycle_url: str,
                 folder_id: str, after_event: Callable[[], None],
                 now: Callable[[], datetime] = lambda: datetime.now(UTC)) -> None:
        self.client = client
        self.account = account
        self.store = store
        self.registry = registry
        self.notification_url = notification_url
        self.lifecycle_url = lifecycle_url
        self.folder_id = folder_id
        self.after_event = after_event
        self.now = now
        self.current = Subscription()
        self.renewals = 0
        #: Returns once our HTTP server listens (Graph validates the URL at creation).
        self.http_ready: Callable[[], Awaitable[Any]] | None = None
        #: Called after every state change (the actor shows it in /status).
        self.on_change: Callable[[Subscription], None] = lambda sub: None
        self._lock = trio.Lock()
        self._send, self._events = trio.open_memory_channel[str](16)

    def lifecycle_nowait(self, event: str) -> None:
        """Queue a lifecycle event for :meth:`run` (never blocks; extras coalesce)."""
        try:
            self._send.send_nowait(event)
        except trio.WouldBlock:
            log.warning("graph.lifecycle.coalesced", lifecycle_event=event)

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED
                  ) -> None:
        """Load, create if needed, then renew and handle events forever. A checkpoint."""
        await self._load()
        task_status.started()
        if self.http_ready is not None:
            await self.http_ready()
        while True:
            if self.current.state is not SubState.ACTIVE:
                await self._create()
            event = None
            with trio.move_on_at(self._next_action()):
                event = await self._events.receive()
            if event is not None:
                await self.handle(event)
            elif self.current.state is SubState.ACTIVE:
                await self._renew()

    async def handle(self, event: str) -> None:
        """One lifecycle event (see the module docstring), then a delta round."""
        log.info("graph.lifecycle.handling", lifecycle_event=event, account=self.account.id)
        if event == "reauthorizationRequired":
            await self._reauthorize()
        elif event == "subscriptionRemoved":
            await self._set(replace(self.current, state=SubState.NONE, id=None, mac=None))
            await self._create()
        self.after_event()

    def _next_action(self) -> float:
        """Trio time of the next renewal (half the remaining life), or of the next try."""
        if self.current.state is SubState.FAILED:
            return trio.current_time() + RETRY_AFTER_FAILURE
        expires = self.current.expires_at()
        if expires is None:
            return trio.current_time()
        remaining = (expires - self.now()).total_seconds()
        return trio.current_time() + max(0.0, remaining / 2)

    # -- operations (one at a time) -----------------------------------------------------

    async def _create(self) -> None:
        async with self._lock:
            client_state = secrets.token_urlsafe(32)
            mac = client_state_mac(self.registry.secret, client_state)
            await self._set(Subscription(SubState.CREATING))
            try:
                body = await self._with_clamped_expiry(lambda expiry: self.client.json(
                    "POST", f"{self.client.base_url}/subscriptions", json={
                        "changeType": "created",
                        "notificationUrl": self.notification_url,
                        "lifecycleNotificationUrl": self.lifecycle_url,
                        "resource": f"/users/{self.client.mailbox}/mailFolders("
                                    f"'{self._folder()}')/messages",
                        "expirationDateTime": expiry,
                        "clientState": client_state}))
            except (TransientError, PermanentError) as exc:
                log.warning("graph.subscription.create_failed", error=str(exc),
                            account=self.account.id)
                await self._set(Subscription(SubState.FAILED, error=str(exc)[:300]))
                return
            await self._set(Subscription(SubState.ACTIVE, body["id"],
                                         body["expirationDateTime"], mac))
            log.info("graph.subscription.created", subscription=body["id"],
                     expires=body["expirationDateTime"], account=self.account.id)

    async def _renew(self) -> None:
        async with self._lock:
            sub_id = self.current.id
            await self._set(replace(self.current, state=SubState.RENEWING))
            try:
                body = await self._with_clamped_expiry(lambda expiry: self.client.json(
                    "PATCH", f"{self.client.base_url}/subscriptions/{sub_id}",
                    json={"expirationDateTime": expiry}))
            except GraphRequestError as exc:
                if exc.status != 404:
                    raise
                log.warning("graph.subscription.gone", subscription=sub_id,
                            account=self.account.id)
                await self._set(Subscription(SubState.NONE))
                return
            self.renewals += 1
            await self._set(replace(self.current, state=SubState.ACTIVE,
                                    expires=body["expirationDateTime"]))
            log.info("graph.subscription.renewed", subscription=sub_id,
                     expires=body["expirationDateTime"], account=self.account.id)

    async def _reauthorize(self) -> None:
        if self.current.id is None:
            return
        sub_id = self.current.id
        try:
            async with self._lock:
                await self.client.request(
                    "POST", f"{self.client.base_url}/subscriptions/{sub_id}/reauthorize")
            log.info("graph.subscription.reauthorized", subscription=sub_id,
                     account=self.account.id)
        except GraphRequestError:
            await self._renew()

    async def _with_clamped_expiry(self, call: Callable[[str], Any]) -> Any:
        """``call(expiry)``; on Graph refusing the expiry, halve it down to MIN_MINUTES."""
        minutes = float(self.account.graph_subscription_minutes)
        while True:
            expiry = _iso(self.now() + timedelta(minutes=minutes))
            try:
                return await call(expiry)
            except GraphRequestError as exc:
                if exc.status != 400 or "expiration" not in str(exc).lower() \
                        or minutes <= MIN_MINUTES:
                    raise
                minutes = max(MIN_MINUTES, minutes / 2)
                log.info("graph.subscription.expiry_clamped", minutes=minutes,
                         account=self.account.id)

    def _folder(self) -> str:
        return self.folder_id

    # -- persistence -------------------------------------------------------------------

    async def _load(self) -> None:
        account = self.account.id
        value = await self.store.run(lambda tx: tx.get_checkpoint(account, SUBSCRIPTION_KEY))
        self.current = Subscription.decode(value)
        if self.current.state in (SubState.CREATING, SubState.RENEWING):
            # A crash mid-operation: a half-made subscription has no MAC we know; start over.
            self.current = (replace(self.current, state=SubState.ACTIVE)
                            if self.current.state is SubState.RENEWING
                            else Subscription())
        expires = self.current.expires_at()
        if expires is not None and expires <= self.now():
            self.current = Subscription()
        self.registry.register(account, self.current.id, self.current.mac)

    async def _set(self, sub: Subscription) -> None:
        account, value = self.account.id, sub.encode()
        await self.store.run(lambda tx: tx.set_checkpoint(account, SUBSCRIPTION_KEY, value))
        self.current = sub
        self.registry.register(account, sub.id, sub.mac)
        self.on_change(sub)
