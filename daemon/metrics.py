"""The ``/metrics`` page: what an operator alerts on, in Prometheus text format.

Two kinds of metric, because they come from two places:

* **Instruments** — counters and histograms the code increments where things happen
  (an import, a send, a webhook notification, a failed token refresh). They live in one
  module-level :data:`REGISTRY`, so any module can ``from daemon.metrics import
  SEND_SECONDS`` without the daemon object; several daemons in one process (the tests)
  share them, which is the usual prometheus-client trade-off (a process has one set).
* **Read at scrape time** — per-account state, reconnects, last sync and message counts
  from the actors' :class:`~daemon.actors.status.AccountStatus`, and the outbox's depth
  and oldest due item from the store (:class:`Snapshot`). Nothing is cached, so a series
  can never go stale.

Every account state is exported for every state as 0/1 (``postroom_account_state``), so a
series never vanishes when the state changes and ``== 1`` alerts stay simple.

Families, by name (``docs/operations.md`` lists them; ``docs/prometheus-alerts.yml`` and
``docs/grafana-dashboard.json`` use them; ``tests/http/test_metrics.py`` checks both)::

    process_*, python_info, python_gc_*          the standard collectors
    postroom_build_info{version,python}          always 1
    postroom_messages_total{account,outcome}     imported | duplicate | discarded | failed
    postroom_account_state{account,state}        1 for the current state, else 0
    postroom_account_reconnects_total{account}   supervisor restarts after a failure
    postroom_account_last_sync_timestamp_seconds{account}   last completed sync round
    postroom_outbox_sent_total / _failed_total / _retried_total   since start
    postroom_outbox_items{status}                queued | held | failed, in the store
    postroom_outbox_oldest_due_age_seconds       how long the oldest due item has waited
    postroom_import_duration_seconds             histogram, per message
    postroom_send_duration_seconds{account}      histogram, per SMTP send
    postroom_webhook_notifications_total{account,outcome}   valid | invalid
    postroom_token_refresh_failures_total{account}
    postroom_client_secret_expiry_days{account}  days until the OAuth client secret expires
"""

from __future__ import annotations

__all__ = [
    "CLIENT_SECRET_EXPIRY_DAYS", "IMPORT_SECONDS", "REGISTRY", "SEND_SECONDS",
    "TOKEN_REFRESH_FAILURES", "WEBHOOK_NOTIFICATIONS", "Snapshot", "metrics_text",
    "outbox_snapshot",
]

