"""The outbox actor: delivers what the store's outbox holds, retries, and records results.

State owned: an :class:`OutboxStatus` (state, counters, last error), the
:class:`RetryPolicy`, a random source for jitter, and a coalescing wake-up channel. The
queue itself lives in the store (``outbox`` table); the actor holds nothing that a
restart would lose.

Receives: wake-ups through :meth:`OutboxActor.wakeup` (a memory channel of size 1, so
any number of wake-ups before the actor looks collapse into one round): the API calls it
after queueing a reply, the processor after a commit that queued mail. Without a wake-up
it looks at ``tx.due(now)`` every ``poll_interval`` seconds (default 2), or exactly when
a retry it scheduled falls due, whichever comes first.

Sends: each due item, oldest first, through its account's transport
(:func:`daemon.outbox.transport.transport_for`: SMTP, the demo's Maildir, or
"unavailable" for OAuth accounts). Items of different accounts go out concurrently, one
SMTP session per account and round. Results go to the store, each as one transaction of
:mod:`daemon.outbox.delivery` (error records through :mod:`daemon.crm.errors`):

* accepted: ``mark_sent`` and the event ``outbox.sent``, at once after the server's
  ``250`` (a delayed-delivery error, if any, is resolved); then a copy to the IMAP
  ``sent_folder`` (best effort);
* transient failure (4xx, connection failures, refused login): ``mark_retry`` with
  exponential backoff and jitter; the first one also records a ``delivery_delayed``
  ``conversationmessageerror`` on the message follower, so the agent can see it; after
  ``max_attempts`` or ``give_up_after`` the item fails;
* permanent failure (5xx; nothing can send it): ``mark_failed`` and a ``delivery``
  ``conversationmessageerror`` (the SMTP code and text, the date) on the message
  follower. A recipient refused with 5xx also marks the follower ``failing``.

Held items (automatic mail over its account's ``automatic_mail_per_hour``,
:mod:`daemon.outbox.budget`) are never due; each round counts them into
``status.held`` (shown in ``/status``) until the outbox API releases them.

States (:class:`OutboxState`): ``idle`` (waiting for a wake-up or the next poll),
``sending`` (a round is running).

Errors: an exception while delivering one item (even a bug) counts as a transient failure
of that item: one bad item never blocks the queue. A store error (or a bug in the
bookkeeping) ends that account's share of the round; it is logged (``outbox.batch_failed``,
``outbox.round_failed``), shown in the status, and the items come back at the next poll.
Nothing here crashes the daemon.

Several nodes (one PostgreSQL store): each round *claims* its items (``claim_due``:
``FOR UPDATE SKIP LOCKED`` and a visibility timeout, ``locked_until``, of
``claim_seconds``), so no two nodes take one item, and a dead node's claims lapse. Each
item is marked ``sending`` just before its send; one found ``sending`` was cut short by a
crash in the window below: if the account's Sent folder holds its Message-ID
(:func:`~daemon.outbox.sentcopy.found_in_sent`; servers that file what they send), it is
marked sent without sending; otherwise an idempotent transport (the Maildir) simply sends
again, and any other records ``outbox.resend_risk`` (event and log) and sends again.

At least once, and the window: an item is sent, then marked sent. A crash (or a store
failure) after the server accepted the message and before ``mark_sent`` committed sends
it again after the restart, with the same bytes and Message-ID; nothing can close that
window with SMTP. It is kept to one store transaction: the send and its ``mark_sent`` run
shielded from cancellation (bounded by the SMTP timeouts), and ``mark_sent`` is retried
a few times before giving up. The Maildir transport is exactly-once (file names carry the
outbox id).

Cancellation: between items at any checkpoint; the item in flight finishes its SMTP
transaction and its bookkeeping first, then the actor exits.
"""

from __future__ import annotations

__all__ = ["OutboxActor", "OutboxState", "OutboxStatus", "RetryPolicy"]

import contextlib
import enum
import random
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import structlog
import trio

from daemon.config import HOURS, SECONDS, Account, Config
from daemon.errors import AuthError, ConnectError, PermanentError, TransientError
from daemon.metrics import SEND_SECONDS
from daemon.outbox import delivery
from daemon.outbox.sentcopy import append_sent, found_in_sent, wants_sent_copy
from daemon.outbox.smtp import SmtpRejected
from daemon.outbox.transport import Sender, Transport, transport_for
from daemon.store.asyncstore import AsyncStore
from daemon.store.base import OutboxItem

log = structlog.get_logger("postroom.outbox")

class OutboxState(enum.Enum):
    IDLE = "idle"        # waiting for a wake-up or the next poll
    SENDING = "sending"  # a round of due items is being delivered


