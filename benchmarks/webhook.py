"""The HTTP intake under load: requests per second and p99 acknowledgement latency.

The daemon runs in a child process with one Graph account (webhook mode, HTTP on a
loopback port) against the Graph emulator (tests/fakes/graph.py), which runs in a thread
of this process; this process is also the load generator. The daemon creates its
subscription for real (the emulator's validation handshake reaches the daemon), and the
load is *valid* notifications: that subscription's id and clientState, so each one is
checked, kicks the account (durably) and wakes its actor, which runs delta rounds
against the emulator meanwhile, as in production. The route is chosen at run time: the
notification route if the daemon answers it with anything but 404, else ``GET /livez``,
and the output says which.

Two measurements:

* fixed rate (``--rate``, default 500 req/s, for ``--seconds``): an open-loop generator
  (Trio, raw HTTP/1.1 keep-alive over ``--connections`` sockets). Request *i* is due at
  ``t0 + i / rate``; its latency runs from that due time to the last byte of the
  response, so a stalled server is charged for the requests queued behind it
  (no coordinated omission). Printed: achieved req/s, p50/p95/p99/max, statuses, the
  daemon's CPU and RSS meanwhile. Target: p99 <= 20 ms at 500 req/s.
* saturation: ``wrk`` (if installed; ``apt-get install wrk``) with ``--connections``
  connections for ``--seconds``, else the same Python client in a closed loop. Printed:
  req/s and the latency percentiles wrk reports.

Run: ``.venv/bin/python -m benchmarks.webhook --rate 500 --seconds 10``
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import re
import shutil
import subprocess
import textwrap
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path

import trio

from benchmarks._common import (
    ProcSample,
    Report,
    distribution,
    sample_process,
    workdir,
    write_config,
)
from benchmarks._daemon import spawn_daemon
from benchmarks._emulator import EmulatorThread

MIB = 2 ** 20
GRAPH_MAILBOX = "bench@example.com"
NOTIFICATION_PATH = "/oauth/msg/notification"
FALLBACK_PATH = "/livez"

#: One Graph change notification, shaped like Microsoft's (ids are made up).
NOTIFICATION = json.dumps({"value": [{
    "subscriptionId": "7f105c7d-2dc5-4530-97cd-4e7ae6534c07",
    "subscriptionExpirationDateTime": "2026-12-01T18:23:45.9356913Z",
    "changeType": "created",
    "resource": "Users/6a5b2c1d-0000-4000-8000-1234567890ab/Messages/AAMkAGUAAAwTW09AAA=",
    "resourceData": {
        "@odata.type": "#Microsoft.Graph.Message",
        "@odata.id": "Users/6a5b2c1d-0000-4000-8000-1234567890ab/Messages/AAMkAGUAAAwTW09AAA=",
        "@odata.etag": 'W/"CQAAABYAAADkrWGo7bouTKlsgTZMr9KwAAAUWRHf"',
        "id": "AAMkAGUAAAwTW09AAA=",
    },
    "clientState": "bench-client-state",
    "tenantId": "bd1e3a1c-0000-4000-8000-1234567890ab",
}]}).encode()


@dataclass(frozen=True)
class Target:
    """What to load: method, path and body of one request."""

    method: str
    path: str
    body: bytes = b""

    def request_bytes(self, host: str, port: int) -> bytes:
        head = [f"{self.method} {self.path} HTTP/1.1", f"Host: {host}:{port}",
                "Connection: keep-alive", "Accept: */*"]
        if self.method == "POST":
            head += ["Content-Type: application/json", f"Content-Length: {len(self.body)}"]
        return ("\r\n".join(head) + "\r\n\r\n").encode() + self.body


def choose_target(host: str, port: int, body: bytes = NOTIFICATION) -> tuple[Target, int]:
    """The notification route if it exists (not 404), else ``/livez``; and its status."""
    notification = Target("POST", NOTIFICATION_PATH, body)
    connection = http.client.HTTPConnection(host, port, timeout=10)
    try:
        connection.request("POST", NOTIFICATION_PATH, body=body,
                           headers={"Content-Type": "application/json"})
        response = connection.getresponse()
        response.read()
    finally:
        connection.close()
    if response.status != 404:
        return notification, response.status
    return Target("GET", FALLBACK_PATH), 404


# -- a minimal HTTP/1.1 keep-alive client -----------------------------------------------

class _Connection:
    """One keep-alive connection; one request at a time."""

    def __init__(self, stream: trio.SocketStream) -> None:
        self.stream = stream
        self.buffer = bytearray()

    async def _fill(self) -> None:
        chunk = await self.stream.receive_some(65536)
        if not chunk:
            raise ConnectionError("the server closed the connection")
        self.buffer += chunk

    async def exchange(self, request: bytes) -> int:
        """Send ``request``, read the whole response; return its status code."""
        await self.stream.send_all(request)
        while (end := self.buffer.find(b"\r\n\r\n")) < 0:
            await self._fill()
        head = bytes(self.buffer[:end]).decode("latin-1")
        del self.buffer[:end + 4]
        status = int(head.split(" ", 2)[1])
        length = re.search(r"(?im)^content-length:\s*(\d+)", head)
        if length is not None:
            while len(self.buffer) < int(length.group(1)):
                await self._fill()
            del self.buffer[:int(length.group(1))]
        elif re.search(r"(?im)^transfer-encoding:\s*chunked", head):
            while (stop := self.buffer.find(b"0\r\n\r\n")) < 0:
                await self._fill()
            del self.buffer[:stop + 5]
        return status


@dataclass
class LoadResult:
    """Latencies (seconds) and statuses of one load phase."""

    latencies: list[float] = field(default_factory=list)
    statuses: Counter[int] = field(default_factory=Counter)
    errors: int = 0
    seconds: float = 0.0


async def _connections(host: str, port: int, n: int) -> list[_Connection]:
    return [_Connection(await trio.open_tcp_stream(host, port)) for _ in range(n)]


async def fixed_rate(host: str, port: int, target: Target, *, rate: float, seconds: float,
                     connections: int) -> LoadResult:
    """Open-loop load at ``rate`` req/s; latency from each request's due time."""
    result = LoadResult()
    request = target.request_bytes(host, port)
    pool = await _connections(host, port, connections)
    free_send, free_receive = trio.open_memory_channel[_Connection](connections)
    for connection in pool:
        free_send.send_nowait(connection)

    async def one(connection: _Connection, due: float) -> None:
        try:
            result.statuses[await connection.exchange(request)] += 1
            result.latencies.append(trio.current_time() - due)
            free_send.send_nowait(connection)
        except (OSError, ConnectionError, trio.BrokenResourceError):
            result.errors += 1

    total = int(rate * seconds)
    start = trio.current_time() + 0.05
    async with trio.open_nursery() as nursery:
        for i in range(total):
            due = start + i / rate
            await trio.sleep_until(due)
            nursery.start_soon(one, await free_receive.receive(), due)
    result.seconds = trio.current_time() - start
    for connection in pool:
        await connection.stream.aclose()
    return result


