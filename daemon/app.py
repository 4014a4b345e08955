"""The daemon's root: one Trio nursery holding the store, the actors and the HTTP server.

::

    run_daemon                      signals -> graceful stop
    ├── watchdog                    sd_notify WATCHDOG=1 from the event loop
    ├── Processor                   parse -> classify -> hooks -> one transaction
    ├── OutboxActor                 sends queued mail; retries with backoff
    ├── OAuthManager.run            daily warnings (client secret expiry, Testing apps)
    ├── supervise(mailbox actor)    one per enabled account (maildir | imap | graph); on
    │                               PostgreSQL only those this node leases (daemon.leases)
    └── Hypercorn + Quart-Trio      probes, /status, /metrics, the API

Shutdown (SIGINT/SIGTERM, or ``stop.set()``), as in Hypercorn's ``trio/run.py``: the
trigger starts a graceful phase with one deadline, ``shutdown_grace_seconds`` away, and
only then is anything cancelled (:func:`_shut_down`):

1. ``/readyz`` turns 503 and new ``/api/`` requests are refused with 503 (probes still
   answer); the mailbox actors are cancelled, so no new mail is taken in.
2. Until the deadline, concurrently: the HTTP requests in flight finish
   (:meth:`HttpGuard.drained <daemon.http.guard.HttpGuard.drained>`), and the processor
   finishes what it holds (an empty batch sent through its inbox comes back after the
   import in hand).
3. The listener closes (its connections get what is left of the deadline), the
   ``postroom_shutdown`` hooks run, and the processor and outbox are cancelled: a send in
   flight finishes its SMTP transaction and bookkeeping (shielded in the outbox), and a
   transaction already running in the store thread commits or rolls back there.
"""

from __future__ import annotations

__all__ = ["Daemon", "open_daemon", "run_daemon"]

import json
import logging
import signal
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from functools import partial
from typing import Any, cast

import hypercorn.config
import pluggy
import structlog
import trio
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

from daemon import sdnotify
from daemon.actors.maildir import run_maildir_account
from daemon.actors.outbox import OutboxActor
from daemon.actors.processor import Processor
from daemon.actors.status import AccountHandle, AccountState, AccountStatus
from daemon.config import Account, Config, ImapConnection, OAuthApp, load_secret_key
from daemon.crm.schema import lookup_indexes
from daemon.crm.seed import seed_objects
from daemon.graph.client import GraphTokens
from daemon.graph.notifications import WebhookRegistry
from daemon.http.app import create_app
from daemon.http.graph_webhooks import with_graph_webhooks
from daemon.http.guard import ASGIApp, HttpGuard
from daemon.http.probes import with_fast_probes
from daemon.http.server import ConnectionCap, serve
from daemon.messages import Outcome
from daemon.metrics import CLIENT_SECRET_EXPIRY_DAYS, metrics_text, outbox_snapshot
from daemon.nodes import hold_single_node_lock, node_id
from daemon.oauth.manager import OAuthManager
from daemon.outbox.queue import mail_queuer
from daemon.outbox.transport import transport_for
from daemon.plugins.manager import call_async_hook, configure_plugins, make_plugin_manager
from daemon.retention import run_retention
from daemon.store import AsyncStore, open_store
from daemon.supervisor import RestartPolicy, supervise

log = structlog.get_logger("postroom.daemon")


