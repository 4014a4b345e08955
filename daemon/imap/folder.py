"""Syncing one IMAP folder into the store without losing or doubling a message.

Protocol notes (RFC 3501 §2.3.1.1, RFC 7162, and the Nylas sync engine's lessons):

* A message is named by ``(account, folder, UIDVALIDITY, UID)``; UIDs only grow within one
  UIDVALIDITY. Per folder we persist, as checkpoints (``imap:<folder>:<name>``):

  ``uidvalidity``    the UIDVALIDITY our UIDs belong to;
  ``last_uid``       every UID up to this one is settled (committed, or deliberately
                     skipped); committed *in the same transaction* as each message;
  ``initial_until``  UIDNEXT when the account was first enabled (or after a resync):
                     below it only unread messages (and, with ``import_since``, only those
                     that arrived since that date) are imported; above it, every message;
  ``flagged_uid``    flags are settled up to this UID: every committed message up to it
                     got ``\\Seen`` or was moved. Above it (up to ``last_uid``) a crash
                     may have struck between a commit and its flag change; each round
                     starts by finishing those (unread ones, by the outcome stored for
                     them), since they are never fetched again;
  ``highestmodseq``  HIGHESTMODSEQ at the SELECT of the last complete round, when the
                     server offers CONDSTORE (a cheap "anything changed?" for later work);
  ``resyncs``        consecutive rounds that found UIDVALIDITY changed.

* New mail: UIDNEXT from SELECT bounds the UIDs to look at; later in the round NOOP, then
  ``UID SEARCH UID *``, gives the highest UID (``n:*`` always matches the last message,
  even when ``n`` is above it, so ranges are always closed: ``lo:hi``). UIDs
  above ``last_uid`` are searched in windows of :data:`SEARCH_WINDOW` UIDs, their sizes
  fetched in batches of :data:`META_BATCH`, and their bodies (``BODY.PEEK[]``, so
  nothing is marked read early) in groups of at most :data:`DOWNLOAD_BUDGET` bytes, so
  neither a big backlog nor a big folder is ever held in memory. Strictly ascending: the
  checkpoint never passes a message that is not committed.
* Only after the processor's outcome is committed do flags change: imported, duplicate
  and discarded messages get ``\\Seen``; failed ones, and ones above
  ``max_message_bytes`` (judged from RFC822.SIZE, never downloaded), move to the failure
  folder (created when missing; MOVE, RFC 6851, or COPY + \\Deleted + UID EXPUNGE).
  ``flagged_uid`` (below) makes a crash between commit and flag change harmless: the next
  session finishes the flags.
* UIDVALIDITY is checked by a fresh SELECT at the start of every round. Changed: SELECT
  again to rule out a glitch, then start over like a first enable (``last_uid`` 0,
  ``initial_until`` = UIDNEXT). The processor deduplicates by
  source key and Message-ID (or SHA-256 of the bytes), so messages seen before come back
  as DUPLICATE and are merely marked read. After :data:`MAX_CONSECUTIVE_RESYNCS` changes in
  a row without a stable round in between, :class:`ResyncLimitReached` is raised and the
  actor parks the account.

Progress goes to the caller, never to actor state: :meth:`FolderSync.sync` returns how many
messages it handled, and the ``on_progress`` callback receives a :class:`SyncProgress`
after each SELECT, each committed message and each settled window (the actor turns it into
its status). This package never imports :mod:`daemon.actors`.
"""

from __future__ import annotations

__all__ = [
    "DOWNLOAD_BUDGET",
    "MAX_CONSECUTIVE_RESYNCS",
    "META_BATCH",
    "SEARCH_WINDOW",
    "FolderState",
    "FolderSync",
    "ResyncLimitReached",
    "SyncProgress",
    "checkpoint_key",
]

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, replace
from datetime import date, datetime
from typing import Any, Protocol

import structlog

from daemon.errors import PostroomError, ProtocolError
from daemon.imap.connection import ImapSession, SelectInfo, take_untagged
from daemon.messages import (
    Checkpoint,
    Outcome,
    OutcomeStatus,
    RawMessage,
    Submit,
    SubmitMany,
    source_key,
)
from daemon.store import AsyncStore, Tx

