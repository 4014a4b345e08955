"""Several nodes on one PostgreSQL (docs/scaling.md): the failover drill.

Three daemons (``python -m daemon run``, real processes) share one PostgreSQL schema and
several IMAP accounts on the tests' Dovecot, with mail arriving throughout. Then:

1. node ``n2`` is SIGKILLed: its accounts are taken over once its leases expire;
2. node ``n3``, whose store connection runs through the TCP fault proxy, is cut off from
   the database (a stall: its heartbeats hang): it stops its accounts' work by its own
   clock, and ``n1`` takes them over;
3. ``n2`` is started again and ``n3``'s network comes back: the accounts spread out again.

Judged at the end: every message is imported exactly once (one raw record per Message-ID
and account, one conversation message per Message-ID), and no account was served by two
nodes at once, both by the database's lease history (each new epoch begins after the
last one expired) and by the nodes' own logs (``lease.gained`` .. ``lease.lost``
intervals, the killed node's ending at the kill). Short form by default; the long form
(``POSTROOM_DRILLS=long``) has 50 accounts.
"""

from __future__ import annotations

import itertools
import json
import os
import signal
import subprocess
import sys
from collections import Counter, defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import trio

from daemon.store import open_store
from tests.fakes.dovecot import Dovecot, make_message
from tests.fakes.tcp_proxy import open_tcp_proxy
from tests.nodes.conftest import write_node_config
from tests.reliability.conftest import LONG, report
from tests.store.conftest import postgres_schema

pytestmark = pytest.mark.postgres

ACCOUNTS = 50 if LONG else 6
PER_ROUND = 4 if LONG else 3
LEASE, RENEW = 4.0, 1.0
PASSWORD_ENV = "POSTROOM_NODES_DRILL_PASSWORD"
PASSWORD = "drill-password-not-secret"


