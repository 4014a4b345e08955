"""Account leases: which node serves which account, on several nodes sharing PostgreSQL.

The problem: two daemons on one database would both sync every account (GitLab's
mail_room: "N application servers -> N comments"), and a node that dies must not keep its
accounts until an operator acts (Nylas' sync-engine). The design:

* **A lease row per account** (``account_leases``: owner, epoch, expires_at), taken and
  renewed by a heartbeat transaction every ``renew_seconds`` (10 s) for ``lease_seconds``
  (30 s), measured by the *database's* clock (``now()``), so the nodes' clocks need not
  agree. Every change of hands bumps the epoch and is appended to ``lease_history``.
* **Stop before expiry, by the node's own clock.** A node notes its monotonic time
  *before* each heartbeat; a lease renewed by it is trusted until that time plus
  ``lease_seconds - margin_seconds``. When that passes without a newer renewal (the
  database is unreachable, the heartbeat hangs) the account's actor is cancelled at once,
  without waiting for the database. The database's expiry is later still (its ``now()``
  ran after the node's note), so a new owner can only start after the old one stopped.
  Only the rate of the clocks matters, not their offset.
* **Fencing.** Checkpoint writes (the IMAP UIDs, ``flagged_uid``, the automatic-mail
  budget, kicks consumed: everything that belongs to an account's intake) check the lease
  row's owner and epoch in the same transaction and lock it until commit
  (:class:`~daemon.store.transaction.Fences`); a node that lost its lease cannot write,
  and its import rolls back (:class:`~daemon.errors.LeaseLost`, transient). Unique keys
  (the source key, Message-ID per account) stay the last guard.
* **Balancing with slack.** Each heartbeat counts the live nodes (``nodes`` rows whose
  heartbeat has not expired); a node takes free or expired leases up to its share
  ``ceil(accounts / live nodes)`` and, holding more than ``share + slack``, sheds the rest:
  it stops their actors first and releases the leases in its next heartbeat (at once),
  so an account is never served by two nodes. A node joining or leaving moves accounts
  within a heartbeat or two; a SIGKILLed node's accounts are taken when its leases expire,
  at most ``lease_seconds`` after the kill (every node beats again right at the earliest
  expiry of another node's lease, in case it is not renewed).
* **Graceful stop** releases the leases after the actors stopped, so the others take over
  at their next heartbeat instead of after the lease time.

SQLite is single-node (:mod:`daemon.nodes`): there the daemon starts every account without
leases. See ``docs/scaling.md``.
"""

from __future__ import annotations

__all__ = ["Beat", "LeaseKeeper", "LeaseSettings", "heartbeat", "serve_leased_accounts",
           "settings_from"]

import math
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import structlog
import trio

from daemon.errors import TransientError
from daemon.store.base import Tx
from daemon.store.transaction import Fences

log = structlog.get_logger("postroom.leases")


@dataclass(frozen=True, slots=True)
class LeaseSettings:
    """Timing of the leases, seconds. ``margin`` must leave room for one heartbeat's
    round trip and the actor's cancellation; ``slack`` is how many accounts above its
    share a node keeps before shedding (so nodes do not flap)."""

    lease_seconds: float = 30.0
    renew_seconds: float = 10.0
    margin_seconds: float = 5.0
    slack: int = 1
    release_timeout_seconds: float = 5.0
    #: At start, the node announces itself and waits this long before taking leases, so
    #: nodes started together see each other and share from the first heartbeat instead
    #: of the first taking everything and shedding it mid-backlog.
    join_seconds: float = 1.0

    def __post_init__(self) -> None:
        if not 0 < self.renew_seconds < self.lease_seconds - self.margin_seconds:
            raise ValueError("leases need 0 < renew_seconds < lease_seconds - margin_seconds")

    @property
    def trusted_seconds(self) -> float:
        """How long after noting its clock a node trusts a lease that heartbeat renewed."""
        return self.lease_seconds - self.margin_seconds


@dataclass(frozen=True, slots=True)
class Beat:
    """What one heartbeat transaction saw and did.

    ``held``: account -> epoch this node holds now (renewed or newly taken). ``shed``:
    accounts above share plus slack, to stop and release next time. ``owners``: every
    wanted account's live owner (None: nobody). ``retake_at``: the earliest expiry of
    another node's lease (unless renewed by then, its node is gone), or None.
    """

    held: Mapping[str, int]
    shed: tuple[str, ...]
    owners: Mapping[str, str | None]
    live_nodes: int
    retake_at: datetime | None
    now: datetime


