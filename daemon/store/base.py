"""The store protocol: CRM objects of any limetype, plus the daemon's own tables.

A store is synchronous. It is used from worker threads through
:class:`daemon.store.AsyncStore`, which serialises writers. Everything happens inside a
transaction::

    with store.transaction() as tx:
        person = tx.find_one("person", {"email": "ann@example.com"})
        helpdesk_id = tx.create("helpdesk", {"subject": "Help", "person": person.id})

Objects
    An object has a limetype, an integer ``id`` unique across all limetypes, and a flat
    mapping of JSON-able properties. A relation property holds the related object's id.
    Lookups by property use indexes made with :meth:`Store.ensure_index`; a unique index
    turns a duplicate into :class:`~daemon.errors.UniqueViolation`.

Files
    Attachment and inline-image bytes, stored with :meth:`Tx.put_file`; a document object
    holds the returned id in its file property.

Daemon tables
    ``raw_messages`` (unique ``source_key``), ``checkpoints`` (account, key) -> value,
    ``outbox`` (durable queue of outgoing mail), ``events`` (an append-only log the API
    and ``postroom events`` read) and ``sequences`` (named counters,
    :meth:`Tx.next_number`).

Implementations: :mod:`daemon.store.sqlite` (embedded default) and
:mod:`daemon.store.postgres`. ``tests/store/test_contract.py`` runs against both.
"""

from __future__ import annotations

__all__ = ["Event", "Obj", "OutboxItem", "RawRecord", "Store", "StoredFile", "Tx"]

from collections.abc import Mapping, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol


@dataclass(frozen=True, slots=True)
class Obj:
    """One CRM object as stored."""

    limetype: str
    id: int
    props: Mapping[str, Any]

    def get(self, name: str, default: Any = None) -> Any:
        return self.props.get(name, default)

    def as_json(self) -> dict[str, Any]:
        """``{"id": ..., **props}``: the shape the API and ``postroom objects`` print."""
        return {"id": self.id, **self.props}


@dataclass(frozen=True, slots=True)
class RawRecord:
    """A message's raw bytes under its source key, with what became of it.

    ``status`` is an :class:`~daemon.messages.OutcomeStatus` value; ``error`` is the reason
    for ``failed`` and ``discarded``. ``message_id`` is the trimmed Message-ID header (or
    ``None``); ``sha256`` is the hex digest of ``raw``, used to deduplicate messages that
    have no Message-ID.
    """

    source_key: str
    account: str
    raw: bytes
    status: str
    message_id: str | None = None
    sha256: str | None = None
    error: str | None = None
    conversation_message_id: int | None = None
    folder: str | None = None
    received_at: datetime | None = None
    created_at: datetime | None = None


@dataclass(frozen=True, slots=True)
class OutboxItem:
    """One email to send. ``raw`` is the complete RFC 5322 message, built before queueing.

    ``status``: ``queued`` -> ``sending`` (claimed, the send under way) -> ``sent`` |
    ``failed`` (permanent) | back to ``queued`` (retry); automatic mail over the
    account's budget starts ``held`` and waits for :meth:`Tx.release_outbox`.
    ``attempts`` counts tries, ``next_attempt_at`` is when the outbox actor may try
    again. ``message_follower_id`` links the send (and a later bounce) to the CRM record.
    """

    account: str
    recipient: str
    message_id: str
    raw: bytes
    kind: str = "reply"                  # reply | notification | auto_reply
    status: str = "queued"
    attempts: int = 0
    next_attempt_at: datetime | None = None
    last_error: str | None = None
    message_follower_id: int | None = None
    conversation_message_id: int | None = None
    id: int | None = None
    created_at: datetime | None = None
    sent_at: datetime | None = None


@dataclass(frozen=True, slots=True)
class Event:
    """One line of the event log: ``message.imported``, ``message.failed``, ``outbox.sent``."""

    id: int
    kind: str
    account: str | None
    data: Mapping[str, Any] = field(default_factory=dict)
    created_at: datetime | None = None


@dataclass(frozen=True, slots=True)
class StoredFile:
    """The bytes behind a file property (``document.document``, ``embeddedfile.document``).

    Objects hold the file's ``id``, as a relation holds an object's id.
    """

    id: int
    filename: str
    content_type: str
    data: bytes
    created_at: datetime | None = None


