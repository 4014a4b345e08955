"""Using a synchronous store from Trio: each transaction runs in a worker thread.

Both backends block (``sqlite3``, sync psycopg), so :class:`AsyncStore` hands a whole
transaction to ``trio.to_thread.run_sync``. A ``CapacityLimiter`` bounds the threads: one
for SQLite (a single writer; more threads would only queue on its lock), the pool size for
PostgreSQL. Handing over whole transactions, not single statements, keeps the thread hops
at one per unit of work and means a transaction never spans a Trio checkpoint.
"""

from __future__ import annotations

__all__ = ["AsyncStore"]

from collections.abc import Callable
from types import TracebackType
from typing import Any, TypeVar, TypeVarTuple, Unpack

import trio

from daemon.store.base import Store, Tx

T = TypeVar("T")
Ts = TypeVarTuple("Ts")


class AsyncStore:
    """Runs store transactions in worker threads, a bounded number at a time.

    Args:
        store: an open store; the AsyncStore owns it from now on (``aclose`` closes it).
        limiter: bounds concurrent transactions. Default: a new
            ``CapacityLimiter(store.max_concurrency)`` (1 if the store does not say).

    Use ``async with AsyncStore(open_store(url)) as astore:`` or call :meth:`aclose`.
    """

    def __init__(self, store: Store, *, limiter: trio.CapacityLimiter | None = None) -> None:
        self.store = store
        self.limiter = limiter or trio.CapacityLimiter(getattr(store, "max_concurrency", 1))
        self._closed = False

    def __repr__(self) -> str:
        return f"<AsyncStore {self.store.url_for_logs} limiter={self.limiter.total_tokens}>"

    async def run(self, fn: Callable[[Tx, Unpack[Ts]], T], *args: *Ts) -> T:
        """Return ``fn(tx, *args)`` run inside one transaction in a worker thread.

        ``fn`` runs in a thread: it must not touch Trio objects (use ``trio.from_thread``)
        and should only do store work, as it holds the store's writer slot.

        This is a checkpoint. Cancellation while waiting for the limiter leaves nothing
        behind. Once the thread has started it is not abandoned: the transaction commits
        or rolls back in the thread, and then :class:`trio.Cancelled` is raised (the result,
        if it committed, is discarded; callers treat a cancelled write as "unknown" and
        rely on idempotent retries, as intake does with source keys).

        Raises:
            trio.ClosedResourceError: after :meth:`aclose`.
            StoreBusyError: locked, disk full or connection lost; back off and retry.
            UniqueViolation: a unique key was taken (and ``fn`` did not catch it).
            Exception: whatever ``fn`` raised; the transaction was rolled back.
        """
        if self._closed:
            raise trio.ClosedResourceError("the store is closed")
        result = await trio.to_thread.run_sync(self._transact, fn, args,
                                               limiter=self.limiter, abandon_on_cancel=False)
        await trio.lowlevel.checkpoint_if_cancelled()
        return result

    def _transact(self, fn: Callable[..., T], args: tuple[Any, ...]) -> T:
        with self.store.transaction() as tx:
            return fn(tx, *args)

    async def ensure_index(self, limetype: str, prop: str, *, unique: bool = False) -> None:
        """:meth:`Store.ensure_index` in a worker thread; same checkpoint rules as :meth:`run`."""
        if self._closed:
            raise trio.ClosedResourceError("the store is closed")
        await trio.to_thread.run_sync(lambda: self.store.ensure_index(limetype, prop,
                                                                      unique=unique),
                                      limiter=self.limiter)
        await trio.lowlevel.checkpoint_if_cancelled()

    async def aclose(self) -> None:
        """Close the store once the running transactions have finished. Idempotent.

        This is a checkpoint. Closing is shielded from cancellation, so the store is always
        closed when this returns or raises; a pending cancellation is raised afterwards.
        """
        if self._closed:
            await trio.lowlevel.checkpoint()
            return
        self._closed = True
        with trio.CancelScope(shield=True):
            await trio.to_thread.run_sync(self.store.close, limiter=self.limiter)
        await trio.lowlevel.checkpoint_if_cancelled()

    async def __aenter__(self) -> AsyncStore:
        return self

    async def __aexit__(self, exc_type: type[BaseException] | None,
                        exc: BaseException | None, tb: TracebackType | None) -> None:
        await self.aclose()