class Daemon:
    """The running daemon's parts; the HTTP app sees them as a
    :class:`~daemon.http.context.DaemonContext`."""

    def __init__(self, config: Config, store: AsyncStore, pm: pluggy.PluginManager,
                 processor: Processor, outbox: OutboxActor,
                 oauth: OAuthManager | None = None) -> None:
        self.config = config
        self.store = store
        self.pm = pm
        self.processor = processor
        self.outbox = outbox
        self.handles: dict[str, AccountHandle] = {}
        self.actors_started = False
        self.stopping = False
        self.http_urls: list[str] = []
        self.api_token = config.http.api_token
        self.connections = ConnectionCap(config.http.max_connections)
        self.http_guard: HttpGuard | None = None
        self.oauth = oauth or OAuthManager(config, store, load_secret_key(config))
        self.oauth.wake = self.wake_account
        # Graph: the webhook routes' registry, the token source (account, app) ->
        # TokenProvider (daemon.graph.client; None: Graph accounts cannot start), and
        # set once the HTTP server listens (subscriptions need it for validation).
        self.graph_webhooks: WebhookRegistry | None = None
        self.graph_tokens: GraphTokens | None = None
        self.http_started = trio.Event()
        self.node_id = node_id(config)
        #: Which node serves each account (daemon.leases keeps it; absent: unknown yet).
        self.owners: dict[str, str | None] = {}
        self.leases: Any = None  # the LeaseKeeper, with several nodes (PostgreSQL)

    def mail_queued(self) -> None:
        """Mail was committed to the outbox: wake the outbox actor."""
        self.outbox.wakeup()

    def wake_account(self, account_id: str) -> None:
        if account_id in self.handles:
            self.handles[account_id].wake()

    def readiness_problems(self) -> list[str]:
        problems = []
        if not self.actors_started:
            problems.append("actors not started")
        if self.stopping:
            problems.append("stopping")
        return problems

    def readiness_notes(self) -> list[str]:
        """What /readyz reports without failing: accounts waiting for a human."""
        return [f"account {h.status.account!r} needs authentication"
                for h in self.handles.values()
                if h.status.state is AccountState.NEEDS_AUTHENTICATION]

    def status(self) -> dict[str, Any]:
        return {"node": self.node_id,
                "accounts": [{**h.status.as_json(), "owner": self.owners.get(account)}
                             | self.oauth.account_notes(account)
                             for account, h in self.handles.items()],
                "oauth_apps": self.oauth.apps_status(),
                "outbox": self.outbox.status.as_json(),
                "http": self.http_status(),
                "graph_webhooks": (self.graph_webhooks.counters.as_json()
                                   if self.graph_webhooks is not None else None),
                "ready": not self.readiness_problems()}

    def http_status(self) -> dict[str, int]:
        """Connections open, the most at once, evicted at the cap; bodies timed out."""
        cap = self.connections
        timed_out = self.http_guard.timed_out if self.http_guard is not None else 0
        return {"connections": cap.open, "peak_connections": cap.peak,
                "evicted": cap.evicted, "body_timeouts": timed_out}

    async def retry_message(self, source_key: str) -> Outcome:
        """Import a failed message again (:meth:`Processor.retry`); a success is counted
        in its account's status like any import."""
        record = await self.store.run(lambda tx: tx.get_raw(source_key))
        outcome = await self.processor.retry(source_key)
        handle = self.handles.get(record.account) if record is not None else None
        if handle is not None and record is not None and record.status == "failed" \
                and not outcome.failed:
            handle.status.count(outcome)
        return outcome

    async def metrics_text(self) -> str:
        """The ``/metrics`` page (:mod:`daemon.metrics`); reads the outbox from the store."""
        snapshot = await self.store.run(outbox_snapshot)
        for account in self.config.accounts:  # the per-account gauge of daemon.metrics
            app = self.oauth.app_of(account.id)
            left = self.oauth.secret_days_left(app) if app is not None else None
            if left is not None:
                CLIENT_SECRET_EXPIRY_DAYS.labels(account=account.id).set(left)
        return metrics_text(self.handles.values(), self.outbox.status, snapshot,
                            extra=[_ConnectionsCollector(self)])


class _ConnectionsCollector:
    """The OAuth apps' and Graph mailboxes' families, read at scrape time."""

    def __init__(self, daemon: Daemon) -> None:
        self.daemon = daemon

    def collect(self) -> Any:
        yield from _oauth_metrics(self.daemon.oauth)
        yield from _graph_metrics(self.daemon)


def _oauth_metrics(oauth: OAuthManager) -> Any:
    days = GaugeMetricFamily("postroom_oauth_client_secret_days_left",
                             "Days until the OAuth app's client secret expires",
                             labels=["app"])
    failing = GaugeMetricFamily("postroom_oauth_app_failing",
                                "1 when the OAuth app's credentials are refused",
                                labels=["app"])
    for app in oauth.config.oauth_apps:
        left = oauth.secret_days_left(app)
        if left is not None:
            days.add_metric([app.id], left)
        failing.add_metric([app.id], 1 if app.id in oauth.app_failures else 0)
    yield days
    yield failing


