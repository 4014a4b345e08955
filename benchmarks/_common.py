"""What every benchmark needs: ports, a Dovecot, a config, percentiles, /proc sampling.

Everything here runs on loopback (127.0.0.1) and leaves nothing behind: a benchmark
creates one temporary directory (:func:`workdir`), starts a throw-away Dovecot
(:func:`dovecot_server`, reusing ``tests/fakes/dovecot.py``), writes a postroom config
into that directory (:func:`write_config`) and removes it all on the way out.

Figures are printed as aligned ``label: value`` lines by :class:`Report`, followed by
one ``figures: {...}`` JSON line that ``benchmarks/README.md`` is updated from.

Percentiles are nearest-rank (the value at rank ``ceil(p/100 * n)`` of the sorted
samples), as in the EmailEngine peer benchmark, so with 20 samples p95 is the 19th
smallest and with 100 samples p99 is the 99th.
"""

from __future__ import annotations

__all__ = [
    "HOST",
    "PASSWORD_ENV",
    "Distribution",
    "ProcSample",
    "Report",
    "account_id",
    "distribution",
    "dovecot_server",
    "free_port",
    "machine",
    "sample_process",
    "seed_mailbox",
    "workdir",
    "write_config",
]

import contextlib
import json
import math
import os
import platform
import re
import shutil
import socket
import subprocess
import sys
import tempfile
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from tests.fakes.dovecot import Dovecot, MailUser, dovecot_binary

HOST = "127.0.0.1"
#: The environment variable every benchmark account reads its IMAP password from.
PASSWORD_ENV = "POSTROOM_BENCH_PASSWORD"
REPO = Path(__file__).resolve().parents[1]

_CLK_TCK = os.sysconf("SC_CLK_TCK")


# -- ports and directories --------------------------------------------------------------

def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket() as s:
        s.bind((HOST, 0))
        return int(s.getsockname()[1])


@contextlib.contextmanager
def workdir(prefix: str, *, keep: bool = False) -> Iterator[Path]:
    """A fresh temporary directory, removed afterwards unless ``keep``."""
    root = Path(tempfile.mkdtemp(prefix=f"postroom-bench-{prefix}-"))
    try:
        yield root
    finally:
        if keep:
            print(f"kept: {root}", file=sys.stderr)
        else:
            shutil.rmtree(root, ignore_errors=True)


# -- Dovecot ----------------------------------------------------------------------------

def _raise_limits(config: str, connections: int) -> str:
    """Dovecot's config text with process and client limits fit for ``connections``.

    tests/fakes/dovecot.py allows 500 ``imap`` processes (one per connection, Dovecot's
    default ``client_limit = 1`` for imap) and 4,000 clients per service. Raised limits
    are written over those values; a config without them is refused rather than
    silently left too small.
    """
    processes = connections + 100
    clients = max(4000, 4 * connections + 1000)
    config, n_proc = re.subn(r"(?m)^(\s*(?:default_)?process_limit\s*=\s*)\d+",
                             lambda m: f"{m.group(1)}{processes}", config)
    config, n_client = re.subn(r"(?m)^(\s*default_client_limit\s*=\s*)\d+",
                               lambda m: f"{m.group(1)}{clients}", config)
    config, _ = re.subn(r"(?m)^(\s*mail_max_userip_connections\s*=\s*)\d+",
                        lambda m: f"{m.group(1)}{processes}", config)
    if not n_proc or not n_client:
        raise RuntimeError("tests/fakes/dovecot.py changed: no process_limit / "
                           "default_client_limit to raise")
    return config


@contextlib.contextmanager
def dovecot_server(*, connections: int = 0) -> Iterator[Dovecot]:
    """A running throw-away Dovecot on loopback; stopped and removed afterwards.

    Args:
        connections: how many simultaneous IMAP connections it must accept; above the
            test fixture's 500, its process and client limits are raised.

    Raises:
        SystemExit: dovecot is not installed (with the package to install).
    """
    if dovecot_binary() is None:
        raise SystemExit("dovecot is not installed: apt-get install dovecot-imapd")
    server = Dovecot()
    try:
        if connections > 400:
            server.config.write_text(_raise_limits(server.config.read_text(), connections))
        server.start()
        yield server
    finally:
        server.cleanup()


