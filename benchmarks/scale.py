"""Many idle mailboxes in one daemon: memory, threads and CPU while nothing happens.

N accounts (default 1,000), each its own Dovecot user with an empty INBOX, run in one
daemon process (``python -m benchmarks._daemon``, a child, so /proc shows the daemon
alone). Dovecot's process and connection limits are raised to fit N connections.

Printed:

* start -> all idle: from spawning the process (and from the ``run_daemon`` call) until
  every account is in IDLE (the daemon reports it from status events);
* the peak RSS and thread count during that start;
* after ``--settle`` seconds (longer than the 10 s after which Trio retires idle worker
  threads), over ``--idle-seconds``: RSS, thread count and CPU (% of one core).

Targets: <= 300 MB RSS, <= 5 % of one core while idle, no thread per idle mailbox.

Run: ``.venv/bin/python -m benchmarks.scale --accounts 1000``
"""

from __future__ import annotations

import argparse
import os
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass

from benchmarks._common import (
    PASSWORD_ENV,
    ProcSample,
    Report,
    dovecot_server,
    sample_process,
    workdir,
    write_config,
)
from benchmarks._daemon import spawn_daemon

MIB = 2 ** 20
#: Trio's thread cache ends a worker thread after this many idle seconds (plus a margin).
TRIO_THREAD_IDLE_SECONDS = 11


@dataclass(frozen=True)
class _Timed:
    at: float
    sample: ProcSample


class Sampler:
    """Samples a process from /proc every ``period`` seconds in a background thread."""

    def __init__(self, pid: int, period: float = 0.25) -> None:
        self.pid = pid
        self.period = period
        self.samples: list[_Timed] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> Sampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    def _run(self) -> None:
        while True:
            try:
                self.samples.append(_Timed(time.monotonic(), sample_process(self.pid)))
            except OSError:
                return
            if self._stop.wait(self.period):
                return

    def between(self, start: float, end: float) -> list[ProcSample]:
        return [t.sample for t in self.samples if start <= t.at <= end]


def run(accounts: int, *, settle: float, idle_seconds: float, keep: bool) -> Report:
    report = Report("scale")
    password = "bench-password"
    with workdir("scale", keep=keep) as root, dovecot_server(connections=accounts) as server:
        users = [server.add_user(f"bench{i:05d}", password) for i in range(accounts)]
        config = write_config(root, server=server, users=users, http=True)
        daemon = spawn_daemon(config, root / "daemon.log", {PASSWORD_ENV: password})
        try:
            with Sampler(daemon.pid) as sampler:
                started = daemon.milestone("started", timeout=120)
                idle = daemon.milestone("all_idle", timeout=120 + accounts * 0.5)
                time.sleep(settle)  # let Trio retire the worker threads the start needed
                window_start = time.monotonic()
                before = sample_process(daemon.pid)
                time.sleep(idle_seconds)
                after = sample_process(daemon.pid)
                window_end = time.monotonic()
            startup = sampler.between(daemon.spawned_at, idle["at"])
            window = [*sampler.between(window_start, window_end), after]
        finally:
            stopped = daemon.stop()
    cpu = (after.cpu_seconds - before.cpu_seconds) / (window_end - window_start)
    still_idle = (stopped or {}).get("states", {})
    report.line("setup", f"{accounts} accounts, one Dovecot user and IMAP connection each, "
                         "one daemon process", accounts=accounts)
    report.line("start -> all idle",
                f"{idle['at'] - daemon.spawned_at:.1f} s from process spawn "
                f"({idle['seconds']:.1f} s from run_daemon; imports and config "
                f"{started['at'] - started['seconds'] - daemon.spawned_at:.1f} s)",
                start_to_idle_seconds=idle["at"] - daemon.spawned_at,
                run_daemon_to_idle_seconds=idle["seconds"])
    report.line("during start (peak)",
                f"RSS {max(s.rss_bytes for s in startup) / MIB:.0f} MiB, "
                f"{max(s.threads for s in startup)} threads",
                startup_peak_rss_bytes=max(s.rss_bytes for s in startup),
                startup_peak_threads=max(s.threads for s in startup))
    peak_rss = max(s.rss_bytes for s in window)
    report.line(f"idle ({idle_seconds:g} s, after {settle:g} s)",
                f"RSS {after.rss_bytes / MIB:.0f} MiB (max {peak_rss / MIB:.0f}), "
                f"{after.threads} threads (max {max(s.threads for s in window)}), "
                f"CPU {cpu * 100:.2f}% of one core",
                idle_rss_bytes=after.rss_bytes, idle_threads=after.threads,
                idle_cpu_fraction=cpu)
    report.line("per account", f"{after.rss_bytes / accounts / 1024:.0f} KiB RSS "
                               "(whole process / accounts)")
    report.line("states at the end", ", ".join(f"{n} {s}" for s, n in still_idle.items())
                or "unknown (the daemon did not stop cleanly)", end_states=still_idle)
    threads = _thread_verdict(after.threads, accounts, settle)
    report.line("targets", f"RSS <= 300 MB: {'met' if after.rss_bytes <= 300e6 else 'MISSED'}; "
                           f"CPU <= 5%: {'met' if cpu <= 0.05 else 'MISSED'}; "
                           f"no thread per mailbox: {threads}")
    return report


def _thread_verdict(threads: int, accounts: int, settle: float) -> str:
    """Judge the thread count only once Trio has had time to retire start-up threads."""
    if settle < TRIO_THREAD_IDLE_SECONDS:
        return f"not judged (--settle under {TRIO_THREAD_IDLE_SECONDS} s)"
    return "met" if threads < accounts / 10 + 10 else "MISSED"


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--accounts", type=int, default=1000, help="mailboxes (1000)")
    parser.add_argument("--settle", type=float, default=15.0,
                        help="seconds to wait after all are idle before measuring (15)")
    parser.add_argument("--idle-seconds", type=float, default=30.0,
                        help="length of the idle measurement (30)")
    parser.add_argument("--keep", action="store_true", help="keep the temporary directory")
    args = parser.parse_args(argv)
    if args.accounts < 1:
        parser.error("--accounts must be at least 1")
    os.environ.pop(PASSWORD_ENV, None)
    run(args.accounts, settle=args.settle, idle_seconds=args.idle_seconds,
        keep=args.keep).print()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