@dataclass
class OutboxStatus:
    """Mutable, owned by the actor; ``as_json`` is what /status may show."""

    state: OutboxState = OutboxState.IDLE
    sent: int = 0
    retried: int = 0
    failed: int = 0
    held: int = 0  # automatic mail over its account's budget, in the store (last round)
    last_error: str | None = None
    changed: trio.Event = field(default_factory=trio.Event, repr=False)

    def notify(self) -> None:
        self.changed.set()
        self.changed = trio.Event()

    def as_json(self) -> dict[str, Any]:
        return {"state": self.state.value, "sent": self.sent, "retried": self.retried,
                "failed": self.failed, "held": self.held, "last_error": self.last_error}


@dataclass(frozen=True)
class RetryPolicy:
    """Backoff for transient failures: exponential, capped, with "equal jitter".

    The delay before attempt ``n + 1`` is uniformly random in ``[d/2, d]`` where
    ``d = min(cap, base * 2 ** (n - 1))``: spread out (a restarted server is not hit by
    every item at once) but never much shorter than planned.

    Attributes:
        base: the first delay, seconds.
        cap: the longest delay, seconds.
        max_attempts: give up after this many attempts...
        give_up_after: ...or once the item is this old (seconds), whichever comes first.
    """

    base: float = 30 * SECONDS
    cap: float = 1 * HOURS
    max_attempts: int = 60
    give_up_after: float = 48 * HOURS

    def delay(self, attempts: int, rng: random.Random) -> float:
        """Seconds to wait after the ``attempts``-th failed attempt (1-based)."""
        ceiling: float = min(self.cap, self.base * 2 ** max(0, attempts - 1))
        return ceiling / 2 + rng.random() * ceiling / 2

    def gives_up(self, attempts: int, age: timedelta) -> bool:
        return attempts >= self.max_attempts or age.total_seconds() >= self.give_up_after


def _utcnow() -> datetime:
    return datetime.now(UTC)


def _node_of(config: Config) -> str:
    from daemon.nodes import default_node_id, node_id

    return node_id(config) if hasattr(config, "daemon") else default_node_id()


#: What ``_deliver_one`` returns when the claim went to another node: nothing was sent.
_CLAIM_LOST = TransientError("the outbox claim went to another node")
#: ... and when the item was found in the Sent folder: marked sent, not sent (nor copied).
_FOUND_IN_SENT = TransientError("already in the Sent folder")


SentCopy = Callable[[Config, Account, Sequence[bytes]], Awaitable[None]]
#: ``await lookup(config, account, message_id)``: in the Sent folder? None: cannot tell.
SentLookup = Callable[[Config, Account, str], Awaitable[bool | None]]


