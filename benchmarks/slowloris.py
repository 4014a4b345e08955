"""A slow-body flood against a daemon limited to 1,024 file descriptors (issue 9).

The daemon runs in a child process whose ``RLIMIT_NOFILE`` soft limit is ``--nofile``
(default 1,024, systemd's default), with one Maildir account and ``[http]
max_connections`` at ``--max-connections`` (default 512, the setting's default; above
``--nofile`` it is no cap at all). This process opens ``--connections`` (default 1,000)
loopback connections that each send a request head and one byte of a 1,000-byte body,
then hold them for ``--hold`` seconds; meanwhile a probe opens a fresh connection for
``GET /livez`` every 100 ms and a message is dropped into the Maildir every second.

Printed: /livez latency (p50/p99/max) and failures during the flood, the daemon's open
descriptors (peak), connections evicted at the cap, messages imported during the flood,
the account's state and reconnects, and "Too many open files" lines in the daemon's log.
Before the fix the same flood (1,100 connections) crashed the Maildir actor with EMFILE.

Run: ``.venv/bin/python -m benchmarks.slowloris`` (about 30 s).
"""

from __future__ import annotations

import argparse
import resource
import time
from collections.abc import Sequence
from pathlib import Path

import httpx
import trio

from benchmarks._common import HOST, Report, distribution, free_port, workdir
from benchmarks._daemon import spawn_daemon

HEAD = (b"POST /api/v1/textsnippets HTTP/1.1\r\nHost: 127.0.0.1\r\n"
        b"Content-Type: application/json\r\nContent-Length: 1000\r\n\r\n{")


def _config(root: Path, port: int, max_connections: int) -> Path:
    (root / "Maildir" / "new").mkdir(parents=True)
    for sub in ("cur", "tmp"):
        (root / "Maildir" / sub).mkdir()
    path = root / "postroom.toml"
    path.write_text("\n".join([
        "[daemon]", 'store = "sqlite:///postroom.db"', 'log_format = "json"',
        "shutdown_grace_seconds = 5", "",
        "[http]", f'bind = "{HOST}:{port}"', "body_timeout_seconds = 30",
        f"max_connections = {max_connections}", "",
        "[[accounts]]", 'id = "support"', 'email = "support@bench.example"',
        'auth = "maildir"', 'maildir = "Maildir"', ""]))
    return path


def _message(n: int) -> bytes:
    return (f"From: Customer {n} <c{n}@customers.example>\r\nTo: support@bench.example\r\n"
            f"Subject: Flood {n}\r\nMessage-ID: <flood-{n}@customers.example>\r\n"
            f"Date: Tue, 01 Dec 2026 12:00:00 +0000\r\n\r\nHello {n}\r\n").encode()


def _open_fds(pid: int) -> int:
    return len(list(Path(f"/proc/{pid}/fd").iterdir()))


async def _flood(url: str, root: Path, pid: int, args: argparse.Namespace) -> dict:
    port = int(url.rsplit(":", 1)[1])
    latencies: list[float] = []
    failures = 0
    peak_fds = 0
    streams: list[trio.SocketStream] = []
    done = trio.Event()

    async def probe() -> None:
        nonlocal failures, peak_fds
        while not done.is_set():
            began = time.monotonic()
            try:
                async with httpx.AsyncClient(base_url=url, timeout=5) as client:
                    ok = (await client.get("/livez")).status_code == 200
            except httpx.HTTPError:
                ok = False
            latencies.append(time.monotonic() - began)
            failures += not ok
            peak_fds = max(peak_fds, _open_fds(pid))
            await trio.sleep(0.1)

    async def mail() -> None:
        n = 0
        while not done.is_set():
            n += 1
            (root / "Maildir" / "tmp" / f"{n}.eml").write_bytes(_message(n))
            (root / "Maildir" / "tmp" / f"{n}.eml").rename(root / "Maildir" / "new" / f"{n}")
            await trio.sleep(1)

    async with trio.open_nursery() as nursery:
        nursery.start_soon(probe)
        nursery.start_soon(mail)
        for _ in range(args.connections):
            stream = await trio.open_tcp_stream(HOST, port)
            await stream.send_all(HEAD)
            streams.append(stream)
        await trio.sleep(args.hold)
        done.set()
    for stream in streams:
        await stream.aclose()
    async with httpx.AsyncClient(base_url=url) as client:
        status = (await client.get("/status")).json()
    return {"latencies": latencies, "failures": failures, "peak_fds": peak_fds,
            "status": status, "dropped": len(list((root / "Maildir" / "cur").iterdir()))
            + len(list((root / "Maildir" / "new").iterdir()))}


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--connections", type=int, default=1000)
    parser.add_argument("--hold", type=float, default=15.0, help="seconds to hold them")
    parser.add_argument("--nofile", type=int, default=1024, help="the daemon's fd limit")
    parser.add_argument("--max-connections", type=int, default=512,
                        help="[http] max_connections (above --nofile: no effective cap)")
    args = parser.parse_args(argv)
    with workdir("slowloris") as root:
        port = free_port()
        config = _config(root, port, args.max_connections)
        soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        resource.setrlimit(resource.RLIMIT_NOFILE, (args.nofile, hard))  # the child's
        try:
            daemon = spawn_daemon(config, root / "daemon.log", {})
        finally:
            resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
        try:
            started = daemon.milestone("started", timeout=60)
            daemon.milestone("all_idle", timeout=60)
            figures = trio.run(_flood, started["http"][0], root, daemon.pid, args)
        finally:
            daemon.stop()
        log = (root / "daemon.log").read_text()
    account = figures["status"]["accounts"][0]
    http = figures["status"]["http"]
    live = distribution(figures["latencies"])
    report = Report("slowloris")
    report.line("flood", f"{args.connections} slow-body connections held {args.hold:.0f} s; "
                f"daemon RLIMIT_NOFILE {args.nofile}, max_connections {args.max_connections}",
                connections=args.connections, nofile=args.nofile)
    report.line("/livez", f"{live.ms()}, failures {figures['failures']}",
                livez=live, livez_failures=figures["failures"])
    report.line("connections", f"peak {http['peak_connections']} open, evicted "
                f"{http['evicted']}; daemon fds peak {figures['peak_fds']}",
                http=http, peak_fds=figures["peak_fds"])
    report.line("intake", f"imported {account['counts']['imported']} of "
                f"{figures['dropped']} dropped; state {account['state']}, "
                f"reconnects {account['reconnects']}", account=account)
    report.line("log", f"'Too many open files' lines: {log.count('Too many open files')}; "
                f"actor.crashed: {log.count('actor.crashed')}",
                emfile_lines=log.count("Too many open files"),
                crashes=log.count("actor.crashed"))
    report.print()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