def heartbeat(tx: Tx, node: str, accounts: Iterable[str], release: Iterable[str],
              settings: LeaseSettings, now: datetime | None = None) -> Beat:
    """One heartbeat (in the store's thread): mark the node alive, release ``release``,
    renew its leases, take free ones up to its share, name what to shed.

    ``now`` is the database's ``now()`` unless given (tests).
    """
    wanted = sorted(set(accounts))
    released = set(release)
    now = now if now is not None else tx.db_now()
    until = now + timedelta(seconds=settings.lease_seconds)
    tx.beat_node(node, now, until)
    for account in sorted(released):
        tx.release_lease(account, node, now)
    tx.renew_leases(node, now, until)
    leases = {lease.account: lease for lease in tx.leases()}
    live = tx.live_nodes(now)
    share = math.ceil(len(wanted) / max(1, len(live)))
    held = {a: leases[a].epoch for a in wanted
            if a in leases and leases[a].owner == node and leases[a].expires_at > now}
    for account in wanted:
        if len(held) >= share:
            break
        lease = leases.get(account)
        if account in held or account in released:
            continue
        if lease is not None and lease.expires_at > now:
            continue
        epoch = tx.acquire_lease(account, node, now, until)
        if epoch is not None:
            held[account] = epoch
    # A live owner renews long before its leases' expiry; one that reaches it has died, and
    # its node row expires with them, so this node's share grows then: beat at that moment.
    retake_at = min((leases[a].expires_at for a in wanted if a in leases
                     and leases[a].owner != node and leases[a].expires_at > now),
                    default=None)
    shed = tuple(sorted(held)[_keep(len(held), share, len(wanted), live, leases, now,
                                    settings.slack):])
    owners: dict[str, str | None] = {
        a: (node if a in held else
            leases[a].owner if a in leases and leases[a].expires_at > now and a not in released
            else None)
        for a in wanted}
    return Beat(held, shed, owners, len(live), retake_at, now)


def _keep(held: int, share: int, wanted: int, live: list[str], leases: Mapping[str, Any],
          now: datetime, slack: int) -> int:
    """How many of its ``held`` accounts a node keeps.

    Above ``share + slack``: down to the share. And when a live node holds fewer than
    ``floor(accounts / live nodes)`` (it just joined, or came back), every node above
    that floor gives the rest up, so the newcomer is not left idle by the slack.
    """
    floor = wanted // max(1, len(live))
    counts = dict.fromkeys(live, 0)
    for lease in leases.values():
        if lease.expires_at > now and lease.owner in counts:
            counts[lease.owner] += 1
    if counts and min(counts.values()) < floor and held > floor:
        return floor
    return share if held > share + slack else held


@dataclass
class _Work:
    """One account's actor while this node serves it."""

    epoch: int
    scope: trio.CancelScope = field(default_factory=trio.CancelScope)
    done: trio.Event = field(default_factory=trio.Event)


Runner = Callable[..., Awaitable[Any]]


