"""AsyncStore: transactions in worker threads, a bounded number at a time, cancel-safe."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest
import trio
import trio.testing

from daemon.errors import StoreError, UniqueViolation
from daemon.store import AsyncStore, Store, open_store
from tests.store.conftest import sqlite_url

THREAD_WAIT_S = 10  # a safety net so a bug hangs a test for seconds, not forever


@pytest.fixture
async def astore(tmp_path: Path):
    store = AsyncStore(open_store(sqlite_url(tmp_path)))
    yield store
    await store.aclose()


class Gate:
    """Lets a test hold a transaction open inside its worker thread."""

    def __init__(self) -> None:
        self.entered = trio.Event()
        self._release = threading.Event()

    def hold(self) -> None:
        """Called in the worker thread: announce, then wait for release()."""
        trio.from_thread.run_sync(self.entered.set)
        assert self._release.wait(THREAD_WAIT_S)

    def release(self) -> None:
        self._release.set()


async def test_run_commits_and_returns_the_result(store: Store):
    astore = AsyncStore(store)
    pid = await astore.run(lambda tx, name: tx.create("person", {"name": name}), "Ann")
    assert await astore.run(lambda tx: tx.get("person", pid).props) == {"name": "Ann"}
    await astore.aclose()


async def test_run_rolls_back_and_reraises(astore: AsyncStore):
    def failing(tx):
        tx.set_checkpoint("a", "k", "v")
        tx.add_raw_does_not_exist()

    with pytest.raises(AttributeError):
        await astore.run(failing)
    assert await astore.run(lambda tx: tx.get_checkpoint("a", "k")) is None


async def test_store_errors_pass_through(astore: AsyncStore):
    await astore.ensure_index("person", "email", unique=True)
    await astore.run(lambda tx: tx.create("person", {"email": "a@x"}))
    with pytest.raises(UniqueViolation):
        await astore.run(lambda tx: tx.create("person", {"email": "a@x"}))


class FakeStore:
    url_for_logs = "fake://"

    def __init__(self, **attrs) -> None:
        self.__dict__.update(attrs)
        self.closed = False

    def close(self) -> None:
        self.closed = True


def test_limiter_is_sized_from_the_store(tmp_path: Path):
    sqlite = open_store(sqlite_url(tmp_path))
    try:
        assert AsyncStore(sqlite).limiter.total_tokens == 1
    finally:
        sqlite.close()
    assert AsyncStore(FakeStore(max_concurrency=3)).limiter.total_tokens == 3
    assert AsyncStore(FakeStore()).limiter.total_tokens == 1
    mine = trio.CapacityLimiter(7)
    assert AsyncStore(FakeStore(max_concurrency=3), limiter=mine).limiter is mine


async def test_one_transaction_at_a_time(astore: AsyncStore):
    gate, order = Gate(), []

    def first(tx):
        gate.hold()
        order.append("first")

    async with trio.open_nursery() as nursery:
        nursery.start_soon(astore.run, first)
        await gate.entered.wait()
        nursery.start_soon(astore.run, lambda tx: order.append("second"))
        await trio.testing.wait_all_tasks_blocked()
        assert order == []
        assert astore.limiter.statistics().tasks_waiting == 1
        gate.release()
    assert order == ["first", "second"]


async def test_cancelled_while_the_thread_runs_commits_then_raises(astore: AsyncStore):
    gate, results = Gate(), []

    def work(tx):
        tx.set_checkpoint("a", "k", "committed")
        gate.hold()
        return "done"

    async def cancel_then_release(scope: trio.CancelScope) -> None:
        await gate.entered.wait()
        scope.cancel()
        gate.release()

    with trio.CancelScope() as scope:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(cancel_then_release, scope)
            results.append(await astore.run(work))
    assert scope.cancelled_caught
    assert results == []  # Cancelled came instead of the result...
    assert await astore.run(lambda tx: tx.get_checkpoint("a", "k")) == "committed"  # ...after


async def cancel_when_blocked(scope: trio.CancelScope, limiter: trio.CapacityLimiter) -> None:
    await trio.testing.wait_all_tasks_blocked()
    assert limiter.statistics().tasks_waiting == 1
    scope.cancel()


async def test_cancelled_while_waiting_for_the_limiter_runs_nothing(astore: AsyncStore):
    gate, ran = Gate(), []
    async with trio.open_nursery() as nursery:
        nursery.start_soon(astore.run, lambda tx: gate.hold())
        await gate.entered.wait()
        with trio.CancelScope() as scope:
            nursery.start_soon(cancel_when_blocked, scope, astore.limiter)
            await astore.run(lambda tx: ran.append(True))
        gate.release()
    assert scope.cancelled_caught
    assert ran == []


async def test_aclose_closes_the_store_and_is_idempotent(tmp_path: Path):
    store = open_store(sqlite_url(tmp_path))
    async with AsyncStore(store) as astore:
        await astore.run(lambda tx: tx.set_checkpoint("a", "k", "v"))
    with pytest.raises(StoreError, match="closed"), store.transaction():
        pass
    with pytest.raises(trio.ClosedResourceError):
        await astore.run(lambda tx: None)
    with pytest.raises(trio.ClosedResourceError):
        await astore.ensure_index("person", "email")
    await astore.aclose()


async def test_aclose_closes_even_when_cancelled():
    fake = FakeStore()
    astore = AsyncStore(fake)
    with trio.CancelScope() as scope:
        scope.cancel()
        await astore.aclose()
    assert fake.closed
    assert scope.cancelled_caught  # the cancellation is still delivered, afterwards


async def test_aclose_waits_for_the_running_transaction(astore: AsyncStore):
    gate, done = Gate(), []

    def work(tx):
        gate.hold()
        tx.set_checkpoint("a", "k", "v")
        done.append(True)

    async with trio.open_nursery() as nursery:
        nursery.start_soon(astore.run, work)
        await gate.entered.wait()
        nursery.start_soon(astore.aclose)
        await trio.testing.wait_all_tasks_blocked()
        assert done == []
        gate.release()
    assert done == [True]
