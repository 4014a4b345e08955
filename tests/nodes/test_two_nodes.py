"""Two daemons in one Trio run on one PostgreSQL schema: accounts shared out, each
message imported once, and a node that stops hands its accounts over."""

from __future__ import annotations

from pathlib import Path

import pytest
import trio

from daemon.app import open_daemon
from daemon.config import load_config
from daemon.store import open_store
from tests.e2e.conftest import make_message
from tests.nodes.conftest import write_node_config

pytestmark = pytest.mark.postgres

ACCOUNTS = ["m1", "m2", "m3", "m4"]


async def until(condition, *changes, timeout: float = 30.0) -> None:
    """Wait (event-driven) until ``condition()``; ``changes`` give the keepers to watch."""
    with trio.fail_after(timeout):
        while not condition():
            async with trio.open_nursery() as nursery:
                async def one(keeper, nursery=nursery):
                    await keeper.changed.wait()
                    nursery.cancel_scope.cancel()
                for keeper in changes:
                    nursery.start_soon(one, keeper)


def drop(root: Path, account: str, n: int) -> None:
    (root / account / "new" / f"{n}.eml").write_bytes(make_message(n))


def imported(pg_url: str) -> list[str]:
    store = open_store(pg_url)
    try:
        with store.transaction() as tx:
            return sorted(r.source_key for r in tx.list_raw(limit=10_000))
    finally:
        store.close()


async def test_two_nodes_share_the_accounts_and_hand_them_over(tmp_path: Path, pg_url: str):
    a = load_config(write_node_config(tmp_path, pg_url, "a", ACCOUNTS))
    b = load_config(write_node_config(tmp_path, pg_url, "b", ACCOUNTS))
    async with open_daemon(a) as node_a:
        assert sorted(node_a.leases.work) == ACCOUNTS  # alone: everything
        async with open_daemon(b) as node_b:
            ka, kb = node_a.leases, node_b.leases
            await until(lambda: len(ka.work) == 2 and len(kb.work) == 2, ka, kb)
            assert set(ka.work).isdisjoint(kb.work)
            status = node_b.status()
            assert status["node"] == "b"
            assert {s["account"]: s["owner"] for s in status["accounts"]} == {
                **{acc: "a" for acc in ka.work}, **{acc: "b" for acc in kb.work}}
            for n, account in enumerate(ACCOUNTS * 3):
                drop(tmp_path, account, n)
            await until(lambda: all(not any((tmp_path / acc / "new").iterdir())
                                    for acc in ACCOUNTS), ka, kb)
            b_accounts = set(kb.work)
        # b stopped gracefully and released its leases: a takes them at its next beat
        await until(lambda: sorted(ka.work) == ACCOUNTS, ka, timeout=10)
        for n, account in enumerate(sorted(b_accounts)):
            drop(tmp_path, account, 100 + n)
        await until(lambda: all(not any((tmp_path / acc / "new").iterdir())
                                for acc in ACCOUNTS), ka)
    keys = await trio.to_thread.run_sync(imported, pg_url)
    assert len(keys) == len(set(keys)) == 14


async def test_a_sync_request_on_any_node_wakes_the_node_serving_the_account(
        tmp_path: Path, pg_url: str):
    from daemon.kicks import kick

    a = load_config(write_node_config(tmp_path, pg_url, "a", ACCOUNTS))
    b = load_config(write_node_config(tmp_path, pg_url, "b", ACCOUNTS))
    async with open_daemon(a) as node_a, open_daemon(b) as node_b:
        ka, kb = node_a.leases, node_b.leases
        await until(lambda: len(ka.work) == 2 and len(kb.work) == 2, ka, kb)
        theirs = min(ka.work)
        await kick(node_b, theirs)  # b does not serve it: recorded, NOTIFY sent
        with trio.fail_after(4):  # well before the 5 s poll: the notification did it
            while ka.kicks_taken == 0:
                await ka.changed.wait()
        await kick(node_b, min(kb.work))  # served here: woken directly, nothing recorded
        assert kb.kicks_taken == 0
    store = await trio.to_thread.run_sync(open_store, pg_url)
    try:
        with store.transaction() as tx:
            assert tx._x("SELECT count(*) FROM account_kicks").fetchone()[0] == 0
    finally:
        store.close()