def _graph_metrics(daemon: Daemon) -> Any:
    """Graph throttling per account and the webhook routes' counters."""
    throttled = CounterMetricFamily("postroom_graph_throttled", "Graph 429/503 answers",
                                    labels=["account"])
    waiting = GaugeMetricFamily("postroom_graph_throttled_seconds",
                                "Seconds the mailbox still waits for Graph", labels=["account"])
    for handle in daemon.handles.values():
        throttle = handle.status.extra.get("throttle")
        if throttle is not None:
            throttled.add_metric([handle.status.account], throttle["throttled"])
            waiting.add_metric([handle.status.account], throttle["throttled_for_seconds"])
    webhooks = CounterMetricFamily("postroom_graph_webhook", "Graph webhook requests",
                                   labels=["kind"])
    if daemon.graph_webhooks is not None:
        for kind, value in daemon.graph_webhooks.counters.as_json().items():
            webhooks.add_metric([kind], value)
    yield throttled
    yield waiting
    yield webhooks


async def open_daemon_store(config: Config) -> AsyncStore:
    """Open the store, create the lookup indexes and seed objects (in a worker thread)."""
    def prepare() -> Any:
        store = open_store(config.daemon.store)
        for limetype, prop, unique in lookup_indexes(config.runtime):
            store.ensure_index(limetype, prop, unique=unique)
        if config.daemon.seed_objects:
            data = json.loads(config.daemon.seed_objects.read_text())
            with store.transaction() as tx:
                seed_objects(tx, data)
        return store

    return AsyncStore(await trio.to_thread.run_sync(prepare))


def build_plugin_manager(config: Config) -> pluggy.PluginManager:
    """Load plugins and hand each its ``[plugins.<name>]`` table."""
    pm = make_plugin_manager(modules=config.daemon.plugins,
                             disabled=config.daemon.plugins_disabled)
    configure_plugins(pm, config)
    return pm


def _mailbox_runner(account: Account, config: Config, daemon: Daemon, handle: AccountHandle) -> Any:
    """The actor entry point for ``account``, ready for :func:`supervise`."""
    if account.auth == "maildir":
        return partial(run_maildir_account, account, submit=daemon.processor.submit_many,
                       handle=handle)
    connection = config.connection_for(account)
    if isinstance(connection, OAuthApp):
        if connection.base_scope == "api":
            return _graph_runner(account, connection, config, daemon, handle)
        from daemon.oauth.actor import run_oauth_imap_account

        return partial(run_oauth_imap_account, account, connection, oauth=daemon.oauth,
                       submit=daemon.processor.submit,
                       submit_many=daemon.processor.submit_many, store=daemon.store,
                       handle=handle)
    if isinstance(connection, ImapConnection):
        from daemon.actors.imap import run_imap_account

        return partial(run_imap_account, account, connection,
                       submit=daemon.processor.submit,
                       submit_many=daemon.processor.submit_many, store=daemon.store,
                       handle=handle)
    return None


def _graph_runner(account: Account, app: OAuthApp, config: Config, daemon: Daemon,
                  handle: AccountHandle) -> Any:
    """The Graph actor for ``account``, or None while no token source is wired."""
    if daemon.graph_tokens is None or daemon.graph_webhooks is None:
        return None
    from daemon.actors.graph import run_graph_account

    return partial(run_graph_account, account, app, submit_many=daemon.processor.submit_many,
                   store=daemon.store, handle=handle,
                   tokens=daemon.graph_tokens(account, app),
                   registry=daemon.graph_webhooks, http_ready=daemon.http_started.wait,
                   webhook_base_url=(config.daemon.webhook_base_url
                                     or config.daemon.public_base_url))


def _policy(account: Account) -> RestartPolicy:
    return RestartPolicy(cap=account.backoff_cap_seconds,
                         reset_after=account.stable_after_seconds,
                         park_after_auth_failures=account.auth_failures_before_park)


