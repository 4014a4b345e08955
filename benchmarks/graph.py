"""Graph intake against the emulator: notification -> committed, and a throttled backlog.

The real daemon (in this process, :func:`daemon.app.open_daemon`) runs one webhook-mode
Graph account against the Graph emulator (tests/fakes/graph.py, served on loopback in the
same Trio run), which validates the subscription against the daemon's HTTP server and
pushes notifications to it, as Graph does.

* **Notification -> committed**: ``--messages`` messages, one at a time; each is created
  in the emulator's mailbox (which pushes its notification) and timed until the
  account's status counts it committed. Printed: nearest-rank p50/p95/p99/max.
* **Backlog with throttling**: the daemon stops, ``--backlog`` messages arrive (their
  notifications are dropped after the emulator's retry window), every ``--throttle-every``
  -th Graph request is answered 429 with ``Retry-After: 1``, and the daemon starts again.
  Printed: messages per second from start to the last commit, how many 429s, and the most
  requests the mailbox had in flight (Graph allows 4).

Run: ``.venv/bin/python -m benchmarks.graph --messages 50 --backlog 300``
"""

from __future__ import annotations

import argparse
import textwrap
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import trio

from benchmarks._common import Report, distribution, free_port, workdir
from benchmarks._daemon import wait_for
from daemon.app import open_daemon
from daemon.config import load_config
from daemon.graph.client import static_token
from tests.fakes.graph import GraphEmulator, serve_emulator

MAILBOX = "bench@example.com"


def _config(root: Path, emulator: GraphEmulator) -> Any:
    port = free_port()
    (root / "postroom.toml").write_text(textwrap.dedent(f"""\
        [daemon]
        store = "sqlite:///postroom.db"
        log_level = "warning"
        log_format = "json"
        shutdown_grace_seconds = 5
        webhook_base_url = "http://127.0.0.1:{port}"

        [http]
        bind = "127.0.0.1:{port}"

        [[oauth_apps]]
        id = "graph"
        provider = "microsoft"
        client_id = "bench"
        client_secret_env = "POSTROOM_BENCH_GRAPH_SECRET"
        tenant_id = "bench"
        graph_base_url = "{emulator.base_url}"

        [[accounts]]
        id = "bench"
        email = "{MAILBOX}"
        auth = "graph"
        graph_mode = "webhook"
        """))
    return load_config(root / "postroom.toml",
                       environ={"POSTROOM_BENCH_GRAPH_SECRET": "bench"})


def _mail(n: int) -> bytes:
    return (f"From: Customer {n} <c{n}@customer.example>\r\nTo: {MAILBOX}\r\n"
            f"Subject: Case {n}\r\nMessage-ID: <case-{n}@customer.example>\r\n"
            "Date: Tue, 1 Dec 2026 10:00:00 +0000\r\nMIME-Version: 1.0\r\n"
            "Content-Type: text/plain; charset=utf-8\r\n\r\nPlease help.\r\n").encode()


def _subscribed(status: Any) -> bool:
    return (status.extra.get("subscription", {}).get("state") == "active"
            and status.extra.get("rounds", 0) >= 1)


async def _notification_latency(config: Any, emulator: GraphEmulator, n: int
                                ) -> list[float]:
    latencies = []
    tokens = lambda account, app: static_token(emulator.token)  # noqa: E731
    async with open_daemon(config, graph_tokens=tokens) as daemon:
        status = daemon.handles["bench"].status
        await wait_for(status, _subscribed)
        for i in range(n):
            before = status.imported
            start = time.monotonic()
            emulator.deliver(MAILBOX, _mail(i))
            await wait_for(status, lambda s, b=before: s.imported > b)
            latencies.append(time.monotonic() - start)
            await trio.sleep(0.6)  # past the actor's round gap: each message on its own
    return latencies


async def _backlog(config: Any, emulator: GraphEmulator, n: int, offset: int,
                   throttle_every: int) -> dict[str, float]:
    for i in range(n):
        emulator.deliver(MAILBOX, _mail(offset + i))
    while emulator.dropped_notifications < n:
        await trio.sleep(0.05)
    emulator.throttle_every = throttle_every
    throttled_before = emulator.throttled_responses
    emulator.max_in_flight = 0
    tokens = lambda account, app: static_token(emulator.token)  # noqa: E731
    start = time.monotonic()
    async with open_daemon(config, graph_tokens=tokens) as daemon:
        status = daemon.handles["bench"].status
        base = offset
        await wait_for(status, lambda s: s.imported >= n)
        seconds = time.monotonic() - start
        duplicates = status.duplicates
    return {"seconds": seconds, "rate": n / seconds, "base": base,
            "throttled": emulator.throttled_responses - throttled_before,
            "max_in_flight": emulator.max_in_flight, "duplicates": duplicates}


async def _main(messages: int, backlog: int, throttle_every: int) -> Report:
    report = Report("graph")
    with workdir("graph") as root:
        async with serve_emulator(GraphEmulator(page_size=50)) as emulator:
            emulator.retry_window = 0.2
            config = _config(root, emulator)
            lat = distribution(await _notification_latency(config, emulator, messages))
            report.line("notification -> committed", lat.ms(), notification_latency=lat)
            result = await _backlog(config, emulator, backlog, messages, throttle_every)
    report.line(f"backlog of {backlog}, every {throttle_every}th request 429",
                f"{result['rate']:.0f} msgs/s ({result['seconds']:.1f} s from start); "
                f"{result['throttled']:.0f} x 429 honoured; at most "
                f"{result['max_in_flight']:.0f} requests in flight; "
                f"{result['duplicates']:.0f} duplicates", backlog=result)
    return report


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--messages", type=int, default=50, help="timed messages (50)")
    parser.add_argument("--backlog", type=int, default=300, help="backlog size (300)")
    parser.add_argument("--throttle-every", type=int, default=10,
                        help="every n-th Graph request gets 429 (10)")
    args = parser.parse_args(argv)
    if args.messages < 1 or args.backlog < 1 or args.throttle_every < 2:
        parser.error("--messages and --backlog must be positive, --throttle-every >= 2")
    trio.run(_main, args.messages, args.backlog, args.throttle_every).print()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
