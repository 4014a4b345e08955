"""Account leases: taking, balancing, shedding, takeover, fencing, stopping in time."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
import trio

from daemon.errors import LeaseLost
from daemon.leases import LeaseKeeper, LeaseSettings, heartbeat
from daemon.store import open_store
from daemon.store.sqlite import SqliteStore
from daemon.store.transaction import Fences

T0 = datetime(2026, 1, 1, tzinfo=UTC)
S = LeaseSettings()
ACCOUNTS = ["a", "b", "c", "d"]


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def beat(store, node, now, release=(), accounts=ACCOUNTS):
    with store.transaction() as tx:
        return heartbeat(tx, node, accounts, release, S, now=now)


@pytest.fixture
def store():
    s = SqliteStore(":memory:")
    yield s
    s.close()


def test_a_lone_node_takes_every_account(store):
    first = beat(store, "n1", at(0))
    assert dict(first.held) == {"a": 1, "b": 1, "c": 1, "d": 1}
    assert first.shed == () and first.live_nodes == 1
    again = beat(store, "n1", at(10))
    assert dict(again.held) == dict(first.held)  # renewed, same epochs


def test_a_joining_node_gets_its_share_through_shedding(store):
    beat(store, "n1", at(0))
    joined = beat(store, "n2", at(1))
    assert dict(joined.held) == {} and joined.live_nodes == 2
    assert joined.owners == {"a": "n1", "b": "n1", "c": "n1", "d": "n1"}
    shedding = beat(store, "n1", at(2))
    assert shedding.shed == ("c", "d")  # 4 > share 2 + slack 1
    released = beat(store, "n1", at(3), release=shedding.shed)
    assert sorted(released.held) == ["a", "b"]
    taken = beat(store, "n2", at(4))
    assert dict(taken.held) == {"c": 2, "d": 2}  # the epoch grew with the change of hands


def test_slack_keeps_one_account_above_share_without_flapping():
    from daemon.leases import _keep
    from daemon.store.transaction import Lease

    counts = {"n1": 4, "n2": 2, "n3": 2, "n4": 2}  # 10 accounts: share 3, floor 2
    leases = {f"{node}-{i}": Lease(f"{node}-{i}", node, 1, at(30))
              for node, n in counts.items() for i in range(n)}
    assert _keep(4, 3, 10, list(counts), leases, at(0), slack=1) == 4
    assert _keep(4, 3, 10, list(counts), leases, at(0), slack=0) == 3


def test_a_node_left_with_nothing_gets_accounts_despite_the_slack(store):
    six = ["a", "b", "c", "d", "e", "f"]
    beat(store, "n1", at(0), accounts=six)
    beat(store, "n2", at(0.1), accounts=six)
    first = beat(store, "n1", at(0.2), accounts=six)
    beat(store, "n1", at(0.3), release=first.shed, accounts=six)
    beat(store, "n2", at(0.4), accounts=six)  # now 3 and 3
    assert beat(store, "n3", at(0.5), accounts=six).held == {}  # share 2, all taken
    n1 = beat(store, "n1", at(0.6), accounts=six)
    assert len(n1.shed) == 1  # 3 is only share + slack, but n3 holds nothing
    beat(store, "n1", at(0.7), release=n1.shed, accounts=six)
    n2 = beat(store, "n2", at(0.8), accounts=six)
    beat(store, "n2", at(0.9), release=n2.shed, accounts=six)
    assert len(beat(store, "n3", at(1.0), accounts=six).held) == 2


def test_a_dead_nodes_accounts_are_taken_when_its_leases_expire(store):
    beat(store, "n1", at(0), accounts=["a", "b"])
    beat(store, "n2", at(0.5), accounts=["a", "b"])
    waiting = beat(store, "n2", at(20), accounts=["a", "b"])
    assert dict(waiting.held) == {}
    assert waiting.retake_at == at(30)  # it beats again when n1's lease runs out
    taken = beat(store, "n2", at(30), accounts=["a", "b"])
    assert dict(taken.held) == {"a": 2, "b": 2}
    with store.transaction() as tx:
        history = tx.lease_history()
    assert [(h["account"], h["owner"], h["epoch"], h["previous_owner"]) for h in history] == [
        ("a", "n1", 1, None), ("b", "n1", 1, None), ("a", "n2", 2, "n1"), ("b", "n2", 2, "n1")]
    for h in history[2:]:
        assert h["acquired_at"] >= h["previous_expires_at"]


@pytest.mark.postgres
def test_checkpoint_writes_are_fenced_by_the_epoch(pg_url):
    store = open_store(pg_url)
    try:
        with store.transaction() as tx:
            now = tx.db_now()
            assert tx.acquire_lease("a", "n1", now, now + timedelta(seconds=30)) == 1
        store.fences = Fences("n1")
        with pytest.raises(LeaseLost), store.transaction() as tx:
            tx.set_checkpoint("a", "uid", "1")  # not in the fences: refused at once
        store.fences.epochs["a"] = 1
        with store.transaction() as tx:
            tx.set_checkpoint("a", "uid", "1")
        with store.transaction() as tx:  # n1's lease runs out, n2 takes it
            tx._x("UPDATE account_leases SET expires_at = now() - interval '1 second'")
            now = tx.db_now()
            assert tx.acquire_lease("a", "n2", now, now + timedelta(seconds=30)) == 2
        with pytest.raises(LeaseLost), store.transaction() as tx:
            tx.set_checkpoint("a", "uid", "2")
        with pytest.raises(LeaseLost), store.transaction() as tx:
            tx.delete_checkpoints("a", "")
        store.fences = None
        with store.transaction() as tx:
            assert tx.get_checkpoint("a", "uid") == "1"  # the stale node wrote nothing
    finally:
        store.close()


def _actor(name, events):
    async def run(*, task_status=trio.TASK_STATUS_IGNORED):
        events.append(("start", name, trio.current_time()))
        task_status.started()
        try:
            await trio.sleep_forever()
        finally:
            events.append(("stop", name, trio.current_time()))
    return run


async def test_a_node_that_cannot_reach_the_database_stops_its_accounts_work_before_its_lease_expires(  # noqa: E501
        autojump_clock, direct_store):
    events: list = []
    keeper = LeaseKeeper(direct_store, "n1", {a: _actor(a, events) for a in ("a", "b")})
    async with trio.open_nursery() as nursery:
        await nursery.start(keeper.run)
        assert sorted(keeper.work) == ["a", "b"]
        assert sorted(keeper.fences.epochs) == ["a", "b"]
        await trio.sleep(25)  # renewed meanwhile: still serving
        assert keeper.beats >= 3 and sorted(keeper.work) == ["a", "b"]
        direct_store.cut = True  # the database stops answering; heartbeats hang
        cut_at = trio.current_time()
        last_renewal = keeper.last_renewal
        calls = direct_store.calls
        with trio.fail_after(60):
            while keeper.work:
                await keeper.changed.wait()
        stopped_at = trio.current_time()
        nursery.cancel_scope.cancel()
    stops = [t for kind, _, t in events if kind == "stop"]
    assert len(stops) == 2 and max(stops) == stopped_at
    # The database's lease runs until (its now() during the last renewal) + 30 s, and its
    # now() came after this node noted last_renewal: the work stopped 5 s before that.
    assert stopped_at == pytest.approx(last_renewal + S.lease_seconds - S.margin_seconds)
    assert stopped_at < last_renewal + S.lease_seconds
    assert stopped_at > cut_at
    assert direct_store.calls == calls  # no heartbeat got through: its own clock decided
    assert keeper.fences.epochs == {}   # and no intake write can pass the fence


async def test_a_heartbeat_that_answers_too_late_renews_nothing(autojump_clock, direct_store):
    events: list = []
    keeper = LeaseKeeper(direct_store, "n1", {"a": _actor("a", events)})
    slow = direct_store.run

    async def late(fn, *args):
        if keeper.beats >= 1:
            await trio.sleep(S.lease_seconds)  # answers after the trusted time
        return await slow(fn, *args)

    direct_store.run = late
    async with trio.open_nursery() as nursery:
        await nursery.start(keeper.run)
        with trio.fail_after(60):
            while keeper.work:
                await keeper.changed.wait()
        nursery.cancel_scope.cancel()
    assert keeper.beats == 1
    assert [kind for kind, _, _ in events] == ["start", "stop"]


async def test_graceful_stop_releases_the_leases(autojump_clock, direct_store):
    keeper = LeaseKeeper(direct_store, "n1", {"a": _actor("a", [])})
    async with trio.open_nursery() as nursery:
        await nursery.start(keeper.run)
        nursery.cancel_scope.cancel()
    with direct_store.store.transaction() as tx:
        now = tx.db_now()
        assert [lease.expires_at <= now for lease in tx.leases()] == [True]
        assert tx.live_nodes(now) == []


def test_announcing_forgets_nodes_gone_for_a_day(store):
    from daemon.leases import _announce

    with store.transaction() as tx:
        now = tx.db_now()
        tx.beat_node("old:1", now - timedelta(days=3), now - timedelta(days=2))
        tx.beat_node("recent:2", now - timedelta(hours=2), now - timedelta(hours=1))
        _announce(tx, "n1", S)
        rows = [r[0] for r in tx._x("SELECT node_id FROM nodes ORDER BY node_id")]
    assert rows == ["n1", "recent:2"]