class LeaseKeeper:
    """Heartbeats, and starts and stops account actors as leases come and go.

    Args:
        store: the AsyncStore (its ``run`` hands ``heartbeat`` a transaction).
        node: this node's id.
        runners: account -> ``await nursery.start(runner)``-able actor (``supervise``
            with its arguments bound); only these accounts are leased.
        settings: the lease timing.
        fences: updated with the epochs held; the store checks intake writes against it.
        owners: updated with each account's owner after every heartbeat (``/status``).
        on_lost: called with an account id once its actor was stopped (``/status``).

    ``run`` heartbeats until cancelled, then releases the leases (shielded, bounded).
    """

    def __init__(self, store: Any, node: str, runners: Mapping[str, Runner], *,
                 settings: LeaseSettings = LeaseSettings(), fences: Fences | None = None,
                 owners: dict[str, str | None] | None = None,
                 on_lost: Callable[[str], None] = lambda account: None) -> None:
        self.store = store
        self.node = node
        self.runners = dict(runners)
        self.settings = settings
        self.fences = fences if fences is not None else Fences(node)
        self.owners = owners if owners is not None else {}
        self.on_lost = on_lost
        #: Accounts served now, with their epoch and when this node stops trusting it.
        self.work: dict[str, _Work] = {}
        self.trusted_until: dict[str, float] = {}
        self.beats = 0
        self.kicks_taken = 0  # "sync now" requests consumed (daemon.kicks)
        #: This node's clock when the last successful heartbeat began (None: none yet).
        self.last_renewal: float | None = None
        self.changed = trio.Event()
        self._release: set[str] = set()
        self._wake_deadlines = trio.Event()
        self._nursery: trio.Nursery | None = None

    # -- running -----------------------------------------------------------------------

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED
                  ) -> None:
        """Beat once and start the accounts taken (``started`` once each actor made its
        first attempt, or the first beat failed), then keep beating until cancelled."""
        try:
            async with trio.open_nursery() as nursery:
                self._nursery = nursery
                nursery.start_soon(self._watch_deadlines)
                await self._announce()
                first = await self._beat()
                task_status.started()
                await self._beat_forever(first)
        finally:
            await self._release_all()

    async def _announce(self) -> None:
        """Register as a live node, then give nodes starting alongside a moment to do
        the same (a failure here only skips the wait: the heartbeats deal with it)."""
        try:
            await self.store.run(_announce, self.node, self.settings)
        except TransientError as exc:
            log.warning("lease.announce_failed", error=str(exc))
            return
        await trio.sleep(self.settings.join_seconds)

    async def _beat_forever(self, last: Beat | None) -> None:
        while True:
            await trio.sleep(self._pause(last))
            last = await self._beat()

    def _pause(self, last: Beat | None) -> float:
        """Until the next heartbeat: the renew interval; half of it after a failure;
        at once if accounts wait to be released; sooner if a lease to take expires."""
        if self._release:
            return 0.0
        if last is None:
            return self.settings.renew_seconds / 2
        pause = self.settings.renew_seconds
        if last.retake_at is not None:
            due = (last.retake_at - last.now).total_seconds() + 0.05
            pause = min(pause, max(0.05, due))
        return pause

    async def _beat(self) -> Beat | None:
        """One heartbeat; starts gained accounts and stops lost or surplus ones."""
        noted = trio.current_time()
        release = set(self._release)
        try:
            beat: Beat = await self.store.run(heartbeat, self.node, list(self.runners),
                                              release, self.settings)
        except TransientError as exc:
            log.warning("lease.heartbeat_failed", error=str(exc), held=len(self.work))
            return None
        self._release -= release
        trusted = noted + self.settings.trusted_seconds
        if trio.current_time() >= trusted:  # the answer came too late to rely on
            log.warning("lease.heartbeat_too_slow", seconds=trio.current_time() - noted)
            return None
        self.beats += 1
        self.last_renewal = noted
        gained: list[tuple[str, int]] = []
        for account, epoch in beat.held.items():
            work = self.work.get(account)
            if work is not None and work.epoch != epoch:
                await self._stop(account, "epoch changed")
                work = None
            self.trusted_until[account] = trusted
            self.fences.epochs[account] = epoch
            if work is None and account not in beat.shed:
                gained.append((account, epoch))
        for account in list(self.work):
            if account not in beat.held:
                await self._stop(account, "taken by another node")
        for account in beat.shed:
            await self._stop(account, "rebalancing")
            self._release.add(account)
        self.owners.update(beat.owners)
        for account in self._release:
            self.owners[account] = None
        self._wake_deadlines.set()
        await self._start(gained)
        self._notify()
        return beat

    async def _start(self, gained: list[tuple[str, int]]) -> None:
        """Start the actors of ``gained`` concurrently; return once each made its first
        attempt (a thousand logins one after another would take half a minute)."""
        assert self._nursery is not None
        async with trio.open_nursery() as starting:
            for account, epoch in gained:
                work = self.work[account] = _Work(epoch)
                log.info("lease.gained", account=account, epoch=epoch)
                starting.start_soon(self._nursery.start, self._serve, account, work)

    async def _serve(self, account: str, work: _Work, *,
                     task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        started = False
        try:
            with work.scope:
                async with trio.open_nursery() as nursery:
                    await nursery.start(self.runners[account])
                    task_status.started()
                    started = True
        finally:
            work.done.set()
        if not started:  # its lease went before the first attempt: nothing to wait for
            task_status.started()

    async def _stop(self, account: str, reason: str) -> None:
        """Stop serving ``account``: no more intake writes, then its actor, awaited."""
        work = self._cancel(account, reason)
        if work is not None:
            await self._stopped(account, work)

    def _cancel(self, account: str, reason: str) -> _Work | None:
        """At once: refuse the account's intake writes here and cancel its actor.

        A transaction already in the store's thread finishes there (it cannot be
        abandoned), and the database's fence decides whether it may commit.
        """
        self.fences.epochs.pop(account, None)
        self.trusted_until.pop(account, None)
        work = self.work.pop(account, None)
        if work is None:
            return None
        work.scope.cancel()
        self.owners[account] = None
        log.info("lease.lost", account=account, epoch=work.epoch, reason=reason)
        return work

    async def _stopped(self, account: str, work: _Work) -> None:
        await work.done.wait()
        self.on_lost(account)

    async def _watch_deadlines(self) -> None:
        """Stop each account when this node's own clock passes its trusted time, whether
        or not a heartbeat is in flight (the database may not be answering at all)."""
        while True:
            self._wake_deadlines = trio.Event()
            if self.trusted_until:
                deadline = min(self.trusted_until.values())
                now = trio.current_time()
                if now >= deadline:
                    expired = [a for a, t in self.trusted_until.items() if t <= now]
                    cancelled = [(a, self._cancel(a, "lease not renewed in time"))
                                 for a in expired]
                    for account, work in cancelled:
                        if work is not None:
                            await self._stopped(account, work)
                    self._notify()
                    continue
                with trio.move_on_at(deadline):
                    await self._wake_deadlines.wait()
            else:
                await self._wake_deadlines.wait()

    async def _release_all(self) -> None:
        """After the actors stopped: give the leases up so others take over at once."""
        accounts = set(self.fences.epochs) | self._release
        self.fences.epochs.clear()
        if not accounts:
            return
        with trio.move_on_after(self.settings.release_timeout_seconds, shield=True):
            try:
                await self.store.run(_release, self.node, sorted(accounts))
                log.info("lease.released", accounts=len(accounts))
            except TransientError as exc:
                log.warning("lease.release_failed", error=str(exc), accounts=len(accounts))

    def _notify(self) -> None:
        self.changed.set()
        self.changed = trio.Event()


#: Rows of nodes gone this long are deleted by the others' heartbeats.
FORGET_NODES_AFTER = timedelta(days=1)


def _announce(tx: Tx, node: str, settings: LeaseSettings) -> None:
    now = tx.db_now()
    tx.beat_node(node, now, now + timedelta(seconds=settings.lease_seconds))
    tx.forget_nodes(now - FORGET_NODES_AFTER)


def _release(tx: Tx, node: str, accounts: list[str]) -> None:
    now = tx.db_now()
    for account in accounts:
        tx.release_lease(account, node, now)
    tx.beat_node(node, now, now)  # no longer live


def settings_from(config: Any) -> LeaseSettings:
    """The lease timing of ``[daemon]``; the margin is a quarter of lease minus renewal."""
    lease, renew = config.daemon.lease_seconds, config.daemon.lease_renew_seconds
    return LeaseSettings(lease_seconds=lease, renew_seconds=renew,
                         margin_seconds=(lease - renew) / 4)


async def serve_leased_accounts(daemon: Any, runners: Mapping[str, Runner], *,
                                task_status: trio.TaskStatus[LeaseKeeper]
                                = trio.TASK_STATUS_IGNORED) -> None:
    """Serve the accounts of ``runners`` this node holds leases for (PostgreSQL).

    Fences the store's intake writes with the epochs held and keeps ``daemon.owners``
    current; ``started(keeper)`` after the first heartbeat's accounts started.
    """
    from daemon.actors.status import AccountState

    def lost(account: str) -> None:
        daemon.handles[account].status.set_state(AccountState.INIT)

    keeper = LeaseKeeper(daemon.store, daemon.node_id, runners,
                         settings=settings_from(daemon.config), owners=daemon.owners,
                         on_lost=lost)
    daemon.store.store.fences = keeper.fences
    daemon.leases = keeper
    async with trio.open_nursery() as nursery:
        await nursery.start(keeper.run)
        if hasattr(daemon.store.store, "conninfo"):
            from daemon.kicks import listen_for_kicks

            await nursery.start(listen_for_kicks, daemon, keeper)
        task_status.started(keeper)
