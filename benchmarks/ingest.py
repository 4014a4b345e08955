"""Backlog ingest: how close postroom's full import comes to the raw IMAP FETCH limit.

One Dovecot mailbox holds N generated messages (:func:`benchmarks.messages.generate_messages`,
~13 KiB average, APPENDed unread). In one run, on the same mailbox:

(a) raw FETCH      one imapclient connection, ``UID FETCH n:m (BODY.PEEK[])`` in batches
                   of 200 UIDs (postroom's batch size), every body read, nothing else;
(b) FETCH + parse  the same, plus :func:`daemon.mail.parse.parse_message` on each body;
(c) postroom       the real daemon (:func:`daemon.app.run_daemon`) with one IMAP account
                   and a fresh SQLite file: from the call until every one of the N
                   messages has a committed outcome (imported, or discarded as automatic
                   mail), as seen on the account's status events. It includes connecting,
                   SEARCH, size FETCHes, body FETCHes, parsing, classification, one store
                   transaction per message and ``\\Seen`` flags.

An untimed raw pass runs first, so all three read a warm Dovecot (index and cache built);
``--cold`` skips it, and (a) is then Dovecot's first read.

Prints msgs/s for each and c/a (target: c/a >= 0.5). ``--profile FILE`` attaches py-spy
(all threads, idle included) to this process during (c) and writes collapsed stacks.

Run: ``.venv/bin/python -m benchmarks.ingest --messages 10000``
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import trio

from benchmarks._common import (
    PASSWORD_ENV,
    Report,
    dovecot_server,
    seed_mailbox,
    workdir,
    write_config,
)
from benchmarks._daemon import configure_logging_to, wait_for
from benchmarks.messages import generate_messages
from daemon.app import open_daemon
from daemon.config import load_config
from daemon.mail.parse import parse_message
from tests.fakes.dovecot import Dovecot, MailUser

#: UIDs per raw ``UID FETCH``: postroom's ``META_BATCH`` (its body FETCHes are this size
#: too at ~13 KiB a message, well under its 8 MiB download budget).
RAW_BATCH = 200


def raw_fetch(server: Dovecot, user: MailUser, *,
              each: Callable[[bytes], Any] | None = None) -> tuple[int, int, float]:
    """FETCH every body in INBOX; return (messages, bytes, seconds).

    Args:
        each: called on every body as it arrives (the parse in (b)).
    """
    begin = time.perf_counter()
    count = size = 0
    with server.client(user) as client:
        client.select_folder("INBOX", readonly=True)
        uids = client.search(["ALL"])
        for start in range(0, len(uids), RAW_BATCH):
            batch = uids[start:start + RAW_BATCH]
            bodies = client.fetch(batch, ["BODY.PEEK[]"])
            for uid in batch:
                raw = bodies[uid][b"BODY[]"]
                count += 1
                size += len(raw)
                if each is not None:
                    each(raw)
    return count, size, time.perf_counter() - begin


def _cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


async def full_import(config_path: Path, expected: int) -> dict[str, Any]:
    """Run the daemon until ``expected`` messages are settled; return timings and counts."""
    config = load_config(config_path)
    cpu0 = _cpu_seconds()
    begin = time.perf_counter()
    async with open_daemon(config) as daemon:
        (handle,) = daemon.handles.values()
        status = handle.status
        first_at: float | None = None

        def settled(s: Any) -> int:
            return s.imported + s.duplicates + s.discarded + s.failed

        await wait_for(status, lambda s: settled(s) >= 1)
        first_at = time.perf_counter()
        await wait_for(status, lambda s: settled(s) >= expected)
        elapsed = time.perf_counter() - begin
        cpu = _cpu_seconds() - cpu0
        counts = {"imported": status.imported, "discarded": status.discarded,
                  "duplicates": status.duplicates, "failed": status.failed}
        messages = await daemon.store.run(
            lambda tx: len(tx.find("conversationmessage")))
    return {"seconds": elapsed, "first_after": first_at - begin, "cpu_seconds": cpu,
            "counts": counts, "conversationmessages": messages}


class _PySpy:
    """py-spy attached to this process for the duration of a ``with`` block."""

    def __init__(self, output: Path | None) -> None:
        self.output = output
        self.process: subprocess.Popen[bytes] | None = None

    def __enter__(self) -> _PySpy:
        if self.output is None:
            return self
        binary = shutil.which("py-spy") or str(Path(sys.executable).with_name("py-spy"))
        self.process = subprocess.Popen(
            [binary, "record", "--pid", str(os.getpid()), "--format", "raw", "--threads",
             "--idle", "--rate", "200", "--output", str(self.output)],
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        time.sleep(1.0)  # py-spy needs a moment to attach before the timed part starts
        return self

    def __exit__(self, *exc: object) -> None:
        if self.process is not None:
            self.process.send_signal(signal.SIGINT)
            _, err = self.process.communicate(timeout=60)
            if self.process.returncode not in (0, -signal.SIGINT):
                print(f"py-spy: {err.decode(errors='replace')}", file=sys.stderr)


def run(messages: int, *, seed: int, cold: bool, keep: bool,
        profile: Path | None) -> Report:
    report = Report("ingest")
    with workdir("ingest", keep=keep) as root, dovecot_server() as server:
        password = "bench-password"
        user = server.add_user("bench", password)
        t = time.perf_counter()
        seeded = seed_mailbox(server, user, generate_messages(messages, seed=seed))
        report.line("setup", f"{seeded} messages generated and APPENDed in "
                             f"{time.perf_counter() - t:.1f} s", messages=seeded)
        if not cold:
            raw_fetch(server, user)
        n_a, size, sec_a = raw_fetch(server, user)
        n_b, _, sec_b = raw_fetch(server, user, each=parse_message)
        rate_a, rate_b = n_a / sec_a, n_b / sec_b
        report.line("corpus", f"{size / n_a / 1024:.1f} KiB average, {size / 2**20:.1f} MiB "
                              f"(Dovecot {'cold' if cold else 'warm'})",
                    average_bytes=size / n_a, warm=not cold)
        report.line("(a) raw FETCH", f"{n_a} msgs in {sec_a:.2f} s = {rate_a:.0f} msgs/s",
                    raw_fetch_rate=rate_a)
        report.line("(b) FETCH + parse", f"{n_b} msgs in {sec_b:.2f} s = {rate_b:.0f} msgs/s",
                    fetch_parse_rate=rate_b)
        config = write_config(root, server=server, users=[user],
                              emails=["support@example.com"])
        os.environ[PASSWORD_ENV] = password
        configure_logging_to(root / "daemon.log")
        with _PySpy(profile):
            result = trio.run(full_import, config, seeded)
        rate_c = seeded / result["seconds"]
        steady = (seeded - 1) / (result["seconds"] - result["first_after"])
        counts = ", ".join(f"{v} {k}" for k, v in result["counts"].items() if v)
        report.line("(c) postroom import",
                    f"{seeded} msgs in {result['seconds']:.2f} s = {rate_c:.0f} msgs/s "
                    f"(first commit after {result['first_after'] * 1e3:.0f} ms; "
                    f"{steady:.0f} msgs/s after it)",
                    import_rate=rate_c, import_seconds=result["seconds"],
                    first_commit_seconds=result["first_after"])
        report.line("    outcomes", f"{counts}; {result['conversationmessages']} "
                                    "conversation messages in the store",
                    outcomes=result["counts"],
                    conversationmessages=result["conversationmessages"])
        report.line("    CPU", f"{result['cpu_seconds']:.1f} s in this process "
                              f"({result['cpu_seconds'] / seeded * 1e3:.2f} ms/msg, "
                              f"{result['cpu_seconds'] / result['seconds'] * 100:.0f}% "
                              "of one core)",
                    import_cpu_seconds=result["cpu_seconds"])
        report.line("c/a", f"{rate_c / rate_a:.2f} (target >= 0.5)", c_over_a=rate_c / rate_a)
        if profile is not None:
            report.line("profile", f"py-spy collapsed stacks in {profile}")
    return report


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--messages", type=int, default=10_000, help="mailbox size (10000)")
    parser.add_argument("--seed", type=int, default=1, help="message generator seed (1)")
    parser.add_argument("--cold", action="store_true",
                        help="no warm-up pass: (a) is Dovecot's first read")
    parser.add_argument("--profile", type=Path, metavar="FILE",
                        help="py-spy collapsed stacks of (c) into FILE")
    parser.add_argument("--keep", action="store_true", help="keep the temporary directory")
    args = parser.parse_args(argv)
    if args.messages < 1:
        parser.error("--messages must be at least 1")
    run(args.messages, seed=args.seed, cold=args.cold, keep=args.keep,
        profile=args.profile).print()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
