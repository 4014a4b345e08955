"""The Microsoft Graph mailbox actor: one per account whose app has ``base_scope = "api"``.

State owned: the mailbox's :class:`~daemon.graph.client.GraphClient` (at most 4 requests
in flight, Retry-After honoured), its :class:`~daemon.graph.delta.DeltaSync` (the delta
link, persisted as a checkpoint committed with the messages it covers), in webhook mode a
:class:`~daemon.graph.subscriptions.SubscriptionKeeper` task, and the account's
:class:`AccountStatus` (``mode``, ``subscription``, ``throttle`` in ``extra``).

Receives: wake-ups on ``handle.wakeups`` (capacity 1, coalescing): a valid notification
(the webhook route, :mod:`daemon.http.graph_webhooks`), a handled lifecycle event, or a
human's "sync now". Lifecycle events reach the keeper through the
:class:`~daemon.graph.notifications.WebhookRegistry`.

Sends: new messages as :class:`~daemon.messages.RawMessage` to ``submit_many``, a delta
page at a time, and after the commit marks them read or moves them to the failure folder.

Modes (``status.extra["mode"]``)::

    webhook   a subscription pushes notifications; delta rounds on each kick, and the
              backstop every graph_backstop_seconds (default 5 min) regardless
    polling   delta rounds every graph_poll_interval_seconds (default 30 s); for shared
              mailboxes read by a delegated user, which Graph cannot subscribe to
              (``graph_mode = "auto"`` picks it when ``username`` differs from ``email``)

States: ``connecting`` (resolving the folder), ``syncing`` (a delta round), ``idle``
(waiting for a kick or the interval); ``backoff``/``auth_error`` are the supervisor's.
A delta round runs at start, after every lifecycle event, on every kick and at each
interval: a dead webhook path delays mail by at most the interval, never loses it.

Errors: none are retried here. ``GraphTransient`` (throttled past the client's retries,
5xx, network) and ``StoreBusyError`` propagate to the supervisor, which restarts the actor
with backoff; ``AuthError`` (token refused, consent gone) parks it after a few. A message
that fails processing never raises: it is moved to the failure folder. A subscription
that cannot be created leaves the account in webhook mode with the subscription
``failed``: delta rounds continue, creation is retried every 5 minutes, never in a loop.

Cancellation: at any checkpoint; an HTTP request in flight is abandoned; a page being
committed finishes its transaction (its messages are found as duplicates next time). The
HTTP client is closed on the way out.
"""

from __future__ import annotations

__all__ = ["graph_mode", "is_shared_mailbox", "run_graph_account"]

import json
from collections.abc import Awaitable, Callable
from typing import Any

import httpx
import structlog
import trio

from daemon.actors.status import AccountHandle, AccountState
from daemon.graph.client import GraphClient, TokenProvider
from daemon.graph.delta import DeltaSync
from daemon.graph.notifications import LIFECYCLE_KEY, WebhookRegistry
from daemon.graph.subscriptions import SubscriptionKeeper
from daemon.messages import SubmitMany
from daemon.store import AsyncStore

log = structlog.get_logger("postroom.graph")

NOTIFICATION_ROUTE = "/oauth/msg/notification"
LIFECYCLE_ROUTE = "/oauth/msg/lifecycle"
#: The least time between the end of a round and a round a kick asks for: under a storm
#: of notifications, one round per gap instead of one per notification.
ROUND_GAP = 0.5


def is_shared_mailbox(account: Any) -> bool:
    """A user (``username``) reading someone else's mailbox (``email``): a shared mailbox."""
    return bool(account.username) and account.username.lower() != account.email.lower()


def graph_mode(account: Any) -> str:
    """``webhook`` or ``polling`` for ``account`` (see the module docstring)."""
    if account.graph_mode != "auto":
        return str(account.graph_mode)
    return "polling" if is_shared_mailbox(account) else "webhook"


async def run_graph_account(account: Any, app: Any, *, submit_many: SubmitMany,
                            store: AsyncStore, handle: AccountHandle, tokens: TokenProvider,
                            registry: WebhookRegistry, webhook_base_url: str,
                            http_ready: Callable[[], Awaitable[Any]] | None = None,
                            transport: httpx.AsyncBaseTransport | None = None,
                            task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED,
                            ) -> None:
    """Keep ``account``'s folder imported forever; see the module docstring.

    Args:
        account: a ``daemon.config.Account`` (id, email, username, folder,
            failure_folder, max_message_bytes, import_since, graph_*).
        app: its ``daemon.config.OAuthApp`` (``graph_base_url``).
        submit_many: the processor's group commit.
        store: checkpoints (delta link, subscription, durable kicks).
        handle: the account's status and wake-up channel.
        tokens: the access-token provider (from the OAuth package).
        registry: the webhook routes' view of our subscriptions.
        webhook_base_url: ``webhook_base_url`` or ``public_base_url``.
        http_ready: returns once our HTTP server listens (Graph validates the webhook
            URL while creating the subscription); None: at once.
        transport: an httpx transport for tests (MockClock: ``httpx.ASGITransport``).
        task_status: ``started()`` once the folder is resolved (and, in webhook mode,
            the subscription task runs).

    Raises:
        AuthError, GraphTransient, StoreBusyError, PermanentError (no such folder).
    """
    structlog.contextvars.bind_contextvars(account=account.id, folder=account.folder)
    client = GraphClient(app.graph_base_url, account.email, tokens, account=account.id,
                         transport=transport)
    try:
        await _run(client, account, submit_many=submit_many, store=store, handle=handle,
                   registry=registry, webhook_base_url=webhook_base_url,
                   http_ready=http_ready, task_status=task_status)
    finally:
        with trio.CancelScope(shield=True):
            await client.aclose()


