"""Hostile messages through the running daemon: time, memory, and the event loop's stalls.

Each attack from :mod:`tests.hostile.attacks` (huge and numerous headers, runs of
address characters, folded-header bombs, deep MIME and comment nesting, same-name
attachments, encoded-word floods, 1,000 Cc) is dropped into the Maildir of a real
daemon (:func:`daemon.app.open_daemon`, SQLite, HTTP on loopback, ``max_message_bytes``
raised to 64 MiB so the 24 MiB attacks are parsed, not set aside). Per attack:

* ``time``: from the file landing in ``new/`` to its committed outcome;
* ``peak``: tracemalloc's peak while :func:`~daemon.mail.parse.parse_message` and
  :func:`~daemon.mail.classify.classify` run on it (a separate pass, outside the daemon),
  and that peak over the message's size;
* ``stall``: the longest event-loop stall a probe task saw meanwhile (how late a 5 ms
  ``trio.sleep`` woke up), and ``/livez``: answers received meanwhile and the slowest.

Target: no stall over 100 ms on the 1 MiB attacks; peak <= 4x on the 24 MiB folded one.

Run: ``.venv/bin/python -m benchmarks.hostile`` (``--scale 0.1`` for small sizes,
``--only NAME`` for some attacks).
"""

from __future__ import annotations

import argparse
import time
import tracemalloc
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import httpx
import trio

from benchmarks._common import Report, workdir
from benchmarks._daemon import configure_logging_to, wait_for
from daemon.actors.status import AccountState, AccountStatus
from daemon.app import open_daemon
from daemon.config import load_config
from daemon.mail.classify import classify
from daemon.mail.parse import parse_message
from tests.e2e.conftest import drop, write_config
from tests.hostile.attacks import MIB, Attack, attacks

LIMIT = 64 * MIB


class Probe:
    """The longest event-loop stall seen, and the ``/livez`` answers, while it runs."""

    def __init__(self) -> None:
        self.longest = 0.0
        self.livez: list[float] = []
        self.errors = 0

    async def stalls(self) -> None:
        while True:
            before = time.perf_counter()
            await trio.sleep(0.005)
            self.longest = max(self.longest, time.perf_counter() - before - 0.005)

    async def poll(self, client: httpx.AsyncClient) -> None:
        while True:
            before = time.perf_counter()
            response = await client.get("/livez")
            if response.status_code == 200:
                self.livez.append(time.perf_counter() - before)
            else:
                self.errors += 1
            await trio.sleep(0.01)


def memory_peak(attack: Attack) -> int:
    """tracemalloc's peak in bytes while parsing and classifying ``attack``."""
    tracemalloc.start()
    try:
        classify(parse_message(attack.raw), own_addresses=frozenset({"support@demo.example"}))
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def _done(status: AccountStatus) -> int:
    return status.imported + status.discarded + status.failed + status.duplicates


async def through_daemon(root: Path, chosen: list[Attack]) -> dict[str, dict[str, Any]]:
    """Drop each attack into the daemon's Maildir in turn; time, stall, /livez of each."""
    path = write_config(root)
    path.write_text(path.read_text() + f"max_message_bytes = {LIMIT}\n")
    config = load_config(path)
    results: dict[str, dict[str, Any]] = {}
    async with open_daemon(config) as daemon:
        status = daemon.handles["support"].status
        await wait_for(status, lambda s: s.state is AccountState.IDLE)
        async with httpx.AsyncClient(base_url=daemon.http_urls[0], timeout=120) as client:
            await client.get("/livez")
            for index, attack in enumerate(chosen):
                probe = Probe()
                before = _done(status)
                failed = status.failed
                async with trio.open_nursery() as nursery:
                    nursery.start_soon(probe.stalls)
                    nursery.start_soon(probe.poll, client)
                    began = time.perf_counter()
                    await trio.to_thread.run_sync(drop, root / "Maildir", f"{index:03d}",
                                                  attack.raw)
                    await wait_for(status, lambda s, b=before: _done(s) > b)
                    seconds = time.perf_counter() - began
                    nursery.cancel_scope.cancel()
                results[attack.name] = {
                    "seconds": seconds, "stall_seconds": probe.longest,
                    "livez_answers": len(probe.livez), "livez_errors": probe.errors,
                    "livez_max_seconds": max(probe.livez, default=None),
                    "failed": status.failed > failed,
                }
    return results


def run(scale: float, only: Sequence[str], keep: bool) -> Report:
    chosen = [a for a in attacks(scale) if not only or a.name in only]
    report = Report("hostile")
    with workdir("hostile", keep=keep) as root:
        configure_logging_to(root / "daemon.log", "warning")
        results = trio.run(through_daemon, root, chosen)
    figures: dict[str, Any] = {}
    for attack in chosen:
        peak = memory_peak(attack)
        result = {**results[attack.name], "bytes": len(attack.raw), "peak_bytes": peak,
                  "peak_ratio": peak / len(attack.raw)}
        figures[attack.name] = result
        livez = result["livez_max_seconds"]
        report.line(attack.name,
                    f"{len(attack.raw) / MIB:6.2f} MiB  time {result['seconds']:6.2f} s  "
                    f"peak {peak / MIB:6.1f} MiB ({result['peak_ratio']:4.2f}x)  "
                    f"stall {result['stall_seconds'] * 1e3:6.1f} ms  /livez "
                    f"{result['livez_answers']} ok, max "
                    f"{'-' if livez is None else f'{livez * 1e3:.1f} ms'}"
                    f"{'  FAILED' if result['failed'] else ''}")
    report.line("worst stall", f"{max(r['stall_seconds'] for r in figures.values()) * 1e3:.1f}"
                " ms", attacks=figures, scale=scale)
    return report


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--scale", type=float, default=1.0,
                        help="size multiplier for every attack (1.0)")
    parser.add_argument("--only", action="append", default=[], metavar="NAME",
                        help="run only this attack (repeatable)")
    parser.add_argument("--keep", action="store_true", help="keep the temporary directory")
    args = parser.parse_args(argv)
    run(args.scale, args.only, args.keep).print()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