async def closed_loop(host: str, port: int, target: Target, *, seconds: float,
                      connections: int) -> LoadResult:
    """Each connection sends its next request as soon as the last one is answered."""
    result = LoadResult()
    request = target.request_bytes(host, port)
    pool = await _connections(host, port, connections)
    start = trio.current_time()
    deadline = start + seconds

    async def loop(connection: _Connection) -> None:
        while trio.current_time() < deadline:
            sent = trio.current_time()
            result.statuses[await connection.exchange(request)] += 1
            result.latencies.append(trio.current_time() - sent)
        await connection.stream.aclose()

    async with trio.open_nursery() as nursery:
        for connection in pool:
            nursery.start_soon(loop, connection)
    result.seconds = trio.current_time() - start
    return result


# -- wrk --------------------------------------------------------------------------------

_UNITS = {"us": 1e-6, "ms": 1e-3, "s": 1.0}


def run_wrk(url: str, target: Target, *, seconds: float, connections: int,
            scratch: Path) -> dict[str, float] | None:
    """wrk's req/s and latency percentiles (seconds), or None when wrk is missing."""
    binary = shutil.which("wrk")
    if binary is None:
        return None
    command = [binary, "-t1", f"-c{connections}", f"-d{max(1, round(seconds))}s", "--latency"]
    if target.method == "POST":
        script = scratch / "post.lua"
        script.write_text(f'wrk.method = "POST"\nwrk.body = {json.dumps(target.body.decode())}\n'
                          'wrk.headers["Content-Type"] = "application/json"\n')
        command += ["-s", str(script)]
    out = subprocess.run([*command, url + target.path], capture_output=True, text=True,
                         check=True, timeout=seconds + 30).stdout
    figures = {"rps": float(re.search(r"Requests/sec:\s*([\d.]+)", out).group(1))}
    for pct, value, unit in re.findall(r"(?m)^\s+(50|75|90|99)%\s+([\d.]+)(us|ms|s)\s*$", out):
        figures[f"p{pct}"] = float(value) * _UNITS[unit]
    errors = re.search(r"Non-2xx or 3xx responses:\s*(\d+)", out)
    figures["non_2xx"] = float(errors.group(1)) if errors else 0.0
    return figures


