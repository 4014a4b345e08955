"""``/metrics`` of a running daemon: every family an operator alerts on, and the shipped
alert rules and dashboard use only those (docs/prometheus-alerts.yml, grafana-dashboard.json).
"""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest
import trio
from prometheus_client.parser import text_string_to_metric_families

from daemon.actors.status import AccountState
from daemon.metrics import CLIENT_SECRET_EXPIRY_DAYS, outbox_snapshot
from daemon.store import OutboxItem, open_store
from tests.e2e.conftest import drop, make_message

DOCS = Path(__file__).parents[2] / "docs"

#: Every family the issue asks for (names as the parser reports them, without _total).
FAMILIES = {
    "process_resident_memory_bytes", "process_cpu_seconds", "python_info",
    "python_gc_collections", "postroom_build_info", "postroom_messages",
    "postroom_account_state", "postroom_account_reconnects",
    "postroom_account_last_sync_timestamp_seconds", "postroom_outbox_sent",
    "postroom_outbox_failed", "postroom_outbox_retried", "postroom_outbox_items",
    "postroom_outbox_oldest_due_age_seconds", "postroom_import_duration_seconds",
    "postroom_send_duration_seconds", "postroom_webhook_notifications",
    "postroom_token_refresh_failures", "postroom_client_secret_expiry_days",
}
#: Prometheus' own series, which a rule may use although no daemon exports them.
PROMETHEUS_OWN = {"up"}


def parse(text: str) -> dict[str, list]:
    return {family.name: family.samples for family in text_string_to_metric_families(text)}


def sample_names(text: str) -> set[str]:
    """Every name a PromQL expression can select: family names and their sample names."""
    names = set()
    for family in text_string_to_metric_families(text):
        names.add(family.name)
        names.add(family.name + "_total" if family.type == "counter" else family.name)
        for suffix in ("_bucket", "_sum", "_count", "_created"):
            if family.type == "histogram":
                names.add(family.name + suffix)
        names.update(sample.name for sample in family.samples)
    return names


async def scrape(daemon) -> str:
    async with httpx.AsyncClient(base_url=daemon.http_urls[0]) as client:
        response = await client.get("/metrics")
    assert response.status_code == 200
    return response.text


async def test_every_family_is_exported(start_daemon, tmp_path):
    async with start_daemon() as (daemon, _):
        status = daemon.handles["support"].status
        drop(tmp_path / "Maildir", "1", make_message(1))
        with trio.fail_after(10):
            while status.imported < 1 or status.last_sync is None:
                await status.changed.wait()
        families = parse(await scrape(daemon))
    missing = FAMILIES - families.keys()
    assert not missing, f"families not on /metrics: {sorted(missing)}"
    (build,) = families["postroom_build_info"]
    assert build.labels["version"] and build.value == 1
    imports = {s.name: s.value for s in families["postroom_import_duration_seconds"]}
    assert imports["postroom_import_duration_seconds_count"] >= 1
    (synced,) = families["postroom_account_last_sync_timestamp_seconds"]
    assert abs(synced.value - datetime.now(UTC).timestamp()) < 60


async def test_every_state_is_a_series_of_0_or_1(start_daemon):
    async with start_daemon() as (daemon, _):
        states = {s.labels["state"]: s.value
                  for s in parse(await scrape(daemon))["postroom_account_state"]
                  if s.labels["account"] == "support"}
        current = daemon.handles["support"].status.state.value
    assert set(states) == {state.value for state in AccountState}
    assert states[current] == 1
    assert sum(states.values()) == 1


async def test_outbox_depth_counts_held_items(start_daemon):
    async with start_daemon() as (daemon, _):
        def hold(tx):
            return tx.enqueue(OutboxItem(account="support", recipient="ann@acme.example",
                                         message_id="<held-1@demo.example>", raw=b"x",
                                         kind="auto_reply", status="held"))
        await daemon.store.run(hold)
        items = {s.labels["status"]: s.value
                 for s in parse(await scrape(daemon))["postroom_outbox_items"]}
    assert items == {"queued": 0, "held": 1, "failed": 0}


def test_oldest_due_age_is_measured_from_the_oldest_due_item(tmp_path):
    store = open_store(f"sqlite:///{tmp_path / 'metrics.db'}")
    try:
        with store.transaction() as tx:
            for n in (1, 2):
                tx.enqueue(OutboxItem(account="a", recipient="x@example.com",
                                      message_id=f"<due-{n}@example.com>", raw=b"x"))
            empty = outbox_snapshot(tx, now=datetime.now(UTC))
            later = outbox_snapshot(tx, now=datetime.now(UTC) + timedelta(minutes=10))
    finally:
        store.close()
    assert empty.outbox_items["queued"] == 2
    assert 600 <= later.oldest_due_age_seconds < 660


async def test_fed_gauges_appear_with_their_labels(start_daemon):
    CLIENT_SECRET_EXPIRY_DAYS.labels(account="m365-test").set(12.5)
    try:
        async with start_daemon() as (daemon, _):
            (sample,) = parse(await scrape(daemon))["postroom_client_secret_expiry_days"]
    finally:
        CLIENT_SECRET_EXPIRY_DAYS.remove("m365-test")
    assert sample.labels == {"account": "m365-test"} and sample.value == 12.5


def rule_expressions() -> list[str]:
    """The ``expr`` of every alert rule (folded ``>`` blocks included), without YAML."""
    text = (DOCS / "prometheus-alerts.yml").read_text()
    exprs = re.findall(r"^\s+expr:\s*>?\s*\n?((?:.+\n)+?)(?=\s+(?:for|labels):)", text,
                       re.MULTILINE)
    assert len(exprs) == text.count("- alert:") >= 10
    return exprs


def dashboard_expressions() -> list[str]:
    dashboard = json.loads((DOCS / "grafana-dashboard.json").read_text())
    return [target["expr"] for panel in dashboard["panels"] for target in panel["targets"]]


@pytest.mark.parametrize("source", [rule_expressions, dashboard_expressions])
async def test_shipped_rules_use_only_exported_metrics(start_daemon, source):
    async with start_daemon() as (daemon, _):
        exported = sample_names(await scrape(daemon))
    used = set()
    for expr in source():
        used.update(re.findall(r"\b((?:postroom|process|python)_[a-z0-9_]+)", expr))
        used.update(name for name in re.findall(r"\b([a-z_]+)\{", expr)
                    if name in PROMETHEUS_OWN)
    unknown = used - exported - PROMETHEUS_OWN
    assert used and not unknown, f"rules use metrics /metrics lacks: {sorted(unknown)}"
