"""The daemon's root: one Trio nursery holding the store, the actors and the HTTP server.

::

    run_daemon                      signals -> graceful stop
    ├── watchdog                    sd_notify WATCHDOG=1 from the event loop
    ├── Processor                   parse -> classify -> hooks -> one transaction
    ├── OutboxActor                 sends queued mail; retries with backoff
    ├── OAuthManager.run            daily warnings (client secret expiry, Testing apps)
    ├── supervise(mailbox actor)    one per enabled account (maildir | imap)
    └── Hypercorn + Quart-Trio      probes, /status, /metrics, the API

Shutdown (SIGINT/SIGTERM, or ``stop.set()``): ``/readyz`` turns 503 at once, Hypercorn
stops accepting and drains, then the actors are cancelled; a message whose transaction is
running in the store thread still commits or rolls back there. Everything must be done
within ``shutdown_grace_seconds``, after which the rest is cancelled hard.
"""

from __future__ import annotations

__all__ = ["Daemon", "open_daemon", "run_daemon"]

import json
import logging
import signal
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from functools import partial
from typing import Any

import hypercorn.config
import hypercorn.trio
import pluggy
import structlog
import trio
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

from daemon import sdnotify
from daemon.actors.maildir import run_maildir_account
from daemon.actors.outbox import OutboxActor
from daemon.actors.processor import Processor
from daemon.actors.status import AccountHandle, AccountState, AccountStatus
from daemon.config import Config, OAuthApp, load_secret_key
from daemon.crm.schema import lookup_indexes
from daemon.crm.seed import seed_objects
from daemon.http.app import create_app
from daemon.http.probes import with_fast_probes
from daemon.oauth.manager import OAuthManager
from daemon.outbox.queue import mail_queuer
from daemon.outbox.transport import transport_for
from daemon.plugins.manager import call_async_hook, configure_plugins, make_plugin_manager
from daemon.store import AsyncStore, open_store
from daemon.supervisor import RestartPolicy, supervise

log = structlog.get_logger("postroom.daemon")


class Daemon:
    """The running daemon's parts, as the HTTP app and the CLI see them."""

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
        self.oauth = oauth or OAuthManager(config, store, load_secret_key(config))
        self.oauth.wake = self.wake_account

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
        return {"accounts": [h.status.as_json() | self.oauth.account_notes(h.status.account)
                             for h in self.handles.values()],
                "oauth_apps": self.oauth.apps_status(),
                "outbox": self.outbox.status.as_json(),
                "ready": not self.readiness_problems()}

    def metrics_text(self) -> str:
        registry = CollectorRegistry()
        registry.register(_StatusCollector(self))
        return generate_latest(registry).decode()


class _StatusCollector:
    """Prometheus metrics read from the actors' statuses at scrape time."""

    def __init__(self, daemon: Daemon) -> None:
        self.daemon = daemon

    def collect(self) -> Any:
        messages = CounterMetricFamily("postroom_messages", "Messages by outcome",
                                       labels=["account", "outcome"])
        state = GaugeMetricFamily("postroom_account_state", "1 for the current state",
                                  labels=["account", "state"])
        for handle in self.daemon.handles.values():
            s = handle.status
            for outcome, value in (("imported", s.imported), ("duplicate", s.duplicates),
                                   ("discarded", s.discarded), ("failed", s.failed)):
                messages.add_metric([s.account, outcome], value)
            state.add_metric([s.account, s.state.value], 1)
        yield messages
        yield state
        yield from _oauth_metrics(self.daemon.oauth)


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


def _mailbox_runner(account: Any, config: Config, daemon: Daemon, handle: AccountHandle) -> Any:
    """The actor entry point for ``account``, ready for :func:`supervise`."""
    if account.auth == "maildir":
        return partial(run_maildir_account, account, submit=daemon.processor.submit_many,
                       handle=handle)
    connection = config.connection_for(account)
    if isinstance(connection, OAuthApp):
        if connection.base_scope != "imap_smtp":
            return None
        from daemon.oauth.actor import run_oauth_imap_account

        return partial(run_oauth_imap_account, account, connection, oauth=daemon.oauth,
                       submit=daemon.processor.submit,
                       submit_many=daemon.processor.submit_many, store=daemon.store,
                       handle=handle)
    if connection is not None:
        from daemon.actors.imap import run_imap_account

        return partial(run_imap_account, account, connection,
                       submit=daemon.processor.submit,
                       submit_many=daemon.processor.submit_many, store=daemon.store,
                       handle=handle)
    return None