log = structlog.get_logger("postroom.imap")

#: UIDs searched per ``UID SEARCH UID lo:hi`` (bounds the reply for huge, sparse folders).
SEARCH_WINDOW = 5_000
#: Messages whose sizes are fetched in one ``UID FETCH (RFC822.SIZE INTERNALDATE)``.
META_BATCH = 200
#: Bytes of message bodies fetched in one ``UID FETCH (BODY.PEEK[])``.
DOWNLOAD_BUDGET = 8 * 1024 * 1024
#: UIDVALIDITY changes in a row before the account is parked.
MAX_CONSECUTIVE_RESYNCS = 5

SEEN = b"\\Seen"
DELETED = b"\\Deleted"
_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")


class ResyncLimitReached(PostroomError):
    """UIDVALIDITY keeps changing; the actor parks the account instead of re-importing."""


class AccountSettings(Protocol):
    """What :class:`FolderSync` reads from ``daemon.config.Account``."""

    id: str
    folder: str
    failure_folder: str
    max_message_bytes: int
    import_since: date | None


def checkpoint_key(folder: str, name: str) -> str:
    """``imap:<folder>:<name>``, e.g. ``imap:INBOX:last_uid``."""
    return f"imap:{folder}:{name}"


@dataclass(frozen=True, slots=True)
class FolderState:
    """The persisted sync position of one folder (see the module docstring)."""

    uidvalidity: int | None = None
    last_uid: int = 0
    initial_until: int = 1
    highestmodseq: int | None = None
    resyncs: int = 0
    flagged_uid: int = 0


@dataclass(frozen=True, slots=True)
class SyncProgress:
    """Where a folder's sync stands, for the ``on_progress`` callback of :class:`FolderSync`.

    Attributes:
        folder: the folder being synced.
        uidvalidity: its UIDVALIDITY (None before the first SELECT).
        last_uid: every UID up to this one is settled.
        outcome: the outcome of the message just committed (None for a SELECT or a
            settled window).
    """

    folder: str
    uidvalidity: int | None
    last_uid: int
    outcome: Outcome | None = None


def _ignore_progress(progress: SyncProgress) -> None:
    """The default ``on_progress``: nobody is watching."""


_FIELDS = ("uidvalidity", "last_uid", "initial_until", "highestmodseq", "resyncs",
           "flagged_uid")


@dataclass(frozen=True, slots=True)
class _Download:
    uids: tuple[int, ...]


@dataclass(frozen=True, slots=True)
class _TooLarge:
    uid: int
    size: int
    received_at: datetime | None