async def run_daemon(config: Config, *, stop: trio.Event | None = None,
                     handle_signals: bool = True, graph_tokens: GraphTokens | None = None,
                     task_status: trio.TaskStatus[Daemon] = trio.TASK_STATUS_IGNORED) -> None:
    """Run until a signal (or ``stop``) asks us to stop; see the module docstring.

    ``task_status.started(daemon)`` is called once the actors and the HTTP server run.
    ``graph_tokens``: ``(account, app) -> TokenProvider`` for Graph accounts; by default
    the OAuth manager's (:meth:`~daemon.oauth.manager.OAuthManager.graph_tokens`), tests
    pass a fixed token.

    Every log line carries the node id; a SQLite store is held for this daemon alone
    (:func:`daemon.nodes.hold_single_node_lock` raises SingleNodeError otherwise).
    """
    structlog.contextvars.bind_contextvars(node=node_id(config))
    with hold_single_node_lock(config.daemon.sqlite_path):
        await _run_daemon(config, stop=stop, handle_signals=handle_signals,
                          graph_tokens=graph_tokens, task_status=task_status)


async def _run_daemon(config: Config, *, stop: trio.Event | None, handle_signals: bool,
                      graph_tokens: GraphTokens | None,
                      task_status: trio.TaskStatus[Daemon]) -> None:
    stop = stop if stop is not None else trio.Event()
    for warning in config.warnings:  # what check-config prints as "warning: ..."
        log.warning("config.warning", problem=str(warning))
    pm = build_plugin_manager(config)
    store = await open_daemon_store(config)
    secret = load_secret_key(config)
    oauth = OAuthManager(config, store, secret)
    graph_tokens = graph_tokens if graph_tokens is not None else oauth.graph_tokens
    outbox = OutboxActor(config, store, transports=partial(transport_for, oauth=oauth,
                                                           graph_tokens=graph_tokens))
    processor = Processor(config, store, pm, secret=secret,
                          queue_mail=mail_queuer(config, secret), mail_queued=outbox.wakeup)
    daemon = Daemon(config, store, pm, processor, outbox, oauth)
    daemon.graph_webhooks = WebhookRegistry(store, secret)
    daemon.graph_tokens = graph_tokens
    http_stop = trio.Event()
    try:
        async with trio.open_nursery() as root:
            if handle_signals:
                root.start_soon(_watch_signals, stop)
            root.start_soon(sdnotify.watchdog)
            root.start_soon(sdnotify.report_status, daemon.status)
            async with trio.open_nursery() as workers:
                await workers.start(processor.run)
                await workers.start(outbox.run)
                await workers.start(daemon.oauth.run)
                actors = await workers.start(_start_actors, config, daemon)
                if config.daemon.retain_days is not None:
                    workers.start_soon(run_retention, store, config.daemon.retain_days)
                if config.http.enabled:
                    daemon.http_urls = await workers.start(partial(
                        serve, _http_app(daemon), _hypercorn_config(config),
                        daemon.connections, shutdown_trigger=http_stop.wait))
                daemon.http_started.set()  # (without HTTP, subscriptions fail and retry)
                daemon.actors_started = True
                sdnotify.notify("READY=1")
                log.info("daemon.started", accounts=len(daemon.handles), node=daemon.node_id,
                         http=daemon.http_urls, store=store.store.url_for_logs)
                task_status.started(daemon)
                await stop.wait()
                await _shut_down(daemon, actors, http_stop, workers.cancel_scope)
            root.cancel_scope.cancel()
    finally:
        with trio.CancelScope(shield=True):
            await store.aclose()
        log.info("daemon.stopped")


async def _shut_down(daemon: Daemon, intake: trio.CancelScope, http_stop: trio.Event,
                     workers: trio.CancelScope) -> None:
    """The graceful phase of the module docstring; cancels ``workers`` at the end.

    Every wait here is bounded by the one deadline; ``workers`` itself gets no deadline,
    which would cancel this function too (the outermost cancelled scope catches) and skip
    the hooks.
    """
    grace = daemon.config.daemon.shutdown_grace_seconds
    deadline = trio.current_time() + grace
    daemon.stopping = True
    sdnotify.notify("STOPPING=1")
    log.info("daemon.stopping", grace_seconds=grace)
    intake.cancel()
    with trio.move_on_at(deadline) as draining:
        async with trio.open_nursery() as nursery:
            if daemon.http_guard is not None:
                nursery.start_soon(daemon.http_guard.drained)
            nursery.start_soon(_processor_caught_up, daemon.processor)
    if draining.cancelled_caught:
        log.warning("daemon.grace_exceeded", grace_seconds=grace,
                    http_in_flight=daemon.http_guard.in_flight if daemon.http_guard else 0)
    http_stop.set()
    with trio.move_on_at(deadline):
        await call_async_hook(daemon.pm, "postroom_shutdown")
    workers.cancel()