class OutboxActor:
    """See the module docstring. Construct, ``await nursery.start(actor.run)``, wake it.

    Args:
        config: the daemon's :class:`~daemon.config.Config`.
        store: the AsyncStore holding the outbox.
        policy: the retry policy.
        poll_interval: seconds between looks at the queue without a wake-up.
        batch_size: items per round.
        now: the clock for due times and backoff (tests derive it from Trio's clock).
        rng: the random source for jitter.
        transports: ``(config, account) -> Transport`` (tests substitute fakes).
        sent_copy: ``await sent_copy(config, account, raws)``; None disables the copies.
    """

    def __init__(self, config: Config, store: AsyncStore, *, policy: RetryPolicy = RetryPolicy(),
                 poll_interval: float = 2 * SECONDS, batch_size: int = 50,
                 now: Callable[[], datetime] = _utcnow, rng: random.Random | None = None,
                 transports: Callable[[Config, Account], Transport] = transport_for,
                 sent_copy: SentCopy | None = append_sent, node: str | None = None,
                 claim_seconds: float = 5 * 60 * SECONDS,
                 sent_lookup: SentLookup | None = found_in_sent) -> None:
        if poll_interval <= 0 or batch_size < 1:
            raise ValueError("poll_interval must be positive and batch_size at least 1")
        self.config = config
        self.store = store
        self.policy = policy
        self.poll_interval = poll_interval
        self.batch_size = batch_size
        #: Claims are taken in this node's name, for ``claim_seconds`` (daemon.nodes).
        self.node = node or _node_of(config)
        self.claim_seconds = claim_seconds
        self._sent_lookup = sent_lookup
        self.status = OutboxStatus()
        self._now = now
        self._rng = rng or random.Random()
        self._transports = transports
        self._sent_copy = sent_copy
        self._wake_send, self._wake_receive = trio.open_memory_channel[None](1)
        self._retry_at: list[datetime] = []  # retries this actor scheduled, still ahead
        self._sent_found: dict[int | None, bool] = {}  # Sent-folder lookups after crashes

    def wakeup(self) -> None:
        """Ask for a round now. Never blocks; call from the Trio thread."""
        with contextlib.suppress(trio.WouldBlock):
            self._wake_send.send_nowait(None)

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED
                  ) -> None:
        """Deliver due items until cancelled (see the module docstring)."""
        task_status.started()
        while True:
            handled = await self._round()
            if handled >= self.batch_size:
                await trio.lowlevel.checkpoint()
                continue
            with trio.move_on_after(self._wait()):
                await self._wake_receive.receive()

    def _wait(self) -> float:
        """Seconds until the next poll, or sooner when a retry we scheduled falls due."""
        now = self._now()
        self._retry_at = [t for t in self._retry_at if t > now]
        if not self._retry_at:
            return self.poll_interval
        return min(self.poll_interval, (min(self._retry_at) - now).total_seconds())

    async def _round(self) -> int:
        self._set_state(OutboxState.SENDING)
        try:
            return await self.deliver_due()
        except TransientError as exc:
            log.warning("outbox.round_failed", error=str(exc))
            self.status.last_error = str(exc)
            return 0
        finally:
            self._set_state(OutboxState.IDLE)

    async def deliver_due(self) -> int:
        """One round: deliver every item due now (up to ``batch_size``).

        A checkpoint. Returns how many items were handled (sent, retried or failed).

        Raises:
            TransientError: the store could not be read (nothing was sent).
        """
        now = self._now()
        until = now + timedelta(seconds=self.claim_seconds)
        items, self.status.held = await self.store.run(
            lambda tx: (tx.claim_due(now, self.node, until, self.batch_size),
                        tx.count_outbox("held")))
        by_account: dict[str, list[OutboxItem]] = {}
        for item in items:
            by_account.setdefault(item.account, []).append(item)
        async with trio.open_nursery() as nursery:
            for account_id, batch in by_account.items():
                nursery.start_soon(self._deliver_account, account_id, batch)
        return len(items)

    # -- one account -------------------------------------------------------------------

    async def _deliver_account(self, account_id: str, items: list[OutboxItem]) -> None:
        """One account's share of a round. Never raises: a store failure (or a bug) ends
        the batch; its items stay queued and come back in the next round."""
        try:
            await self._deliver_batch(account_id, items)
        except Exception as exc:
            error = f"{type(exc).__name__}: {exc}"
            log.error("outbox.batch_failed", account=account_id, error=error)
            self.status.last_error = error
            self.status.notify()

    async def _deliver_batch(self, account_id: str, items: list[OutboxItem]) -> None:
        try:
            account = self.config.account(account_id)
        except KeyError:
            for item in items:
                await self._fail(item, f"account {account_id!r} is no longer configured")
            return
        if not account.enabled:  # queued before it was disabled: it sends nothing
            disabled = TransientError(f"account {account_id!r} is disabled (enabled = false)")
            for item in items:
                await self._retry(item, disabled)
            return
        sent: list[bytes] = []
        async with self._transports(self.config, account).session() as sender:
            for index, item in enumerate(items):
                outcome = await self._deliver_one(sender, item)
                if outcome is None:
                    sent.append(item.raw)
                elif isinstance(outcome, ConnectError):
                    for later in items[index + 1:]:
                        await self._retry(later, outcome)
                    break
        if sent and self._sent_copy is not None and wants_sent_copy(self.config, account):
            await self._copy(account, sent)

    async def _deliver_one(self, sender: Sender, item: OutboxItem) -> Exception | None:
        """Send one item and record the result; returns None when sent, else the error.

        Shielded: a send that started finishes, and its result is recorded.
        """
        with trio.CancelScope(shield=True):
            if not await self._mark_sending(sender, item):
                return _CLAIM_LOST
            if item.status == "sending" and await self._found_in_sent(item):
                await self._mark_sent(item, "found in the Sent folder after a crash")
                return _FOUND_IN_SENT
            try:
                reply = await _timed_send(sender, item)
            except PermanentError as exc:
                await self._fail(item, str(exc), exc)
                return exc
            except (TransientError, AuthError) as exc:
                await self._retry(item, exc)
                return exc
            except Exception as exc:  # a bug must not block the queue: retry it later
                log.error("outbox.send_crashed", outbox=item.id, account=item.account,
                          error=f"{type(exc).__name__}: {exc}")
                await self._retry(item, exc)
                return exc
            await self._mark_sent(item, reply)
        return None

    async def _mark_sending(self, sender: Sender, item: OutboxItem) -> bool:
        """Mark the item ``sending`` before the send (False: another node claimed it).

        An item found ``sending`` was being sent when its node died: it may have gone out
        already. A transport that is idempotent per outbox id (the Maildir) reconciles by
        itself; otherwise the risk of a second copy is recorded (``outbox.resend_risk``,
        same bytes and Message-ID) and the item sent again: at least once.
        """
        if (item.status == "sending" and not getattr(sender, "idempotent", False)
                and not await self._found_in_sent(item)):
            log.warning("outbox.resend_risk", account=item.account, outbox=item.id,
                        message_id=item.message_id)
            data = {"outbox": item.id, "message_id": item.message_id,
                    "recipient": item.recipient}
            await self.store.run(lambda tx: tx.add_event("outbox.resend_risk", item.account,
                                                         data))
        node, item_id = self.node, item.id
        assert item_id is not None  # items come from the store
        return bool(await self.store.run(lambda tx: tx.mark_sending(item_id, node)))

    async def _found_in_sent(self, item: OutboxItem) -> bool:
        """Whether an item cut short by a crash is in its account's Sent folder (by
        Message-ID), so it went out already. Looked up once per item and round."""
        cache = self._sent_found
        if item.id not in cache:
            found = None
            if self._sent_lookup is not None:
                try:
                    account = self.config.account(item.account)
                    found = await self._sent_lookup(self.config, account, item.message_id)
                except KeyError:
                    found = None
            cache[item.id] = bool(found)
            if found:
                log.info("outbox.reconciled", account=item.account, outbox=item.id,
                         message_id=item.message_id)
        return cache[item.id]

    # -- results -----------------------------------------------------------------------

    async def _mark_sent(self, item: OutboxItem, reply: str) -> None:
        """``mark_sent`` right after the server's acceptance; retried so that a busy store
        does not turn into a second send."""
        when = self._now()
        for attempt in range(4):
            try:
                await self.store.run(delivery.record_sent, self.config.runtime, item, reply, when)
                break
            except TransientError as exc:
                if attempt == 3:
                    log.error("outbox.mark_sent_failed", outbox=item.id, error=str(exc))
                    raise
                await trio.sleep(2 ** attempt)
        self.status.sent += 1
        self.status.notify()
        log.info("outbox.sent", account=item.account, outbox=item.id,
                 message_id=item.message_id, kind=item.kind, reply=reply)

    async def _retry(self, item: OutboxItem, exc: BaseException) -> None:
        error = str(exc) or type(exc).__name__
        attempts = item.attempts + 1
        now = self._now()
        age = now - (item.created_at or now)
        if self.policy.gives_up(attempts, age):
            await self._fail(item, f"gave up after {attempts} attempts: {error}")
            return
        next_at = now + timedelta(seconds=self.policy.delay(attempts, self._rng))
        await self.store.run(delivery.record_retry, self.config.runtime, item, error, next_at, now)
        self._retry_at.append(next_at)
        self.status.retried += 1
        self.status.last_error = error
        self.status.notify()
        log.warning("outbox.retry", account=item.account, outbox=item.id,
                    message_id=item.message_id, attempts=attempts, error=error,
                    next_attempt_at=next_at.isoformat())

    async def _fail(self, item: OutboxItem, error: str,
                    exc: BaseException | None = None) -> None:
        recipient_refused = isinstance(exc, SmtpRejected) and exc.recipient is not None
        await self.store.run(delivery.record_failure, self.config.runtime, item, error,
                             self._now(), recipient_refused)
        self.status.failed += 1
        self.status.last_error = error
        self.status.notify()
        log.error("outbox.failed", account=item.account, outbox=item.id,
                  message_id=item.message_id, error=error)

    async def _copy(self, account: Account, raws: list[bytes]) -> None:
        assert self._sent_copy is not None
        try:
            await self._sent_copy(self.config, account, raws)
        except Exception as exc:
            error = f"{type(exc).__name__}: {exc}"
            log.warning("outbox.sent_copy_failed", account=account.id, count=len(raws),
                        error=error)
            await self.store.run(delivery.record_sent_copy_failed, account.id, len(raws),
                                 error)

    def _set_state(self, state: OutboxState) -> None:
        self.status.state = state
        self.status.notify()


async def _timed_send(sender: Sender, item: OutboxItem) -> str:
    """``sender.send(item)``, observed in ``postroom_send_duration_seconds`` however it ends."""
    began = time.perf_counter()
    try:
        return await sender.send(item)
    finally:
        SEND_SECONDS.labels(account=item.account).observe(time.perf_counter() - began)