class FolderSync:
    """Brings one selected folder's new messages into the store, then sets their flags.

    Owned by the IMAP actor for the life of one session; not shareable.
    ``on_progress`` is called (in the caller's Trio task, synchronously) with a
    :class:`SyncProgress` after each SELECT, committed message and settled window.
    """

    def __init__(self, session: ImapSession, account: AccountSettings, *,
                 store: AsyncStore, submit: Submit, submit_many: SubmitMany | None = None,
                 on_progress: Callable[[SyncProgress], None] = _ignore_progress) -> None:
        self.session = session
        self.account = account
        self.folder = account.folder
        self.store = store
        self.submit = submit
        self.submit_many = submit_many
        self.on_progress = on_progress
        self.state = FolderState()
        self._pending_modseq: int | None = None
        self._failure_folder_ready = False
        self._loaded = False

    # -- SELECT and UIDVALIDITY, at the start of every round ----------------------------

    async def _select(self) -> SelectInfo:
        """SELECT the folder and reconcile UIDVALIDITY with the stored state.

        Done every round, not only after connecting: a folder deleted and recreated under
        a live session may never be announced to it (Dovecot keeps the old view), and a
        fresh SELECT is the only reliable way to see the new UIDVALIDITY.

        Raises:
            ResyncLimitReached: UIDVALIDITY changed again after too many resyncs.
            ProtocolError: the folder is missing, or two SELECTs disagree.
            ConnectError: the connection failed.
        """
        info = await self.session.select(self.folder)
        if not self._loaded:  # afterwards this actor, the only writer, knows the state
            self.state = await self._load()
            self._loaded = True
        stored = self.state
        if stored.uidvalidity is None:
            self.state = await self._begin(info, resyncs=0)
            log.info("imap.folder.first_sync", uidvalidity=info.uidvalidity,
                     initial_until=self.state.initial_until)
        elif stored.uidvalidity != info.uidvalidity:
            info = await self._confirm_change(info)
            if stored.resyncs >= MAX_CONSECUTIVE_RESYNCS:
                raise ResyncLimitReached(
                    f"UIDVALIDITY of {self.folder} changed {stored.resyncs + 1} times in a "
                    "row; the account is parked until someone asks for a sync",
                    account=self.account.id)
            self.state = await self._begin(info, resyncs=stored.resyncs + 1)
            log.warning("imap.uidvalidity.changed", old=stored.uidvalidity,
                        new=info.uidvalidity, resyncs=stored.resyncs + 1)
        elif stored.resyncs:
            self.state = replace(stored, resyncs=0)
            await self._save(resyncs=0)
        self._pending_modseq = info.highestmodseq
        self._report()
        return info

    def _report(self, outcome: Outcome | None = None) -> None:
        self.on_progress(SyncProgress(self.folder, self.state.uidvalidity,
                                      self.state.last_uid, outcome))

    async def _confirm_change(self, first: SelectInfo) -> SelectInfo:
        """SELECT once more: a real change repeats, a glitch does not."""
        again = await self.session.select(self.folder)
        if again.uidvalidity != first.uidvalidity:
            raise ProtocolError(
                f"{self.session.where}: UIDVALIDITY of {self.folder} unstable "
                f"({first.uidvalidity} then {again.uidvalidity})", account=self.account.id)
        return again

    async def _begin(self, info: SelectInfo, *, resyncs: int) -> FolderState:
        """Start over at this UIDVALIDITY, importing what is unread below UIDNEXT."""
        uidnext = info.uidnext if info.uidnext is not None else await self._highest_uid() + 1
        state = FolderState(uidvalidity=info.uidvalidity, last_uid=0,
                            initial_until=uidnext, highestmodseq=None, resyncs=resyncs)
        await self._save(uidvalidity=state.uidvalidity, last_uid=0,
                         initial_until=uidnext, highestmodseq=None, resyncs=resyncs,
                         flagged_uid=0)
        return state

    async def reset_resyncs(self) -> None:
        """Forget the consecutive-resync count (a human asked to try again)."""
        await self._save(resyncs=0)

    # -- syncing ------------------------------------------------------------------------

    async def sync(self) -> int:
        """One round: SELECT, then import every message above ``last_uid`` until none is
        left. A checkpoint.

        Returns:
            How many messages were handed to the processor.

        Raises:
            ResyncLimitReached: UIDVALIDITY keeps changing; park the account.
            ConnectError, ProtocolError: IMAP failed (nothing uncommitted was flagged).
            TransientError from ``submit`` (e.g. StoreBusyError): the message stays
            unsettled and is fetched again next time.
        """
        info = await self._select()
        await self._finish_flags()
        handled = 0
        # UIDNEXT - 1 bounds what SELECT saw; afterwards NOOP + SEARCH catches what arrived
        # during the round (its EXISTS went to our FETCHes, so IDLE would not repeat it).
        top = info.uidnext - 1 if info.uidnext is not None else await self._highest_uid()
        while top > self.state.last_uid:
            for lo in range(self.state.last_uid + 1, top + 1, SEARCH_WINDOW):
                hi = min(top, lo + SEARCH_WINDOW - 1)
                uids = await self._search(lo, hi)
                for batch in _chunks(uids, META_BATCH):
                    handled += await self._handle_batch(batch)
                await self._settle_through(hi)
            top = await self._highest_uid()
        modseq, self._pending_modseq = self._pending_modseq, None
        if modseq is not None and modseq != self.state.highestmodseq:
            await self._save(highestmodseq=modseq)
            self.state = replace(self.state, highestmodseq=modseq)
        return handled

    async def _highest_uid(self) -> int:
        """The highest UID in the folder now, 0 when empty.

        NOOP first: a server may keep showing the session its old view of the folder
        until a command that lets it announce changes (Dovecot does), and SEARCH is not one.
        A message that arrives while the SEARCH runs is announced (``* n EXISTS``) at the
        end of the SEARCH's own response, after the search saw the old view, and never
        again: IDLE would then wait for news that already came. So an EXISTS that came
        with the SEARCH means "search again".
        """
        assert self.session.client is not None
        await self.session.call(self.session.client.noop)
        while True:
            uids, announced = await self.session.call(self._search_highest)
            if not announced:
                return max(uids, default=0)

    def _search_highest(self) -> tuple[list[int], bool]:
        """``UID SEARCH UID *``, and whether an EXISTS arrived with its response."""
        client = self.session.client
        assert client is not None
        take_untagged(client, "EXISTS")  # forget announcements from before the SEARCH
        uids = list(client.search(["UID", "*"]))
        return uids, bool(take_untagged(client, "EXISTS"))

    async def _search(self, lo: int, hi: int) -> list[int]:
        """UIDs in ``lo..hi`` to import, ascending; below ``initial_until`` unread only."""
        split = self.state.initial_until
        found: list[int] = []
        if lo < split:
            found += await self._search_range(lo, min(hi, split - 1), self._initial_criteria())
        if hi >= split:
            found += await self._search_range(max(lo, split), hi, [])
        return sorted(uid for uid in set(found) if lo <= uid <= hi)

    async def _search_range(self, lo: int, hi: int, criteria: list[str]) -> list[int]:
        assert self.session.client is not None
        return list(await self.session.call(self.session.client.search,
                                            ["UID", f"{lo}:{hi}", *criteria]))

    def _initial_criteria(self) -> list[str]:
        criteria = ["UNSEEN"]
        if self.account.import_since is not None:
            criteria += ["SINCE", _imap_date(self.account.import_since)]
        return criteria

    async def _handle_batch(self, uids: Sequence[int]) -> int:
        """Fetch sizes for ``uids``, then download and submit them in ascending order."""
        assert self.session.client is not None
        meta = await self.session.call(self.session.client.fetch, list(uids),
                                       ["RFC822.SIZE", "INTERNALDATE"])
        log.debug("imap.fetch.batch", first=uids[0], last=uids[-1], found=len(meta))
        handled = 0
        for step in _plan(uids, meta, self.account.max_message_bytes):
            if isinstance(step, _TooLarge):
                await self._handle_too_large(step)
                handled += 1
            else:
                handled += await self._download_and_submit(step.uids, meta)
        return handled

    async def _download_and_submit(self, uids: Sequence[int],
                                   meta: dict[int, dict[bytes, Any]]) -> int:
        """Download ``uids`` and submit them as one window; INTERNALDATE comes from
        ``meta`` (the size FETCH already parsed it, and it never changes)."""
        assert self.session.client is not None
        bodies = await self.session.call(self.session.client.fetch, list(uids),
                                         ["BODY.PEEK[]"])
        seen: list[int] = []
        failed: list[int] = []
        batch: list[tuple[int, RawMessage]] = []
        for uid in uids:
            item = bodies.get(uid) or {}
            raw = item.get(b"BODY[]")
            if raw is None:
                log.info("imap.message.vanished", uid=uid)  # expunged meanwhile
                continue
            received = meta.get(uid, {}).get(b"INTERNALDATE")
            batch.append((uid, self._message(uid, raw, received)))
        for (uid, message), outcome in zip(batch, await self._submit_all(batch),
                                           strict=True):
            self._record(uid, outcome, len(message.raw))
            (failed if outcome.failed else seen).append(uid)
        await self._mark_seen(seen)
        await self._move_to_failure_folder(failed)
        return len(seen) + len(failed)

    async def _handle_too_large(self, step: _TooLarge) -> None:
        log.warning("imap.message.too_large", uid=step.uid, size=step.size,
                    limit=self.account.max_message_bytes)
        await self._submit(step.uid, b"", step.received_at, too_large=step.size)
        await self._move_to_failure_folder([step.uid])

    async def _submit_all(self, batch: list[tuple[int, RawMessage]]) -> list[Outcome]:
        """Hand a fetch window to the processor: one transaction when it can batch."""
        messages = [message for _, message in batch]
        if self.submit_many is not None and len(messages) > 1:
            return await self.submit_many(messages)
        return [await self.submit(message) for message in messages]

    async def _submit(self, uid: int, raw: bytes, received_at: datetime | None, *,
                      too_large: int | None = None) -> Outcome:
        """Hand one message to the processor; its commit also advances ``last_uid``."""
        message = self._message(uid, raw, received_at, too_large=too_large)
        outcome = await self.submit(message)
        self._record(uid, outcome, too_large if too_large is not None else len(raw))
        return outcome

    def _message(self, uid: int, raw: bytes, received_at: datetime | None, *,
                 too_large: int | None = None) -> RawMessage:
        """The RawMessage for ``uid``; its commit also advances ``last_uid``."""
        return RawMessage(
            account=self.account.id,
            source_key=self._source_key(uid),
            raw=raw,
            received_at=received_at if isinstance(received_at, datetime) else None,
            checkpoint=Checkpoint(self.account.id, checkpoint_key(self.folder, "last_uid"),
                                  str(uid)),
            folder=self.folder,
            too_large=too_large,
        )

    def _record(self, uid: int, outcome: Outcome, size: int) -> None:
        """Bookkeeping after a committed outcome."""
        self.state = replace(self.state, last_uid=uid)
        self._report(outcome)
        # debug: the processor's message.<status> line is the canonical one per message
        log.debug("imap.message.done", uid=uid, status=outcome.status.value, size=size)

    async def _settle_through(self, uid: int) -> None:
        """Every UID up to ``uid`` is done (imported or deliberately skipped), flags set."""
        if uid > self.state.last_uid or uid > self.state.flagged_uid:
            await self._save(last_uid=uid, flagged_uid=uid)
            self.state = replace(self.state, last_uid=uid, flagged_uid=uid)
            self._report()

    async def _finish_flags(self) -> None:
        """Set the flags a crash left unset: unread messages in ``flagged_uid+1..last_uid``.

        Their outcomes are committed (with ``last_uid``) but the flag change that follows
        in groups was cut short, so they would stay unread (or, failed, in the folder) for
        good. Each gets what :meth:`_download_and_submit` would have given it, judged by
        the status stored for its source key; UIDs without a record were skipped on
        purpose and are left alone. A checkpoint; no-op when nothing is pending.
        """
        lo, hi = self.state.flagged_uid + 1, self.state.last_uid
        if lo > hi:
            return
        uids = await self._search_range(lo, hi, ["UNSEEN"])
        keys = {uid: self._source_key(uid) for uid in uids if lo <= uid <= hi}

        def read(tx: Tx) -> dict[int, str]:
            return {uid: record.status for uid, key in keys.items()
                    if (record := tx.get_raw(key)) is not None}

        statuses = await self.store.run(read) if keys else {}
        failed = sorted(u for u, s in statuses.items() if s == OutcomeStatus.FAILED.value)
        seen = sorted(u for u, s in statuses.items() if s != OutcomeStatus.FAILED.value)
        await self._mark_seen(seen)
        await self._move_to_failure_folder(failed)
        await self._save(flagged_uid=hi)
        self.state = replace(self.state, flagged_uid=hi)
        log.info("imap.flags.finished", first=lo, last=hi, seen=len(seen), moved=len(failed))

    def _source_key(self, uid: int) -> str:
        return source_key("imap", self.account.id, self.folder, self.state.uidvalidity, uid)

    # -- flags and the failure folder ---------------------------------------------------

    async def _mark_seen(self, uids: list[int]) -> None:
        if not uids:
            return
        assert self.session.client is not None
        try:
            await self.session.call(self.session.client.add_flags, uids, [SEEN], True)
        except ProtocolError as exc:  # e.g. a read-only folder: the import stands
            log.warning("imap.flags.failed", uids=uids, error=str(exc))

    async def _move_to_failure_folder(self, uids: list[int]) -> None:
        if not uids:
            return
        target = self.account.failure_folder
        try:
            await self._ensure_failure_folder()
            await self.session.call(self._move_blocking, uids, target)
        except ProtocolError as exc:  # the error record is committed; the move is a nicety
            log.error("imap.move.failed", uids=uids, target=target, error=str(exc))
            return
        log.info("imap.message.moved", uids=uids, target=target)

    async def _ensure_failure_folder(self) -> None:
        if self._failure_folder_ready:
            return
        await self.session.call(self._create_if_missing, self.account.failure_folder)
        self._failure_folder_ready = True

    def _create_if_missing(self, folder: str) -> None:
        client = self.session.client
        assert client is not None
        if not client.folder_exists(folder):
            try:
                client.create_folder(folder)
            except client.Error:
                if not client.folder_exists(folder):  # not a race with another client
                    raise
            log.info("imap.folder.created", target=folder)

    def _move_blocking(self, uids: list[int], target: str) -> None:
        client = self.session.client
        assert client is not None
        if client.has_capability("MOVE"):
            client.move(uids, target)
            return
        client.copy(uids, target)
        client.add_flags(uids, [DELETED], silent=True)
        if client.has_capability("UIDPLUS"):
            client.uid_expunge(uids)

    # -- checkpoints --------------------------------------------------------------------

    async def _load(self) -> FolderState:
        account, keys = self.account.id, {f: checkpoint_key(self.folder, f) for f in _FIELDS}

        def read(tx: Tx) -> dict[str, str | None]:
            return {name: tx.get_checkpoint(account, key) for name, key in keys.items()}

        values = await self.store.run(read)
        ints = {name: int(v) for name, v in values.items() if v not in (None, "")}
        last_uid = ints.get("last_uid", 0)
        return FolderState(uidvalidity=ints.get("uidvalidity"),
                           last_uid=last_uid,
                           initial_until=ints.get("initial_until", 1),
                           highestmodseq=ints.get("highestmodseq"),
                           resyncs=ints.get("resyncs", 0),
                           # stores from before flagged_uid existed: nothing pending
                           flagged_uid=ints.get("flagged_uid", last_uid))

    async def _save(self, **values: int | None) -> None:
        """Write the given fields in one transaction; None deletes the checkpoint."""
        account = self.account.id
        items = [(checkpoint_key(self.folder, name), value) for name, value in values.items()]

        def write(tx: Tx) -> None:
            for key, value in items:
                if value is None:
                    tx.delete_checkpoints(account, key)
                else:
                    tx.set_checkpoint(account, key, str(value))

        await self.store.run(write)