import platform
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from prometheus_client import (
    GC_COLLECTOR,
    PLATFORM_COLLECTOR,
    PROCESS_COLLECTOR,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

from daemon import __version__
from daemon.actors.status import AccountHandle, AccountState

#: The instruments below, plus the process, platform and GC collectors.
REGISTRY = CollectorRegistry(auto_describe=True)
for _standard in (PROCESS_COLLECTOR, PLATFORM_COLLECTOR, GC_COLLECTOR):
    REGISTRY.register(_standard)

#: Seconds from a message reaching the processor to its outcome (parse, classify, commit).
IMPORT_SECONDS = Histogram(
    "postroom_import_duration_seconds", "Time to import one message (parse to commit)",
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
    registry=REGISTRY)
#: Seconds one SMTP (or Maildir) send took, whatever its result.
SEND_SECONDS = Histogram(
    "postroom_send_duration_seconds", "Time to hand one outgoing message to its server",
    ["account"], buckets=(0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120),
    registry=REGISTRY)
#: Webhook notifications received; ``outcome`` is ``valid`` or ``invalid`` (bad
#: clientState, unknown subscription, unparseable). Incremented by the webhook routes.
WEBHOOK_NOTIFICATIONS = Counter(
    "postroom_webhook_notifications", "Webhook notifications received, by validity",
    ["account", "outcome"], registry=REGISTRY)
#: OAuth token refreshes that failed (any reason). Incremented by the OAuth code.
TOKEN_REFRESH_FAILURES = Counter(
    "postroom_token_refresh_failures", "OAuth token refreshes that failed",
    ["account"], registry=REGISTRY)
#: Days until the account's OAuth client secret expires (negative: expired). Set by the
#: OAuth code when it learns the expiry (``.labels(account=...).set(days)``).
CLIENT_SECRET_EXPIRY_DAYS = Gauge(
    "postroom_client_secret_expiry_days", "Days until the OAuth client secret expires",
    ["account"], registry=REGISTRY)

_OUTCOMES = (("imported", "imported"), ("duplicate", "duplicates"),
             ("discarded", "discarded"), ("failed", "failed"))
#: Outbox statuses counted in ``postroom_outbox_items``.
OUTBOX_STATUSES = ("queued", "held", "failed")


@dataclass(frozen=True)
class Snapshot:
    """What a scrape reads from the store: outbox items by status, oldest due item age.

    Read in the store's thread by :func:`outbox_snapshot` just before rendering, so the
    collector itself never touches the database.
    """

    outbox_items: Mapping[str, int]
    oldest_due_age_seconds: float


def outbox_snapshot(tx: Any, now: datetime | None = None) -> Snapshot:
    """Count the outbox by status and age its oldest due item (run as ``store.run(...)``)."""
    now = now or datetime.now(UTC)
    counts = {status: tx.count_outbox(status) for status in OUTBOX_STATUSES}
    due = tx.due(now, limit=1)
    age = 0.0
    if due and due[0].created_at is not None:
        age = max(0.0, (now - due[0].created_at).total_seconds())
    return Snapshot(counts, age)


class _DaemonCollector(Collector):
    """The families read at scrape time from the actors' statuses and a :class:`Snapshot`."""

    def __init__(self, handles: Iterable[AccountHandle], outbox: Any,
                 snapshot: Snapshot) -> None:
        self.handles = list(handles)
        self.outbox = outbox
        self.snapshot = snapshot

    def collect(self) -> Iterator[Any]:
        build = GaugeMetricFamily("postroom_build_info", "The running postroom's version",
                                  labels=["version", "python"])
        build.add_metric([__version__, platform.python_version()], 1)
        yield build
        yield from self._accounts()
        yield from self._outbox()

    def _accounts(self) -> Iterator[Any]:
        messages = CounterMetricFamily("postroom_messages", "Messages by outcome",
                                       labels=["account", "outcome"])
        state = GaugeMetricFamily("postroom_account_state",
                                  "1 for the account's current state, 0 for the others",
                                  labels=["account", "state"])
        reconnects = CounterMetricFamily("postroom_account_reconnects",
                                         "Restarts of the account's actor after a failure",
                                         labels=["account"])
        last_sync = GaugeMetricFamily("postroom_account_last_sync_timestamp_seconds",
                                      "Unix time of the last completed sync round",
                                      labels=["account"])
        for handle in self.handles:
            s = handle.status
            for outcome, attribute in _OUTCOMES:
                messages.add_metric([s.account, outcome], getattr(s, attribute))
            for each in AccountState:
                state.add_metric([s.account, each.value], 1 if s.state is each else 0)
            reconnects.add_metric([s.account], s.reconnects)
            if s.last_sync is not None:
                last_sync.add_metric([s.account], s.last_sync.timestamp())
        yield from (messages, state, reconnects, last_sync)

    def _outbox(self) -> Iterator[Any]:
        status = self.outbox
        for name, value, help_text in (
                ("sent", status.sent, "Outgoing messages the server accepted"),
                ("failed", status.failed, "Outgoing messages given up on (permanent)"),
                ("retried", status.retried, "Outgoing attempts that will be retried")):
            family = CounterMetricFamily(f"postroom_outbox_{name}", help_text)
            family.add_metric([], value)
            yield family
        items = GaugeMetricFamily("postroom_outbox_items", "Outbox items in the store",
                                  labels=["status"])
        for name in OUTBOX_STATUSES:
            items.add_metric([name], self.snapshot.outbox_items.get(name, 0))
        yield items
        yield GaugeMetricFamily("postroom_outbox_oldest_due_age_seconds",
                                "Seconds the oldest due outbox item has waited (0: none)",
                                value=self.snapshot.oldest_due_age_seconds)


class _Instruments(Collector):
    """:data:`REGISTRY` as one collector of a per-scrape registry."""

    def collect(self) -> Iterator[Any]:
        yield from REGISTRY.collect()


def metrics_text(handles: Iterable[AccountHandle], outbox: Any, snapshot: Snapshot, *,
                 extra: Iterable[Any] = ()) -> str:
    """The whole ``/metrics`` page: :data:`REGISTRY`, the scrape-time families, and the
    ``extra`` collectors (objects with ``collect()``: the OAuth apps, Graph mailboxes)."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(_Instruments())
    registry.register(_DaemonCollector(handles, outbox, snapshot))
    for collector in extra:
        registry.register(collector)
    return generate_latest(registry).decode()