def seed_mailbox(server: Dovecot, user: MailUser, messages: Iterable[bytes], *,
                 chunk: int = 100) -> int:
    """APPEND ``messages`` to the user's INBOX (MULTIAPPEND, ``chunk`` at a time), unread.

    Returns:
        How many messages were appended.
    """
    count = 0
    with server.client(user) as client:
        batch: list[bytes] = []
        for raw in messages:
            batch.append(raw)
            if len(batch) == chunk:
                client.multiappend("INBOX", batch)
                count += len(batch)
                batch = []
        if batch:
            client.multiappend("INBOX", batch)
            count += len(batch)
    return count


def account_id(index: int) -> str:
    """The config id of benchmark account number ``index``."""
    return f"bench-{index:04d}"


def write_config(root: Path, *, server: Dovecot | None = None,
                 users: Sequence[MailUser] = (), http: bool = False,
                 log_level: str = "info", extra_account: str = "",
                 emails: Sequence[str] | None = None) -> Path:
    """Write ``root/postroom.toml``: SQLite in ``root``, one IMAP account per user.

    Every account reads its password from :data:`PASSWORD_ENV`, so all ``users`` must
    share one password (pass it in the environment, or to ``load_config(environ=...)``).

    Args:
        root: the directory for the config, the database and its key file.
        server: the Dovecot the accounts connect to (plain IMAP on loopback).
        users: one account per user, ids from :func:`account_id`.
        http: enable the HTTP listener on a free loopback port.
        log_level: the daemon's log level.
        extra_account: TOML lines added to every ``[[accounts]]`` table.
        emails: each account's own address (default ``<id>@bench.example``); the
            generated corpus is addressed to ``support@example.com``, which must be an
            account's own address or it becomes a follower of every conversation.

    Returns:
        The config file's path.
    """
    lines = [
        "[daemon]",
        'store = "sqlite:///postroom.db"',
        'log_format = "json"',
        f'log_level = "{log_level}"',
        "shutdown_grace_seconds = 5",
        "",
        "[http]",
        f"enabled = {'true' if http else 'false'}",
        f'bind = "{HOST}:{free_port() if http else 0}"',
        "",
    ]
    if server is not None:
        lines += [
            "[[imap_connections]]",
            'id = "dovecot"',
            f'imap_host = "{server.host}"',
            f"imap_port = {server.imap_port}",
            'imap_tls = "none"',
            f'smtp_host = "{server.host}"',
            'smtp_tls = "none"',
            "connect_timeout_seconds = 60",
            "read_timeout_seconds = 60",
            "",
        ]
    for index, user in enumerate(users):
        lines += [
            "[[accounts]]",
            f'id = "{account_id(index)}"',
            f'email = "{emails[index] if emails else account_id(index) + "@bench.example"}"',
            'auth = "dovecot"',
            f'username = "{user.name}"',
            f'password_env = "{PASSWORD_ENV}"',
            extra_account,
            "",
        ]
    path = root / "postroom.toml"
    path.write_text("\n".join(lines))
    return path


# -- statistics -------------------------------------------------------------------------

@dataclass(frozen=True)
class Distribution:
    """Nearest-rank percentiles of a sample, in the sample's unit."""

    n: int
    p50: float
    p95: float
    p99: float
    max: float
    min: float
    mean: float

    def ms(self) -> str:
        """``p50 / p95 / p99 / max`` of a sample in seconds, as milliseconds."""
        return (f"p50 {self.p50 * 1e3:.1f} ms, p95 {self.p95 * 1e3:.1f} ms, "
                f"p99 {self.p99 * 1e3:.1f} ms, max {self.max * 1e3:.1f} ms (n={self.n})")


def _rank(ordered: Sequence[float], p: float) -> float:
    return ordered[max(0, math.ceil(p / 100 * len(ordered)) - 1)]


