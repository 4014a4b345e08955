"""SIGKILL during an import, then restart: every message is stored exactly once.

The daemon runs as a real process (``python -m daemon run``). The test follows its JSON
log on stderr and kills it the moment it has logged the k-th import — no sleeps — then
restarts it until the Maildir is empty, and counts what the store holds.
"""

from __future__ import annotations

import json
import os
import selectors
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path

from daemon.store import open_store
from tests.helpers import drop, make_message, write_config

TOTAL = 300
KILL_AFTER = (23, 97, 61)  # imports seen in each run before SIGKILL


def start(config: Path) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "daemon", "run", "--config", str(config)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                            env={**os.environ, "PYTHONUNBUFFERED": "1"})


def follow(proc: subprocess.Popen, until: Callable[[dict], bool], timeout: float = 60.0
           ) -> int:
    """Read the daemon's log lines until ``until(entry)``; return how many were imports."""
    selector = selectors.DefaultSelector()
    selector.register(proc.stderr, selectors.EVENT_READ)
    deadline = time.monotonic() + timeout
    imports = 0
    while True:
        remaining = deadline - time.monotonic()
        assert remaining > 0, "the daemon did not get there in time"
        if not selector.select(remaining):
            continue
        line = proc.stderr.readline()
        assert line, f"the daemon exited with {proc.wait()}"
        try:
            entry = json.loads(line)
        except ValueError:
            continue
        if entry.get("event") == "message.imported":
            imports += 1
        if until(entry):
            return imports


def test_sigkill_mid_import_loses_and_duplicates_nothing(tmp_path: Path):
    config = write_config(tmp_path, http=False)
    maildir = tmp_path / "Maildir"
    for n in range(TOTAL):
        drop(maildir, f"{n:05d}.msg", make_message(n, reply_to=n - 1 if n % 3 else None))

    for kill_after in KILL_AFTER:
        proc = start(config)
        seen = 0

        def enough(entry: dict, kill_after: int = kill_after) -> bool:
            nonlocal seen
            seen += entry.get("event") == "message.imported"
            return seen >= kill_after

        follow(proc, enough)
        proc.send_signal(signal.SIGKILL)
        proc.wait()

    proc = start(config)
    follow(proc, lambda e: e.get("event") == "mailbox.idle")
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=30) == 0

    store = open_store(f"sqlite:///{tmp_path / 'postroom.db'}")
    with store.transaction() as tx:
        messages = tx.find("conversationmessage")
        raws = tx.list_raw(account="support", limit=10 * TOTAL)
    store.close()
    ids = Counter(m.get("emailid") for m in messages)
    assert len(ids) == TOTAL, "lost messages"
    assert max(ids.values()) == 1, f"duplicated: {[k for k, v in ids.items() if v > 1]}"
    assert sum(r.status == "imported" for r in raws) == TOTAL
    assert not any(maildir.joinpath("new").iterdir())
    assert len(list(maildir.joinpath("cur").iterdir())) == TOTAL
    # Replies joined their thread even across restarts.
    conversations = Counter(m.get("conversation") for m in messages)
    assert len(conversations) == TOTAL // 3