def _plan(uids: Sequence[int], meta: dict[int, dict[bytes, Any]], max_bytes: int,
          ) -> Iterator[_Download | _TooLarge]:
    """Group ``uids`` (ascending) into downloads of at most DOWNLOAD_BUDGET bytes.

    A message above ``max_bytes`` becomes its own :class:`_TooLarge` step, in its place in
    the order. UIDs missing from ``meta`` were expunged meanwhile and are left out.
    """
    group: list[int] = []
    budget = 0
    for uid in uids:
        if uid not in meta:
            continue
        size = int(meta[uid].get(b"RFC822.SIZE") or 0)
        if size > max_bytes:
            if group:
                yield _Download(tuple(group))
                group, budget = [], 0
            received = meta[uid].get(b"INTERNALDATE")
            yield _TooLarge(uid, size, received if isinstance(received, datetime) else None)
            continue
        if group and budget + size > DOWNLOAD_BUDGET:
            yield _Download(tuple(group))
            group, budget = [], 0
        group.append(uid)
        budget += size
    if group:
        yield _Download(tuple(group))


def _chunks(items: Sequence[int], size: int) -> Iterator[Sequence[int]]:
    for start in range(0, len(items), size):
        yield items[start:start + size]


def _imap_date(day: date) -> str:
    """RFC 3501 ``date`` (``1-Feb-2024``), independent of the process locale."""
    return f"{day.day}-{_MONTHS[day.month - 1]}-{day.year}"