class Tx(Protocol):
    """The operations available inside one transaction."""

    # -- objects ---------------------------------------------------------------------
    def create(self, limetype: str, props: Mapping[str, Any]) -> int:
        """Insert an object; return its id. Raises UniqueViolation on a unique index."""

    def update(self, limetype: str, id: int, props: Mapping[str, Any]) -> None:
        """Merge ``props`` into the object (a ``None`` value stores null). KeyError if absent."""

    def get(self, limetype: str, id: int) -> Obj | None:
        """The object, or None."""

    def find(self, limetype: str, where: Mapping[str, Any] | None = None, *,
             limit: int | None = None, newest_first: bool = False) -> list[Obj]:
        """Objects whose properties equal every value in ``where``, ordered by id.

        Values are JSON scalars compared by JSON type (``True`` never matches ``1``, ``1``
        matches ``1.0``); ``None`` matches a missing property or a null. Limetype and
        property names must match ``[A-Za-z0-9_]+`` (ValueError); other values TypeError.
        """

    def find_one(self, limetype: str, where: Mapping[str, Any]) -> Obj | None:
        """The first (lowest id) match, or None."""

    def delete(self, limetype: str, id: int) -> None:
        """Remove the object; no error if absent."""

    # -- files -----------------------------------------------------------------------
    def put_file(self, data: bytes, filename: str, content_type: str) -> int:
        """Store a file's bytes; return its id for an object's file property."""

    def get_file(self, id: int) -> StoredFile | None: ...

    # -- raw messages ----------------------------------------------------------------
    def add_raw(self, record: RawRecord) -> None:
        """Store raw bytes. Raises UniqueViolation when the source key exists."""

    def get_raw(self, source_key: str) -> RawRecord | None: ...

    def set_raw_result(self, source_key: str, *, status: str, error: str | None = None,
                       conversation_message_id: int | None = None) -> None:
        """Set all three fields as given (None clears). KeyError if the key is absent."""

    def find_raw_by_message_id(self, account: str, message_id: str) -> RawRecord | None:
        """A stored raw message of ``account`` with this Message-ID, if any."""

    def find_raw_by_sha256(self, account: str, sha256: str) -> RawRecord | None: ...

    def list_raw(self, *, account: str | None = None, status: str | None = None,
                 limit: int = 100) -> list[RawRecord]:
        """Records matching the given filters, oldest (first stored) first."""

    # -- checkpoints -----------------------------------------------------------------
    def get_checkpoint(self, account: str, key: str) -> str | None: ...

    def set_checkpoint(self, account: str, key: str, value: str) -> None: ...

    def delete_checkpoints(self, account: str, prefix: str) -> None:
        """Remove every checkpoint of ``account`` whose key starts with ``prefix``."""

    # -- sequences -------------------------------------------------------------------
    def next_number(self, name: str) -> int:
        """Count the sequence ``name`` up by one and return the new value (1 first).

        The row is locked until the transaction ends, so two transactions — threads,
        processes or PostgreSQL nodes — never get the same number; a rolled-back
        transaction gives its number back. Names are free text.
        """

    # -- outbox ----------------------------------------------------------------------
    def enqueue(self, item: OutboxItem) -> int:
        """Queue an email; return its outbox id. Message-IDs are unique."""

    def due(self, now: datetime, limit: int = 50) -> list[OutboxItem]:
        """Queued items whose ``next_attempt_at`` is unset or <= now, oldest first."""

    def claim_due(self, now: datetime, node: str, until: datetime,
                  limit: int = 50) -> list[OutboxItem]:
        """Claim due items for ``node`` until ``until`` (``SKIP LOCKED``), oldest first."""

    def mark_sending(self, id: int, node: str) -> bool:
        """Mark a claimed item ``sending``; False if ``node`` lost the claim."""

    def get_outbox(self, id: int) -> OutboxItem | None: ...

    def mark_sent(self, id: int, when: datetime) -> None:
        """Count the (successful) attempt and record when. KeyError if ``id`` is absent."""

    def mark_retry(self, id: int, error: str, next_attempt_at: datetime) -> None:
        """Count an attempt and schedule the next. KeyError if ``id`` is absent."""

    def mark_failed(self, id: int, error: str) -> None:
        """Count an attempt and give up (permanent failure). KeyError if ``id`` is absent."""

    def find_outbox_by_message_id(self, message_id: str) -> OutboxItem | None: ...

    def outbox_by_status(self, status: str, limit: int = 100) -> list[OutboxItem]:
        """Items with ``status`` (``held``, ``failed``...), oldest first."""

    def count_outbox(self, status: str) -> int:
        """How many items have ``status``."""

    def release_outbox(self, id: int) -> bool:
        """Make a ``held`` item ``queued`` (due now); False if it is not held."""

    # -- the operator's view: failed messages, retention -------------------------------
    def failed_raw(self, after_id: int = 0, limit: int = 100) -> list[tuple[int, RawRecord]]:
        """``(id, record)`` of failed raw messages with ``id > after_id``, in id order."""

    def raw_by_id(self, id: int) -> RawRecord | None:
        """The raw message with this row id (the id ``failed_raw`` gives), or None."""

    def last_event_id(self) -> int:
        """The newest event's id, 0 when there is none (a stream's "from now on")."""

    def find_page(self, limetype: str, where: Mapping[str, Any] | None, *, after_id: int,
                  limit: int, newest_first: bool = False) -> list[Obj]:
        """:meth:`find` from a cursor: ids above ``after_id`` (below, newest first)."""

    def outbox_page(self, status: str, after_id: int, limit: int) -> list[OutboxItem]:
        """Items with ``status`` and ``id > after_id``, in id order."""

    def requeue_outbox(self, id: int) -> bool:
        """A failed (or waiting) item is due now ("Retry"); False if it is sent or gone."""

    def cancel_outbox(self, id: int) -> bool:
        """A queued, held or failed item becomes ``cancelled`` (never sent); else False."""

    def delete_raw(self, source_key: str) -> None:
        """Remove a raw message (a retry re-imports it in the same transaction)."""

    def purge(self, before: datetime) -> tuple[int, int]:
        """Retention: drop what was stored before ``before``; return (raws, events).

        A raw message keeps its row (Message-ID, digest, outcome: a late re-delivery is
        still a duplicate) but loses its bytes; a failed one is never touched. Events
        are deleted.
        """

    # -- nodes, leases, kicks (daemon.leases, daemon.kicks) ---------------------------
    def db_now(self) -> datetime: ...

    def beat_node(self, node: str, now: datetime, expires_at: datetime) -> None: ...

    def live_nodes(self, now: datetime) -> list[str]: ...

    def forget_nodes(self, before: datetime) -> None: ...

    def leases(self) -> list[Any]:
        """Every account's :class:`~daemon.store.transaction.Lease`, by account."""

    def acquire_lease(self, account: str, node: str, now: datetime,
                      expires_at: datetime) -> int | None:
        """The new epoch if the lease was free or expired, else None."""

    def renew_leases(self, node: str, now: datetime, expires_at: datetime) -> None: ...

    def release_lease(self, account: str, node: str, now: datetime) -> None: ...

    def lease_history(self) -> list[dict[str, Any]]: ...

    def record_kick(self, account: str) -> None: ...

    def take_kicks(self, accounts: Sequence[str]) -> list[str]: ...

    # -- events ----------------------------------------------------------------------
    def add_event(self, kind: str, account: str | None, data: Mapping[str, Any]) -> int: ...

    def events_since(self, after_id: int, limit: int = 100) -> list[Event]:
        """Events with ``id > after_id``, in id order."""


class Store(Protocol):
    """A database holding objects and the daemon's tables. Opening it runs migrations."""

    url_for_logs: str  # the URL with any password removed

    def transaction(self) -> AbstractContextManager[Tx]:
        """Begin a write transaction; commit on normal exit, roll back on exception.

        Raises StoreBusyError if the database is locked past the busy timeout, the disk is
        full or the connection is lost: the caller backs off and retries.

        Transactions do not nest (StoreError). A UniqueViolation raised by a Tx method
        leaves the transaction usable, so a caller may catch it and carry on. Datetimes
        passed in must be timezone-aware (ValueError); those read back are in UTC.
        """

    def ensure_index(self, limetype: str, prop: str, *, unique: bool = False) -> None:
        """Make lookups of ``limetype`` by ``prop`` fast (idempotent).

        Names must match ``[A-Za-z0-9_]+`` (ValueError). A unique index ignores missing and
        null values; creating one over existing duplicates raises UniqueViolation.
        """

    def close(self) -> None: ...