async def _processor_caught_up(processor: Processor) -> None:
    """Return once the processor has handled everything submitted so far.

    The inbox is first in, first out: an empty batch comes back after the import in hand
    and those queued before it. A failure only ends the wait (it is logged).
    """
    try:
        await processor.submit_many([])
    except Exception as exc:
        log.warning("daemon.processor_drain_failed", error=f"{type(exc).__name__}: {exc}")


def _http_app(daemon: Daemon) -> Any:
    """The ASGI stack: fast ``/livez``, then the guard, then the Quart app."""
    # Quart types the ASGI scope and events as hypercorn's TypedDicts; the guard passes
    # them through as the plain dicts they are.
    daemon.http_guard = HttpGuard(cast(ASGIApp, create_app(daemon)),
                                  body_timeout=daemon.config.http.body_timeout_seconds,
                                  stopping=lambda: daemon.stopping)
    app = with_fast_probes(daemon.http_guard)
    return app if daemon.graph_webhooks is None else with_graph_webhooks(
        app, daemon.graph_webhooks)


@asynccontextmanager
async def open_daemon(config: Config, *, graph_tokens: GraphTokens | None = None
                      ) -> AsyncIterator[Daemon]:
    """Run the daemon inside the caller's Trio run; stop it gracefully on the way out.

    For embedding, tests and benchmarks: no signal handling (the caller owns that).
    Yields once everything has started (as ``run_daemon``'s ``task_status``).
    """
    stop = trio.Event()
    async with trio.open_nursery() as nursery:
        daemon: Daemon = await nursery.start(partial(run_daemon, config, stop=stop,
                                                     handle_signals=False,
                                                     graph_tokens=graph_tokens))
        try:
            yield daemon
        finally:
            stop.set()


async def _start_actors(config: Config, daemon: Daemon, *,
                        task_status: trio.TaskStatus[trio.CancelScope]) -> None:
    """Start one supervised actor per account, in a nursery the caller can cancel.

    Accounts start concurrently (a thousand logins one after another would take half a
    minute); this returns once every actor has made its first attempt.
    """
    leased = not config.daemon.store.startswith("sqlite")  # several nodes may share it
    runners: dict[str, Any] = {}  # with leases, started as they are taken
    async with trio.open_nursery() as nursery:
        async with trio.open_nursery() as starting:
            for account in config.accounts:
                handle = AccountHandle(AccountStatus(account.id, kind=account.auth))
                daemon.handles[account.id] = handle
                daemon.owners[account.id] = None if leased else daemon.node_id
                runner = _mailbox_runner(account, config, daemon, handle)
                if not account.enabled:
                    handle.status.set_state(AccountState.DISABLED)
                elif runner is None:
                    handle.status.set_state(
                        AccountState.DISABLED,
                        f"intake for auth {account.auth!r} not available yet")
                elif leased:
                    runners[account.id] = partial(supervise, runner, handle, _policy(account))
                else:
                    starting.start_soon(nursery.start, supervise, runner, handle,
                                        _policy(account))
        if runners:
            from daemon.leases import serve_leased_accounts

            await nursery.start(serve_leased_accounts, daemon, runners)
        task_status.started(nursery.cancel_scope)


def _hypercorn_config(config: Config) -> hypercorn.config.Config:
    hc = hypercorn.config.Config()
    hc.bind = [config.http.bind]
    hc.accesslog = None
    hc.errorlog = logging.getLogger("hypercorn.error")  # through our pipeline, not stderr
    hc.graceful_timeout = config.daemon.shutdown_grace_seconds  # bounded by the deadline
    hc.h11_max_incomplete_size = 16 * 1024  # a request head larger than this is refused
    return hc


async def _watch_signals(stop: trio.Event) -> None:
    with trio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
        async for signum in signals:
            log.info("daemon.signal", signal=signal.Signals(signum).name)
            stop.set()
            return
