"""Wake-ups across nodes: "sync this account now" reaches the node that serves it.

A webhook or an API call may land on any node, while only the lease holder
(:mod:`daemon.leases`) runs the account's actor. :func:`kick` wakes the actor directly
when this node serves the account (or the store is SQLite, single-node); otherwise it
records the kick in the store (``account_kicks``), whose commit sends a PostgreSQL
``NOTIFY postroom_kicks`` with the account id. Every node :func:`listens <listen_for_kicks>`
on a dedicated connection, and the one serving the account consumes the row (fenced by
its lease) and wakes the actor. NOTIFY is best effort (a dropped connection loses what
was sent meanwhile), so the listener also polls the table every :data:`POLL_SECONDS`: a
kick is never lost, at worst late.
"""

from __future__ import annotations

__all__ = ["POLL_SECONDS", "KickListener", "kick", "listen_for_kicks"]

from typing import Any

import structlog
import trio

from daemon.errors import TransientError

log = structlog.get_logger("postroom.kicks")

#: How often the owner looks for kicks whose notification it missed.
POLL_SECONDS = 5.0
CHANNEL = "postroom_kicks"


async def kick(daemon: Any, account: str) -> None:
    """Wake ``account``'s actor, here or on the node that serves it (see the module).

    An account no node leases (disabled, or without intake) is woken here: a no-op.

    Raises:
        KeyError: no such account.
        TransientError: the store could not record the kick.
    """
    handle = daemon.handles[account]
    keeper = daemon.leases
    if keeper is None or account in keeper.work or account not in keeper.runners:
        handle.wake()
        return
    await daemon.store.run(lambda tx: tx.record_kick(account))


class KickListener:
    """A dedicated ``LISTEN`` connection, used from one worker thread at a time."""

    def __init__(self, conninfo: str) -> None:
        self.conninfo = conninfo
        self._conn: Any = None  # a psycopg.Connection once opened
        self.closing = False  # set on the way out: the thread waiting last closes

    def wait(self, timeout: float) -> list[str]:
        """Block up to ``timeout`` for notifications; return their payloads (account ids).

        Raises psycopg.Error when the connection fails (it is reopened next time).
        """
        import psycopg  # on demand: SQLite installs never load it

        try:
            if self._conn is None:
                self._conn = psycopg.connect(self.conninfo, autocommit=True)
                self._conn.execute(f"LISTEN {CHANNEL}")
            return [n.payload for n in self._conn.notifies(timeout=timeout, stop_after=1)]
        except psycopg.Error:
            self.close()
            raise
        finally:
            if self.closing:
                self.close()

    def close(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            conn.close()


async def listen_for_kicks(daemon: Any, keeper: Any, *, poll_seconds: float = POLL_SECONDS,
                           task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED
                           ) -> None:
    """Consume the kicks of the accounts ``keeper`` holds and wake their actors; after
    each notification, and every ``poll_seconds`` without one. Runs until cancelled."""
    import psycopg

    listener = KickListener(daemon.store.store.conninfo)
    task_status.started()
    try:
        while True:
            await _take_kicks(daemon, keeper)
            try:
                await trio.to_thread.run_sync(listener.wait, poll_seconds,
                                              abandon_on_cancel=True)
            except psycopg.Error as exc:
                log.warning("kicks.listen_failed", error=str(exc).splitlines()[0])
                await trio.sleep(poll_seconds)
    finally:
        # A wait abandoned by cancellation ends within poll_seconds and closes then.
        listener.closing = True


async def _take_kicks(daemon: Any, keeper: Any) -> None:
    held = sorted(keeper.work)
    if not held:
        return
    try:
        kicked = await daemon.store.run(lambda tx: tx.take_kicks(held))
    except TransientError as exc:
        log.warning("kicks.take_failed", error=str(exc))
        return
    for account in kicked:
        daemon.handles[account].wake()
        log.info("kicks.woken", account=account)
    if kicked:
        keeper.kicks_taken += len(kicked)
        keeper._notify()
