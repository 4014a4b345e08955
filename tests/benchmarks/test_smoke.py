"""Each benchmark runs end to end in a tiny configuration and prints its figures.

They run as ``python -m benchmarks.<name>`` from the repository root, exactly as a user
would, so a broken import, argument or setup step fails here instead of rotting until
the next benchmark run. The figures themselves are not judged (tiny runs say nothing);
what is checked is that each one is there and sane.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.fakes.dovecot import dovecot_binary

REPO = Path(__file__).resolve().parents[2]

needs_dovecot = pytest.mark.skipif(dovecot_binary() is None,
                                   reason="dovecot is not installed")


def run_benchmark(name: str, *args: str) -> tuple[str, dict[str, Any]]:
    """Run one benchmark; return its stdout and its ``figures:`` JSON."""
    done = subprocess.run([sys.executable, "-m", f"benchmarks.{name}", *args], cwd=REPO,
                          capture_output=True, text=True, timeout=90, check=False)
    assert done.returncode == 0, done.stderr[-3000:]
    lines = [line for line in done.stdout.splitlines() if line.startswith("figures: ")]
    assert len(lines) == 1, done.stdout
    figures = json.loads(lines[0].removeprefix("figures: "))
    assert figures["benchmark"] == name
    assert figures["machine"]["cpus"] >= 1
    return done.stdout, figures


@pytest.mark.dovecot
@needs_dovecot
def test_ingest_prints_the_three_rates_and_their_ratio() -> None:
    out, figures = run_benchmark("ingest", "--messages", "40")
    for label in ("(a) raw FETCH", "(b) FETCH + parse", "(c) postroom import", "c/a"):
        assert label in out
    assert figures["messages"] == 40
    outcomes = figures["outcomes"]
    assert outcomes["imported"] + outcomes["discarded"] == 40
    assert figures["conversationmessages"] == outcomes["imported"]
    assert figures["raw_fetch_rate"] > figures["import_rate"] > 0
    assert figures["c_over_a"] == pytest.approx(
        figures["import_rate"] / figures["raw_fetch_rate"])


@pytest.mark.dovecot
@needs_dovecot
def test_latency_prints_raw_and_postroom_percentiles() -> None:
    out, figures = run_benchmark("latency", "--messages", "3", "--interval", "0.6")
    assert "postroom over raw at p99" in out
    for key in ("raw_idle", "postroom", "added"):
        assert figures[key]["n"] == 3
    assert figures["raw_idle"]["p50"] > 0
    assert figures["postroom"]["max"] < 30


@pytest.mark.dovecot
@needs_dovecot
def test_scale_prints_rss_threads_and_cpu_with_every_account_idle() -> None:
    out, figures = run_benchmark("scale", "--accounts", "5", "--settle", "0",
                                 "--idle-seconds", "1")
    assert "start -> all idle" in out
    assert figures["end_states"] == {"idle": 5}
    assert 10 * 2**20 < figures["idle_rss_bytes"] < 2**30
    assert figures["idle_threads"] >= 1
    assert 0 <= figures["idle_cpu_fraction"] < 1
    assert figures["start_to_idle_seconds"] > figures["run_daemon_to_idle_seconds"] > 0


def test_webhook_prints_rate_latency_and_saturation() -> None:
    out, figures = run_benchmark("webhook", "--rate", "100", "--seconds", "1",
                                 "--connections", "4")
    assert "acknowledgement latency" in out
    assert figures["route"] == "POST /oauth/msg/notification"
    assert figures["statuses"] == {"202": 100}   # valid notifications, acknowledged
    assert figures["errors"] == 0
    assert sum(figures["statuses"].values()) == 100
    assert figures["fixed_latency"]["n"] == 100
    assert figures["saturation_rps"] > 0


def test_hostile_prints_time_peak_and_stall_per_attack() -> None:
    out, figures = run_benchmark("hostile", "--scale", "0.02", "--only",
                                 "x-failed-recipients-1mb", "--only", "folded-header-24mb")
    assert "worst stall" in out
    assert set(figures["attacks"]) == {"x-failed-recipients-1mb", "folded-header-24mb"}
    for result in figures["attacks"].values():
        assert result["failed"] is False
        assert 0 < result["peak_bytes"] <= 4 * result["bytes"] + 2**20
        assert 0 <= result["stall_seconds"] < result["seconds"] + 1
        assert result["livez_errors"] == 0


def test_graph_prints_notification_latency_and_the_throttled_backlog() -> None:
    out, figures = run_benchmark("graph", "--messages", "2", "--backlog", "10")
    assert "notification -> committed" in out
    assert figures["notification_latency"]["n"] == 2
    backlog = figures["backlog"]
    assert backlog["duplicates"] == 0 and backlog["max_in_flight"] <= 4
    assert backlog["throttled"] >= 1


@pytest.mark.dovecot
@pytest.mark.postgres
@needs_dovecot
def test_nodes_prints_one_and_three_nodes_and_the_failover() -> None:
    from tests.store.conftest import postgres_unreachable

    if (reason := postgres_unreachable()) is not None:
        pytest.skip(reason)
    out, figures = run_benchmark("nodes", "--accounts", "3", "--messages", "5",
                                 "--lease", "4", "--renew", "1")
    for label in ("1 node", "3 nodes", "failover"):
        assert label in out
    assert figures["one_node_seconds"] > 0 and figures["three_nodes_seconds"] > 0
    assert 0 < figures["failover_seconds"] <= figures["lease_seconds"] + 2