# -- the benchmark ----------------------------------------------------------------------

def _graph_config(root: Path, graph_base_url: str) -> Path:
    """The benchmark's config plus a Graph app and one webhook-mode account."""
    path = write_config(root, http=True, log_level="warning")
    text = path.read_text()
    bind = re.search(r'bind = "([^"]+)"', text).group(1)  # type: ignore[union-attr]
    text = text.replace('shutdown_grace_seconds = 5',
                        f'shutdown_grace_seconds = 5\nwebhook_base_url = "http://{bind}"')
    text += textwrap.dedent(f"""
        [[oauth_apps]]
        id = "graph"
        provider = "microsoft"
        client_id = "bench"
        client_secret_env = "POSTROOM_BENCH_GRAPH_SECRET"
        tenant_id = "bench"
        graph_base_url = "{graph_base_url}"

        [[accounts]]
        id = "bench"
        email = "{GRAPH_MAILBOX}"
        auth = "graph"
        graph_mode = "webhook"
        """)
    path.write_text(text)
    return path


def _subscription(emulator: EmulatorThread, timeout: float = 60.0) -> tuple[str, str]:
    """Wait for the daemon's subscription; its id and clientState."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        subs = emulator.call(lambda em: [(s.id, s.client_state)
                                         for s in em.active_subscriptions(GRAPH_MAILBOX)])
        if subs:
            return subs[0]
        time.sleep(0.05)
    raise RuntimeError("the daemon created no subscription")


def _valid_notification(subscription_id: str, client_state: str) -> bytes:
    body = json.loads(NOTIFICATION)
    body["value"][0].update(subscriptionId=subscription_id, clientState=client_state)
    return json.dumps(body).encode()


def run(rate: float, *, seconds: float, connections: int, keep: bool,
        livez: bool = False) -> Report:
    report = Report("webhook")
    with workdir("webhook", keep=keep) as root, EmulatorThread() as emulator:
        config = _graph_config(root, emulator.base_url)
        daemon = spawn_daemon(config, root / "daemon.log", {
            "POSTROOM_BENCH_GRAPH_TOKEN": emulator.emulator.token,
            "POSTROOM_BENCH_GRAPH_SECRET": "bench"})
        try:
            url = daemon.milestone("started", timeout=60)["http"][0]
            host, port = url.removeprefix("http://").rsplit(":", 1)
            body = _valid_notification(*_subscription(emulator))
            target, probe_status = choose_target(host, int(port), body)
            if livez:  # the baseline: the same stack's cheapest route, same moment
                target = Target("GET", FALLBACK_PATH)
            load = partial(fixed_rate, host, int(port), target, rate=rate,
                           connections=connections)
            trio.run(partial(load, seconds=min(1.0, seconds)))  # warm-up, not reported
            before = sample_process(daemon.pid)
            fixed = trio.run(partial(load, seconds=seconds))
            after = sample_process(daemon.pid)
            wrk = run_wrk(url, target, seconds=seconds, connections=connections,
                          scratch=root)
            saturated = None if wrk is not None else trio.run(partial(
                closed_loop, host, int(port), target, seconds=seconds,
                connections=connections))
        finally:
            daemon.stop()
    _report(report, target, probe_status, rate, connections, fixed, before, after,
            wrk, saturated)
    return report


def _report(report: Report, target: Target, probe_status: int, rate: float,
            connections: int, fixed: LoadResult, before: ProcSample, after: ProcSample,
            wrk: dict[str, float] | None, saturated: LoadResult | None) -> None:
    route = f"{target.method} {target.path}"
    why = ("the Graph notification route answered " + str(probe_status)
           if target.path == NOTIFICATION_PATH
           else "--livez baseline" if probe_status != 404
           else f"{NOTIFICATION_PATH} answered 404 (not built yet), so /livez is loaded")
    report.line("route", f"{route} ({why})", route=route)
    lat = distribution(fixed.latencies)
    achieved = len(fixed.latencies) / fixed.seconds
    cpu = (after.cpu_seconds - before.cpu_seconds) / fixed.seconds
    statuses = ", ".join(f"{n}x {s}" for s, n in sorted(fixed.statuses.items()))
    report.line(f"fixed rate {rate:g} req/s", f"{achieved:.0f} req/s achieved over "
                f"{fixed.seconds:.1f} s, {connections} connections; {statuses}; "
                f"{fixed.errors} errors", target_rate=rate, achieved_rate=achieved,
                statuses=dict(fixed.statuses), errors=fixed.errors)
    report.line("  acknowledgement latency", lat.ms(), fixed_latency=lat)
    report.line("  daemon meanwhile", f"CPU {cpu * 100:.0f}% of one core, RSS "
                f"{after.rss_bytes / MIB:.0f} MiB",
                fixed_daemon_cpu_fraction=cpu)
    report.line("  target", f"p99 <= 20 ms at 500 req/s: "
                f"{'met' if lat.p99 <= 0.020 and achieved >= 0.98 * rate else 'MISSED'}")
    if wrk is not None:
        pcts = ", ".join(f"{k} {v * 1e3:.1f} ms" for k, v in wrk.items() if k.startswith("p"))
        report.line("saturation (wrk)", f"{wrk['rps']:.0f} req/s with {connections} "
                    f"connections; {pcts}; {wrk['non_2xx']:.0f} non-2xx",
                    saturation_rps=wrk["rps"], saturation_tool="wrk", saturation=wrk)
    elif saturated is not None:
        sat = distribution(saturated.latencies)
        rps = len(saturated.latencies) / saturated.seconds
        report.line("saturation (Python, wrk not installed)",
                    f"{rps:.0f} req/s with {connections} connections; {sat.ms()}",
                    saturation_rps=rps, saturation_tool="python", saturation=sat)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--rate", type=float, default=500.0, help="fixed rate, req/s (500)")
    parser.add_argument("--seconds", type=float, default=10.0,
                        help="length of each load phase (10)")
    parser.add_argument("--connections", type=int, default=16,
                        help="keep-alive connections (16)")
    parser.add_argument("--keep", action="store_true", help="keep the temporary directory")
    parser.add_argument("--livez", action="store_true",
                        help="load GET /livez instead (a baseline for this box's moment)")
    args = parser.parse_args(argv)
    if args.rate <= 0 or args.seconds <= 0 or args.connections < 1:
        parser.error("--rate, --seconds and --connections must be positive")
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    run(args.rate, seconds=args.seconds, connections=args.connections, keep=args.keep,
        livez=args.livez).print()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