def distribution(samples: Iterable[float]) -> Distribution:
    """Nearest-rank p50/p95/p99 (and min, max, mean) of ``samples``.

    Raises:
        ValueError: ``samples`` is empty.
    """
    ordered = sorted(samples)
    if not ordered:
        raise ValueError("no samples")
    return Distribution(n=len(ordered), p50=_rank(ordered, 50), p95=_rank(ordered, 95),
                        p99=_rank(ordered, 99), max=ordered[-1], min=ordered[0],
                        mean=sum(ordered) / len(ordered))


# -- /proc ------------------------------------------------------------------------------

@dataclass(frozen=True)
class ProcSample:
    """One look at a process in /proc.

    Attributes:
        rss_bytes: resident set size (VmRSS).
        threads: OS threads in the process.
        cpu_seconds: user + system CPU time used so far.
    """

    rss_bytes: int
    threads: int
    cpu_seconds: float


def sample_process(pid: int) -> ProcSample:
    """Read ``pid``'s RSS, thread count and CPU time from /proc.

    Raises:
        OSError: the process is gone.
    """
    status = Path(f"/proc/{pid}/status").read_text()
    fields = dict(line.split(":", 1) for line in status.splitlines() if ":" in line)
    rss_kib = int(fields["VmRSS"].split()[0])
    stat = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    utime, stime = int(stat[11]), int(stat[12])  # fields 14 and 15 of proc(5)
    return ProcSample(rss_bytes=rss_kib * 1024, threads=int(fields["Threads"]),
                      cpu_seconds=(utime + stime) / _CLK_TCK)


# -- the machine ------------------------------------------------------------------------

def machine() -> dict[str, Any]:
    """What the figures ran on: CPUs, CPU model, RAM, kernel, Python, Dovecot, date."""
    cpuinfo = Path("/proc/cpuinfo").read_text()
    model = re.search(r"(?m)^model name\s*:\s*(.+)$", cpuinfo)
    meminfo = Path("/proc/meminfo").read_text()
    mem = re.search(r"(?m)^MemTotal:\s*(\d+) kB", meminfo)
    binary = dovecot_binary()
    dovecot = (subprocess.run([binary, "--version"], capture_output=True, text=True,
                              check=False).stdout.strip() if binary else "not installed")
    return {
        "date": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "cpus": len(os.sched_getaffinity(0)),
        "cpu_model": model.group(1).strip() if model else "unknown",
        "ram_gib": round(int(mem.group(1)) / 1024 ** 2, 1) if mem else None,
        "kernel": platform.release(),
        "python": platform.python_version(),
        "dovecot": dovecot,
    }


# -- output -----------------------------------------------------------------------------

class Report:
    """Collects a benchmark's figures; prints them as lines, then one JSON line."""

    def __init__(self, benchmark: str) -> None:
        self.benchmark = benchmark
        self.figures: dict[str, Any] = {"benchmark": benchmark}
        self._lines: list[tuple[str, str]] = []

    def line(self, label: str, text: str, **figures: Any) -> None:
        """Add a printed line and the figures behind it."""
        self._lines.append((label, text))
        self.figures.update(figures)

    def print(self) -> None:
        """Print the machine, the lines and ``figures: {json}`` to stdout."""
        info = machine()
        self.figures["machine"] = info
        print(f"== {self.benchmark} — {info['date']}; {info['cpus']} CPUs "
              f"({info['cpu_model']}), {info['ram_gib']} GiB RAM, Python {info['python']}, "
              f"Dovecot {info['dovecot']}")
        width = max((len(label) for label, _ in self._lines), default=0)
        for label, text in self._lines:
            print(f"{label:<{width}} : {text}")
        print("figures: " + json.dumps(self.figures, default=_jsonable, sort_keys=True))
        sys.stdout.flush()


def _jsonable(value: Any) -> Any:
    if isinstance(value, Distribution):
        return asdict(value)
    if isinstance(value, ProcSample):
        return asdict(value)
    raise TypeError(f"not JSON-able: {type(value).__name__}")