@dataclass
class Node:
    name: str
    config: Path
    log: Path
    proc: subprocess.Popen | None = None
    killed_at: datetime | None = None
    runs: list[Path] = field(default_factory=list)

    def start(self) -> None:
        log = self.log.with_suffix(f".{len(self.runs)}.log")
        self.runs.append(log)
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "daemon", "run", "--config", str(self.config)],
            stdout=subprocess.DEVNULL, stderr=log.open("wb"),
            env={**os.environ, "PYTHONUNBUFFERED": "1", PASSWORD_ENV: PASSWORD})

    def kill(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.killed_at = datetime.now(UTC)
        self.proc.wait()

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

    def entries(self) -> list[list[dict[str, Any]]]:
        """Each run's JSON log lines."""
        runs = []
        for log in self.runs:
            lines = []
            for line in log.read_text(errors="replace").splitlines():
                try:
                    lines.append(json.loads(line))
                except ValueError:
                    continue
            runs.append(lines)
        return runs


class Mail:
    """Appends numbered messages to every account's INBOX and remembers their ids."""

    def __init__(self, dovecot: Dovecot, users: list[Any]) -> None:
        self.dovecot = dovecot
        self.users = users
        self.sent: dict[str, list[str]] = defaultdict(list)
        self._n = 0

    def round(self) -> None:
        for user in self.users:
            raws = []
            for _ in range(PER_ROUND):
                self._n += 1
                mid = f"<drill-{self._n}@nodes.test>"
                self.sent[user.name].append(mid)
                raws.append(make_message(f"Drill {self._n}", message_id=mid))
            self.dovecot.append_many(user, raws)

    @property
    def total(self) -> int:
        return sum(len(v) for v in self.sent.values())


async def poll_until(what: str, check: Callable[[], bool], timeout: float = 90.0) -> float:
    """Wait until ``check()`` (run in a thread: it reads the database); seconds taken.

    The nodes are other processes: the store is the only thing to watch.
    """
    start = trio.current_time()
    with trio.move_on_after(timeout) as waiting:
        while not await trio.to_thread.run_sync(check):
            await trio.sleep(0.2)
    assert not waiting.cancelled_caught, f"not within {timeout:g} s: {what}"
    return trio.current_time() - start


def _iso(value: str) -> datetime:
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


def serving_intervals(nodes: list[Node]) -> dict[str, list[tuple[datetime, datetime, str]]]:
    """Per account, when each node served it, from the nodes' own logs."""
    intervals: dict[str, list[tuple[datetime, datetime, str]]] = defaultdict(list)
    for node in nodes:
        for run_index, entries in enumerate(node.entries()):
            end_of_run = (_iso(entries[-1]["timestamp"]) if entries else datetime.now(UTC))
            if node.killed_at is not None and run_index == 0:
                end_of_run = node.killed_at
            open_: dict[str, datetime] = {}
            for e in entries:
                if e.get("event") == "lease.gained":
                    open_[e["account"]] = _iso(e["timestamp"])
                elif e.get("event") == "lease.lost" and e["account"] in open_:
                    intervals[e["account"]].append(
                        (open_.pop(e["account"]), _iso(e["timestamp"]), node.name))
            for account, since in open_.items():
                intervals[account].append((since, end_of_run, node.name))
    return intervals


def test_three_nodes_one_killed_one_cut_off_nothing_lost_or_doubled(dovecot: Dovecot,
                                                                     tmp_path: Path):
    with postgres_schema() as url:
        trio.run(_drill, dovecot, tmp_path, url)


async def _drill(dovecot: Dovecot, tmp_path: Path, url: str) -> None:
    users = [dovecot.add_user(password=PASSWORD) for _ in range(ACCOUNTS)]
    accounts = [u.name for u in users]
    mail = Mail(dovecot, users)
    await trio.to_thread.run_sync(mail.round)  # a backlog before anyone starts
    store = await trio.to_thread.run_sync(open_store, url)

    def read(fn: Callable[[Any], Any]) -> Any:
        with store.transaction() as tx:
            return fn(tx)

    def owners() -> dict[str, str]:
        def live(tx: Any) -> dict[str, str]:
            now = tx.db_now()
            return {lease.account: lease.owner for lease in tx.leases()
                    if lease.expires_at > now}
        return read(live)

    def imported_all() -> bool:
        count = read(lambda tx: tx._x("SELECT count(*) FROM raw_messages").fetchone()[0])
        return count >= mail.total

    async with open_tcp_proxy(("127.0.0.1", 5432)) as proxy:
        via_proxy = url.replace("127.0.0.1:5432", f"127.0.0.1:{proxy.port}")
        nodes = [
            Node(name, write_node_config(tmp_path, store_url, name, accounts, lease=LEASE,
                                         renew=RENEW, imap_port=dovecot.imap_port,
                                         password_env=PASSWORD_ENV), tmp_path / name)
            for name, store_url in (("n1", url), ("n2", url), ("n3", via_proxy))]
        try:
            for node in nodes:
                node.start()
            _, n2, _ = nodes
            spread = await poll_until("the accounts spread over three nodes", lambda: (
                len(o := owners()) == ACCOUNTS and set(o.values()) == {"n1", "n2", "n3"}))
            await poll_until("the backlog", imported_all)
            report(f"nodes drill: {ACCOUNTS} accounts spread over 3 nodes in {spread:.1f} s")

            await trio.to_thread.run_sync(mail.round)
            n2.kill()
            killed = trio.current_time()
            await trio.to_thread.run_sync(mail.round)
            await poll_until("n2's accounts taken over", lambda: (
                len(o := owners()) == ACCOUNTS and "n2" not in o.values()))
            failover = trio.current_time() - killed
            await poll_until("everything after the kill", imported_all)

            proxy.stall(4 * LEASE)  # n3 cannot reach the database
            cut = trio.current_time()
            await trio.to_thread.run_sync(mail.round)
            await poll_until("n3's accounts taken over", lambda: (
                set(owners().values()) == {"n1"} and len(owners()) == ACCOUNTS))
            cutoff = trio.current_time() - cut
            await poll_until("everything while n3 is cut off", imported_all)

            n2.start()  # both back
            await poll_until("three nodes again", lambda: (
                set(owners().values()) == {"n1", "n2", "n3"}), timeout=120)
            await trio.to_thread.run_sync(mail.round)
            await poll_until("the last round", imported_all)
        finally:
            for node in nodes:
                node.stop()

    def census(tx: Any) -> tuple[Counter, Counter, list[dict[str, Any]]]:
        raw = Counter((r[0], r[1]) for r in tx._x(
            "SELECT account, message_id FROM raw_messages").fetchall())
        emailids = Counter(m.get("emailid") for m in tx.find("conversationmessage"))
        return raw, emailids, tx.lease_history()

    raw, emailids, history = await trio.to_thread.run_sync(read, census)
    store.close()
    expected = Counter((account, mid.strip("<>")) for account, mids in mail.sent.items()
                       for mid in mids)
    raw_by_bare = Counter({(a, (m or "").strip("<>")): n for (a, m), n in raw.items()})
    assert raw_by_bare == expected, "every message stored exactly once"
    assert max(emailids.values()) == 1, "no conversation message twice"

    by_account: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for h in history:
        by_account[h["account"]].append(h)
    for account, changes in by_account.items():
        epochs = [h["epoch"] for h in changes]
        assert epochs == list(range(1, len(epochs) + 1))
        for h in changes[1:]:
            assert h["acquired_at"] >= h["previous_expires_at"], (account, h)

    overlaps = []
    for account, spans in serving_intervals(nodes).items():
        spans.sort()
        for (_, e1, who1), (s2, _, who2) in itertools.pairwise(spans):
            if who1 != who2 and s2 < e1:
                overlaps.append((account, who1, who2, (e1 - s2).total_seconds()))
    assert overlaps == [], "an account served by two nodes at once"
    report(f"nodes drill: {mail.total} messages imported exactly once; "
           f"failover after SIGKILL {failover:.1f} s, after the cut-off {cutoff:.1f} s "
           f"(lease {LEASE:g} s); {len(history)} changes of hands, no overlap")
