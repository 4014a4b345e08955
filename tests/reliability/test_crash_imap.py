"""Drill 1, crash consistency over IMAP: SIGKILL the daemon again and again mid-import.

A backlog of realistic messages (benchmarks/messages.py) waits unread in a real Dovecot
INBOX. The daemon runs as a real process (``python -m daemon run``); the test follows its
JSON log on stderr and sends SIGKILL the moment it has logged a seeded-random number of
committed messages, restarts it, and does that ``runs`` times. A last run goes on until
a sync round ends at the newest UID. Then:

* every conversation message an undisturbed import stores is stored exactly once
  (``lost=0 duplicated=0``, counted by ``emailid`` against :func:`reference_census`);
* every message on the server has its raw record under its own source key;
* every message on the server is ``\\Seen`` and none sits in the failure folder;
* the ``last_uid`` checkpoint equals the highest UID.

Short form by default; ``POSTROOM_DRILLS=long`` runs the long form (2,000 messages, 20
kills). The kill points come from a fixed seed, so a failure reproduces.
"""

from __future__ import annotations

import json
import random
import selectors
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest
import trio

from benchmarks.messages import generate_messages
from tests.fakes.dovecot import Dovecot
from tests.reliability.conftest import (
    FAILURE_FOLDER,
    Imap,
    drill_environ,
    imap_source_key,
    long_form_only,
    reference_census,
    report,
    take_census,
    write_drill_config,
)

pytestmark = [pytest.mark.dovecot, pytest.mark.reliability]

SEEN = b"\\Seen"
#: Log events the processor writes right after a message's transaction committed.
COMMITTED = frozenset({"message.imported", "message.duplicate", "message.discarded",
                       "message.failed"})


@dataclass(frozen=True)
class Drill:
    messages: int
    runs: int
    seed: int


SHORT = Drill(messages=300, runs=5, seed=20261124)
LONG = Drill(messages=2000, runs=20, seed=20261124)


class DaemonProcess:
    """``python -m daemon run`` as a child, its JSON log on a pipe read line by line."""

    def __init__(self, config: Path, environ: dict[str, str]) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "daemon", "run", "--config", str(config)],
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
            env={**environ, "PYTHONUNBUFFERED": "1"})
        self._selector = selectors.DefaultSelector()
        assert self.proc.stderr is not None
        self._selector.register(self.proc.stderr, selectors.EVENT_READ)

    def follow(self, until: Callable[[dict], bool], timeout: float = 120.0) -> dict:
        """Read log lines until ``until(entry)`` holds; return that entry."""
        assert self.proc.stderr is not None
        deadline = time.monotonic() + timeout
        while True:
            remaining = deadline - time.monotonic()
            assert remaining > 0, "the daemon did not get there in time"
            if not self._selector.select(remaining):
                continue
            line = self.proc.stderr.readline()
            assert line, f"the daemon exited with {self.proc.wait()}"
            try:
                entry = json.loads(line)
            except ValueError:
                continue
            if until(entry):
                return entry

    def kill(self) -> None:
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait()
        self._selector.close()

    def terminate(self) -> int:
        self.proc.send_signal(signal.SIGTERM)
        code = self.proc.wait(timeout=30)
        self._selector.close()
        return code


def kill_after_commits(count: int, top_uid: int) -> Callable[[dict], bool]:
    """True at the ``count``-th committed message, or when a round ended caught up."""
    seen = 0

    def enough(entry: dict) -> bool:
        nonlocal seen
        seen += entry.get("event") in COMMITTED
        caught_up = (entry.get("event") == "imap.sync.done"
                     and entry.get("last_uid", 0) >= top_uid)
        return seen >= count or caught_up
    return enough


def caught_up(top_uid: int) -> Callable[[dict], bool]:
    return lambda e: e.get("event") == "imap.sync.done" and e.get("last_uid", 0) >= top_uid


async def run_drill(drill: Drill, dovecot: Dovecot, tmp_path: Path) -> None:
    user = dovecot.add_user()
    raws = list(generate_messages(drill.messages, seed=drill.seed))
    uids = await trio.to_thread.run_sync(dovecot.append_many, user, raws)
    uidvalidity = await trio.to_thread.run_sync(dovecot.uidvalidity, user)
    imap = Imap(port=dovecot.imap_port, user=user, backoff_cap=1.0)
    reference = await reference_census(tmp_path / "reference", imap,
                                       list(zip(uids, raws, strict=True)), uidvalidity)
    config = write_drill_config(tmp_path / "drill", imap)
    await trio.to_thread.run_sync(crash_repeatedly, drill, config, drill_environ(imap),
                                  max(uids))

    census = await trio.to_thread.run_sync(take_census, tmp_path / "drill" / "postroom.db")
    lost, duplicated = census.lost_and_duplicated(reference)
    report(f"crash drill: messages={drill.messages} runs={drill.runs} "
          f"conversationmessages={sum(census.emailids.values())} "
          f"lost={lost} duplicated={duplicated}")
    assert (lost, duplicated) == (0, 0)
    assert census.statuses == reference.statuses
    assert census.source_keys == {imap_source_key(uidvalidity, uid) for uid in uids}
    assert census.checkpoints["last_uid"] == str(max(uids))
    on_server = await trio.to_thread.run_sync(dovecot.messages, user)
    assert sorted(on_server) == uids
    unseen = [uid for uid, (flags, _) in on_server.items() if SEEN not in flags]
    assert unseen == [], f"{len(unseen)} committed messages left unread on the server"
    assert await trio.to_thread.run_sync(dovecot.messages, user, FAILURE_FOLDER) == {}


def crash_repeatedly(drill: Drill, config: Path, environ: dict[str, str], top_uid: int
                     ) -> None:
    """``drill.runs`` runs killed at seeded-random points, then one run to the end."""
    rng = random.Random(drill.seed)
    most = max(2, 2 * drill.messages // (drill.runs + 1))
    for _ in range(drill.runs):
        daemon = DaemonProcess(config, environ)
        daemon.follow(kill_after_commits(rng.randint(1, most), top_uid))
        daemon.kill()
    daemon = DaemonProcess(config, environ)
    daemon.follow(caught_up(top_uid))
    assert daemon.terminate() == 0


async def test_sigkill_during_imap_import_short(dovecot: Dovecot, tmp_path: Path):
    await run_drill(SHORT, dovecot, tmp_path)


@pytest.mark.slow
@long_form_only()
async def test_sigkill_during_imap_import_long(dovecot: Dovecot, tmp_path: Path):
    await run_drill(LONG, dovecot, tmp_path)
