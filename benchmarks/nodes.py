"""Several nodes on one PostgreSQL: backlog throughput with 1 and 3 nodes, and failover.

N accounts (default 12), each its own Dovecot user with a backlog of M generated messages
(default 100), imported into a fresh PostgreSQL schema:

* **1 node**: one ``python -m daemon run`` process; timed from spawning it until every
  message has a raw record in the store;
* **3 nodes**: a fresh schema and fresh users with the same backlog, three processes
  spawned together; timed the same way (the nodes share the accounts out by their
  leases while they import, see ``docs/scaling.md``);
* **failover**: with the three still running, one is SIGKILLed; timed until every one of
  its accounts has a live lease on another node, and until a message then appended to
  one of them is imported.

The nodes' leases are ``--lease`` / ``--renew`` seconds (the defaults of the config, 30
and 10). PostgreSQL is the one on 127.0.0.1:5432 (``POSTROOM_TEST_POSTGRES_URL``).

Run: ``.venv/bin/python -m benchmarks.nodes --accounts 12 --messages 100``
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import psycopg

from benchmarks._common import Report, dovecot_server, seed_mailbox, workdir
from benchmarks.messages import generate_messages
from daemon.store import open_store
from tests.fakes.dovecot import Dovecot, make_message
from tests.nodes.conftest import write_node_config

POSTGRES_URL = os.environ.get("POSTROOM_TEST_POSTGRES_URL",
                              "postgresql://postgres@127.0.0.1:5432/test")
PASSWORD_ENV = "POSTROOM_BENCH_PASSWORD"
PASSWORD = "bench-password-not-secret"


@contextmanager
def postgres_schema() -> Iterator[str]:
    """A store URL with a throwaway schema, dropped afterwards."""
    schema = f"bench_{uuid.uuid4().hex[:12]}"
    try:
        yield f"{POSTGRES_URL}?schema={schema}"
    finally:
        with psycopg.connect(POSTGRES_URL, autocommit=True) as conn:
            conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')


def spawn(config: Path, log: Path) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "daemon", "run", "--config", str(config)],
                            stdout=subprocess.DEVNULL, stderr=log.open("wb"),
                            env={**os.environ, PASSWORD_ENV: PASSWORD})


def stop(procs: Sequence[subprocess.Popen]) -> None:
    for proc in procs:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
    for proc in procs:
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def wait_until(check: Callable[[], bool], timeout: float, what: str) -> float:
    """Seconds until ``check()`` (polled every 50 ms: the nodes are other processes)."""
    start = time.monotonic()
    while not check():
        if time.monotonic() - start > timeout:
            raise SystemExit(f"timed out after {timeout:g} s waiting for {what}")
        time.sleep(0.05)
    return time.monotonic() - start


class Watch:
    """Reads the shared store: raw records, live lease owners."""

    def __init__(self, url: str) -> None:
        self.store = open_store(url)

    def imported(self) -> int:
        with self.store.transaction() as tx:
            return int(tx._x("SELECT count(*) FROM raw_messages").fetchone()[0])

    def owners(self) -> dict[str, str]:
        with self.store.transaction() as tx:
            now = tx.db_now()
            return {lease.account: lease.owner for lease in tx.leases()
                    if lease.expires_at > now}

    def close(self) -> None:
        self.store.close()


def backlog(server: Dovecot, accounts: int, messages: int, seed: int) -> list[Any]:
    users = [server.add_user(password=PASSWORD) for _ in range(accounts)]
    for index, user in enumerate(users):
        seed_mailbox(server, user, generate_messages(messages, seed=seed + index))
    return users


def run_nodes(root: Path, server: Dovecot, url: str, users: list[Any], names: list[str],
              args: argparse.Namespace) -> tuple[list[subprocess.Popen], float, Watch]:
    """Spawn ``names`` on ``url``; return them, the seconds to import the backlog, and a
    :class:`Watch` on the store."""
    root.mkdir(parents=True, exist_ok=True)
    accounts = [u.name for u in users]
    configs = [write_node_config(root, url, name, accounts, lease=args.lease,
                                 renew=args.renew, imap_port=server.imap_port,
                                 password_env=PASSWORD_ENV) for name in names]
    total = len(users) * args.messages
    start = time.monotonic()
    procs = [spawn(config, root / f"{name}.log")
             for name, config in zip(names, configs, strict=True)]
    watch = None
    try:
        while watch is None:  # the first node creates the schema
            try:
                watch = Watch(url)
            except Exception:
                if time.monotonic() - start > 60:
                    raise
                time.sleep(0.1)
        wait_until(lambda: watch.imported() >= total, args.timeout, "the backlog")
    except BaseException:
        stop(procs)
        raise
    return procs, time.monotonic() - start, watch


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--accounts", type=int, default=12)
    parser.add_argument("--messages", type=int, default=100, help="backlog per account")
    parser.add_argument("--lease", type=float, default=30.0)
    parser.add_argument("--renew", type=float, default=10.0)
    parser.add_argument("--timeout", type=float, default=600.0)
    parser.add_argument("--keep", action="store_true")
    args = parser.parse_args(argv)
    report = Report("nodes")
    total = args.accounts * args.messages
    with workdir("postroom-nodes-", keep=args.keep) as root, \
            dovecot_server(connections=3 * args.accounts + 10) as server:
        with postgres_schema() as url:
            users = backlog(server, args.accounts, args.messages, seed=1)
            procs, one, watch = run_nodes(root / "one", server, url, users, ["n1"], args)
            stop(procs)
            watch.close()
        report.line("1 node", f"{total} messages in {one:.1f} s "
                    f"({total / one:.0f} msg/s)", one_node_seconds=round(one, 2),
                    one_node_rate=round(total / one, 1))
        with postgres_schema() as url:
            users = backlog(server, args.accounts, args.messages, seed=1)
            procs, three, watch = run_nodes(root / "three", server, url, users,
                                            ["n1", "n2", "n3"], args)
            try:
                report.line("3 nodes", f"{total} messages in {three:.1f} s "
                            f"({total / three:.0f} msg/s, x{one / three:.2f})",
                            three_nodes_seconds=round(three, 2),
                            three_nodes_rate=round(total / three, 1))
                wait_until(lambda: set(watch.owners().values()) == {"n1", "n2", "n3"},
                           args.timeout, "the accounts to spread over three nodes")
                victim = procs[1]
                theirs = sorted(a for a, o in watch.owners().items() if o == "n2")
                user = next(u for u in users if u.name == theirs[0])
                victim.send_signal(signal.SIGKILL)
                killed = time.monotonic()
                victim.wait()
                server.append(user, make_message("After the kill",
                                                 message_id="<after-kill@bench>"))
                wait_until(lambda: all(watch.owners().get(a) not in (None, "n2")
                                       for a in theirs), args.timeout, "takeover")
                taken = time.monotonic() - killed
                wait_until(lambda: watch.imported() >= total + 1, args.timeout,
                           "the message after the kill")
                imported = time.monotonic() - killed
            finally:
                stop(procs)
                watch.close()
        report.line("failover", f"{len(theirs)} accounts taken over {taken:.1f} s after "
                    f"SIGKILL, a new message imported after {imported:.1f} s "
                    f"(lease {args.lease:g} s, renewed every {args.renew:g} s)",
                    failover_seconds=round(taken, 2),
                    failover_import_seconds=round(imported, 2),
                    lease_seconds=args.lease, accounts=args.accounts,
                    messages_per_account=args.messages)
    report.print()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