async def _run(client: GraphClient, account: Any, *, submit_many: SubmitMany,
               store: AsyncStore, handle: AccountHandle, registry: WebhookRegistry,
               webhook_base_url: str, http_ready: Callable[[], Awaitable[Any]] | None,
               task_status: trio.TaskStatus[None]) -> None:
    status = handle.status
    mode = graph_mode(account)
    status.extra.update(mode=mode, throttle=client.throttle.as_json())
    client.on_throttle = lambda throttle: status.extra.update(throttle=throttle.as_json())
    status.set_state(AccountState.CONNECTING)
    sync = DeltaSync(client, account, store=store, submit_many=submit_many,
                     on_outcome=status.count)
    folder_id = await sync.folders.resolve(account.folder)
    events = _LifecycleMarks()
    async with trio.open_nursery() as nursery:
        keeper = None
        if mode == "webhook":
            keeper = _keeper(client, account, store, registry, webhook_base_url, folder_id,
                             handle, events)
            keeper.http_ready = http_ready
            keeper.on_change = lambda sub: _show_subscription(status, keeper)
            registry.attach(account.id, wake=handle.wake, on_lifecycle=keeper.lifecycle_nowait)
            await nursery.start(keeper.run)
            for event in await _recorded_lifecycle(store, account.id):
                keeper.lifecycle_nowait(event)
        task_status.started()
        interval = (account.graph_poll_interval_seconds if mode == "polling"
                    else account.graph_backstop_seconds)
        first = True
        while True:
            await _take_marks(store, registry, account.id, events)
            seen = registry.kicks(account.id)
            status.set_state(AccountState.SYNCING)
            handled = await sync.round()
            await registry.settle_kick(account.id, seen, force=first)
            first = False
            status.synced()
            _show(status, client, keeper, sync)
            log.info("graph.sync.done", handled=handled, mode=mode)
            status.set_state(AccountState.IDLE)
            done = trio.current_time()
            with trio.move_on_after(interval):
                await handle.wakeups.receive()
                # A notification storm: kicks within ROUND_GAP of a round coalesce.
                await trio.sleep_until(done + ROUND_GAP)


class _LifecycleMarks:
    """Set when the keeper handled an event: the durable record can then be cleared."""

    def __init__(self) -> None:
        self.handled = False


def _keeper(client: GraphClient, account: Any, store: AsyncStore, registry: WebhookRegistry,
            base_url: str, folder_id: str, handle: AccountHandle,
            marks: _LifecycleMarks) -> SubscriptionKeeper:
    base = base_url.rstrip("/")
    query = f"?account={account.id}"

    def after_event() -> None:
        marks.handled = True
        handle.wake()

    return SubscriptionKeeper(client, account, store=store, registry=registry,
                              notification_url=f"{base}{NOTIFICATION_ROUTE}{query}",
                              lifecycle_url=f"{base}{LIFECYCLE_ROUTE}{query}",
                              folder_id=folder_id, after_event=after_event)


async def _recorded_lifecycle(store: AsyncStore, account: str) -> list[str]:
    """Lifecycle events a previous run acknowledged but did not handle."""
    value = await store.run(lambda tx: tx.get_checkpoint(account, LIFECYCLE_KEY))
    return list(json.loads(value)) if value else []


async def _take_marks(store: AsyncStore, registry: WebhookRegistry, account: str,
                      marks: _LifecycleMarks) -> None:
    """Clear the durable record of handled lifecycle events (the round about to run
    covers them); writes only when there is one."""
    if not marks.handled:
        return
    marks.handled = False
    registry.lifecycle_taken(account)
    await store.run(lambda tx: tx.delete_checkpoints(account, LIFECYCLE_KEY))


def _show(status: Any, client: GraphClient, keeper: SubscriptionKeeper | None,
          sync: DeltaSync) -> None:
    status.extra.update(throttle=client.throttle.as_json(), delta_resyncs=sync.resyncs,
                        rounds=status.extra.get("rounds", 0) + 1)
    if keeper is not None:
        _show_subscription(status, keeper)


def _show_subscription(status: Any, keeper: SubscriptionKeeper) -> None:
    status.extra["subscription"] = {"state": keeper.current.state.value,
                                    "expires": keeper.current.expires,
                                    "renewals": keeper.renewals,
                                    "error": keeper.current.error}
    status.set_state(status.state)  # wake watchers
