"""Drill 1, crash consistency over IMAP: SIGKILL the daemon again and again mid-import.

A backlog of realistic messages (benchmarks/messages.py) waits unread in a real Dovecot
INBOX. The daemon runs as a real process (``python -m daemon run``); the test follows its
JSON log on stderr and sends SIGKILL either the moment it has logged a seeded-random
number of committed messages (which lands between a commit and the flags), or a
seeded-random time after it logged ``imap.connected`` (which lands anywhere, a group
commit's transaction included: the intake commits a whole fetch window at once, so
commit counts alone would only ever kill between transactions). It restarts the daemon
and does that ``runs`` times. A last run goes on until a sync round ends at the newest
UID. Then:

* every conversation message an undisturbed import stores is stored exactly once
  (``lost=0 duplicated=0``, counted by ``emailid`` against :func:`reference_census`);
* every message on the server has its raw record under its own source key;
* every message on the server is ``\\Seen`` and none sits in the failure folder;
* the ``last_uid`` checkpoint equals the highest UID.

Short form by default; ``POSTROOM_DRILLS=long`` runs the long form (2,000 messages, 20
kills). The kill points come from a fixed seed, so a failure reproduces.

The drill's first run found committed messages left unread for good (a crash between a
commit and the ``\\Seen`` of its group);
:func:`test_issue_6_flags_cut_short_by_a_crash_are_finished` pins the fix (the
``flagged_uid`` checkpoint, daemon/imap/folder.py) without a process.
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
from functools import partial
from pathlib import Path

import pytest
import trio
from structlog.testing import capture_logs

from benchmarks.messages import generate_messages
from daemon.actors.imap import run_imap_account
from daemon.actors.status import AccountHandle, AccountStatus
from daemon.errors import ConnectError
from daemon.messages import Outcome, RawMessage
from daemon.store import AsyncStore, open_store
from daemon.supervisor import RestartPolicy, supervise
from tests.actors.conftest import make_account, make_connection
from tests.fakes.dovecot import Dovecot, make_message
from tests.fakes.processor import POISON, FakeProcessor
from tests.helpers import wait_for_status
from tests.reliability.conftest import (
    FAILURE_FOLDER,
    Imap,
    caught_up_to,
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
    """``runs`` SIGKILLs during the import of ``messages``; odd runs die ``0..window``
    seconds after connecting (a random moment: mid-fetch, mid-transaction, mid-flags),
    even runs right after a random number of commits (between commit and flags)."""

    messages: int
    runs: int
    seed: int
    window: float


SHORT = Drill(messages=300, runs=5, seed=20261124, window=2.5)
LONG = Drill(messages=2000, runs=20, seed=20261124, window=4.0)


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
        #: Messages whose flags a run finished for an earlier, killed one.
        self.flags_finished = 0

    def follow(self, until: Callable[[dict], bool], timeout: float = 120.0) -> dict:
        """Read log lines until ``until(entry)`` holds; return that entry."""
        deadline = time.monotonic() + timeout
        while True:
            entry = self._next_entry(deadline)
            assert entry is not None, "the daemon did not get there in time"
            if until(entry):
                return entry

    def follow_for(self, seconds: float, until: Callable[[dict], bool]) -> None:
        """Read log lines for ``seconds`` (the fault's timing, drawn by the drill), or
        until ``until(entry)`` holds, whichever comes first."""
        deadline = time.monotonic() + seconds
        while (entry := self._next_entry(deadline)) is not None and not until(entry):
            pass

    def _next_entry(self, deadline: float) -> dict | None:
        """The next JSON log entry, or None once ``deadline`` (monotonic) has passed."""
        assert self.proc.stderr is not None
        while (remaining := deadline - time.monotonic()) > 0:
            if not self._selector.select(remaining):
                continue
            line = self.proc.stderr.readline()
            assert line, f"the daemon exited with {self.proc.wait()}"
            try:
                entry = json.loads(line)
            except ValueError:
                continue
            if entry.get("event") == "imap.flags.finished":
                self.flags_finished += entry.get("seen", 0) + entry.get("moved", 0)
            return entry
        return None

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
    flags_finished = await trio.to_thread.run_sync(crash_repeatedly, drill, config,
                                                   drill_environ(imap), max(uids))

    census = await trio.to_thread.run_sync(take_census, tmp_path / "drill" / "postroom.db")
    lost, duplicated = census.lost_and_duplicated(reference)
    report(f"crash drill: messages={drill.messages} runs={drill.runs} "
          f"conversationmessages={sum(census.emailids.values())} "
          f"lost={lost} duplicated={duplicated} flags_finished_after_restart={flags_finished}")
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
                     ) -> int:
    """``drill.runs`` runs killed at seeded-random points, then one run to the end.

    Returns:
        How many messages had their flags finished by a later run (committed by a
        killed run, left unread by it).
    """
    rng = random.Random(drill.seed)
    most = max(2, 2 * drill.messages // (drill.runs + 1))
    finished = 0
    for run in range(drill.runs):
        daemon = DaemonProcess(config, environ)
        if run % 2:
            daemon.follow(lambda e: e.get("event") == "imap.connected")
            daemon.follow_for(rng.uniform(0, drill.window), until=caught_up(top_uid))
        else:
            daemon.follow(kill_after_commits(rng.randint(1, most), top_uid))
        daemon.kill()
        finished += daemon.flags_finished
    daemon = DaemonProcess(config, environ)
    daemon.follow(caught_up(top_uid))
    assert daemon.terminate() == 0
    return finished + daemon.flags_finished


async def test_sigkill_during_imap_import_short(dovecot: Dovecot, tmp_path: Path):
    await run_drill(SHORT, dovecot, tmp_path)


@pytest.mark.slow
@long_form_only()
async def test_sigkill_during_imap_import_long(dovecot: Dovecot, tmp_path: Path):
    await run_drill(LONG, dovecot, tmp_path)


async def test_issue_6_flags_cut_short_by_a_crash_are_finished(dovecot: Dovecot, tmp_path: Path):
    """A session dies after its group's commits but before their flags: the next one
    sets ``\\Seen`` (and moves the failed message) without fetching anything again."""
    user = dovecot.add_user()
    raws = [make_message(f"Question {n}") for n in range(4)]
    raws.append(make_message("Unprocessable", extra_headers=POISON.decode() + "\r\n"))
    uids = await trio.to_thread.run_sync(dovecot.append_many, user, raws)
    account = make_account(user, failure_folder=FAILURE_FOLDER)
    handle = AccountHandle(AccountStatus(account=account.id, kind="imap"))
    async with AsyncStore(open_store(f"sqlite:///{tmp_path}/postroom.db")) as store:
        processor = FakeProcessor(store)

        async def submit(message: RawMessage) -> Outcome:
            outcome = await processor.submit(message)
            if len(processor.committed) == len(raws):  # the group's last commit
                raise ConnectError("the session died before setting the flags")
            return outcome

        run = partial(run_imap_account, account, make_connection(dovecot), submit=submit,
                      store=store, handle=handle)
        with capture_logs() as logs, trio.fail_after(15):
            async with trio.open_nursery() as nursery:
                await nursery.start(partial(supervise, run, handle,
                                            RestartPolicy(base=0.05, cap=0.1)))
                await wait_for_status(handle.status, caught_up_to(max(uids)))
                nursery.cancel_scope.cancel()

    assert handle.status.reconnects == 1
    assert len(processor.committed) == len(raws)  # nothing fetched twice
    [finished] = [e for e in logs if e["event"] == "imap.flags.finished"]
    assert (finished["seen"], finished["moved"]) == (4, 1)
    inbox = await trio.to_thread.run_sync(dovecot.messages, user)
    assert sorted(inbox) == uids[:4]
    assert all(SEEN in flags for flags, _ in inbox.values())
    failed = await trio.to_thread.run_sync(dovecot.messages, user, FAILURE_FOLDER)
    assert [raw for _, raw in failed.values()] == [raws[4]]