def _policy(account: Any) -> RestartPolicy:
    return RestartPolicy(cap=account.backoff_cap_seconds,
                         reset_after=account.stable_after_seconds,
                         park_after_auth_failures=account.auth_failures_before_park)


async def run_daemon(config: Config, *, stop: trio.Event | None = None,
                     handle_signals: bool = True,
                     task_status: trio.TaskStatus[Daemon] = trio.TASK_STATUS_IGNORED) -> None:
    """Run until a signal (or ``stop``) asks us to stop; see the module docstring.

    ``task_status.started(daemon)`` is called once the actors and the HTTP server run.
    """
    stop = stop if stop is not None else trio.Event()
    pm = build_plugin_manager(config)
    store = await open_daemon_store(config)
    secret = load_secret_key(config)
    oauth = OAuthManager(config, store, secret)
    outbox = OutboxActor(config, store, transports=partial(transport_for, oauth=oauth))
    processor = Processor(config, store, pm, secret=secret,
                          queue_mail=mail_queuer(config, secret), mail_queued=outbox.wakeup)
    daemon = Daemon(config, store, pm, processor, outbox, oauth)
    try:
        async with trio.open_nursery() as root:
            if handle_signals:
                root.start_soon(_watch_signals, stop)
            root.start_soon(sdnotify.watchdog)
            async with trio.open_nursery() as workers:
                await workers.start(processor.run)
                await workers.start(outbox.run)
                await workers.start(daemon.oauth.run)
                actors = await workers.start(_start_actors, config, daemon)
                if config.http.enabled:
                    daemon.http_urls = await workers.start(partial(
                        hypercorn.trio.serve, with_fast_probes(create_app(daemon)),
                        _hypercorn_config(config),
                        shutdown_trigger=stop.wait))
                daemon.actors_started = True
                sdnotify.notify("READY=1")
                log.info("daemon.started", accounts=len(daemon.handles),
                         http=daemon.http_urls, store=store.store.url_for_logs)
                task_status.started(daemon)
                await stop.wait()
                daemon.stopping = True
                sdnotify.notify("STOPPING=1")
                log.info("daemon.stopping")
                workers.cancel_scope.deadline = (trio.current_time()
                                                 + config.daemon.shutdown_grace_seconds)
                actors.cancel()
                with trio.move_on_after(config.daemon.shutdown_grace_seconds):
                    await call_async_hook(pm, "postroom_shutdown")
                workers.cancel_scope.cancel()
            root.cancel_scope.cancel()
    finally:
        with trio.CancelScope(shield=True):
            await store.aclose()
        log.info("daemon.stopped")


@asynccontextmanager
async def open_daemon(config: Config) -> AsyncIterator[Daemon]:
    """Run the daemon inside the caller's Trio run; stop it gracefully on the way out.

    For embedding, tests and benchmarks: no signal handling (the caller owns that).
    Yields once everything has started (as ``run_daemon``'s ``task_status``).
    """
    stop = trio.Event()
    async with trio.open_nursery() as nursery:
        daemon: Daemon = await nursery.start(partial(run_daemon, config, stop=stop,
                                                     handle_signals=False))
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
    async with trio.open_nursery() as nursery:
        async with trio.open_nursery() as starting:
            for account in config.accounts:
                handle = AccountHandle(AccountStatus(account.id, kind=account.auth))
                daemon.handles[account.id] = handle
                runner = _mailbox_runner(account, config, daemon, handle)
                if not account.enabled:
                    handle.status.set_state(AccountState.DISABLED)
                elif runner is None:
                    handle.status.set_state(
                        AccountState.DISABLED,
                        f"intake for auth {account.auth!r} not available yet")
                else:
                    starting.start_soon(nursery.start, supervise, runner, handle,
                                        _policy(account))
        task_status.started(nursery.cancel_scope)


def _hypercorn_config(config: Config) -> hypercorn.config.Config:
    hc = hypercorn.config.Config()
    hc.bind = [config.http.bind]
    hc.accesslog = None
    hc.errorlog = logging.getLogger("hypercorn.error")  # through our pipeline, not stderr
    hc.graceful_timeout = min(3.0, config.daemon.shutdown_grace_seconds)
    return hc


async def _watch_signals(stop: trio.Event) -> None:
    with trio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
        async for signum in signals:
            log.info("daemon.signal", signal=signal.Signals(signum).name)
            stop.set()
            return
