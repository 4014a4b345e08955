"""A stand-in for the processor that keeps its intake contract with a real store.

``FakeProcessor(store).submit`` is a :data:`daemon.messages.Submit`: it commits the
raw bytes, a result and the message's checkpoint in one transaction, then returns the
:class:`Outcome`, exactly as the processor promises intake actors:

* source key already stored, or the same Message-ID (or, without one, the same SHA-256 of
  the bytes) already stored for the account: DUPLICATE (the new location is stored too,
  with status ``duplicate``);
* ``too_large`` set: FAILED with an error record (empty raw bytes);
* raw bytes containing ``X-Test-Poison: yes``: FAILED with an error record;
* anything else: IMPORTED.

Tests wait for commits with :meth:`FakeProcessor.wait_for` (an event per commit), never
with sleeps.
"""

from __future__ import annotations

__all__ = ["POISON", "Committed", "FakeProcessor", "message_id_of"]

import hashlib
from collections.abc import Callable
from dataclasses import dataclass
from email.parser import BytesHeaderParser
from typing import Any

import trio

from daemon.messages import Outcome, OutcomeStatus, RawMessage
from daemon.store.base import RawRecord

#: A header that makes the fake processing fail.
POISON = b"X-Test-Poison: yes"


def message_id_of(raw: bytes) -> str | None:
    """The trimmed Message-ID header, or None."""
    value = BytesHeaderParser().parsebytes(raw).get("Message-ID")
    if value is None:
        return None
    return str(value).strip() or None


@dataclass(frozen=True)
class Committed:
    """One submitted message and what the fake processor did with it."""

    message: RawMessage
    outcome: Outcome

    @property
    def message_id(self) -> str | None:
        return message_id_of(self.message.raw) if self.message.raw else None


class FakeProcessor:
    """Commits intake messages into ``store`` (an AsyncStore) and records the outcomes."""

    def __init__(self, store: Any) -> None:
        self.store = store
        self.committed: list[Committed] = []
        self._changed = trio.Event()

    async def submit(self, message: RawMessage) -> Outcome:
        """Commit ``message`` (raw bytes, result, checkpoint) and return the outcome."""
        outcome = await self.store.run(_commit, message)
        self.committed.append(Committed(message, outcome))
        self._changed.set()
        self._changed = trio.Event()
        return outcome

    async def wait_for(self, predicate: Callable[[list[Committed]], bool]) -> None:
        """Return once ``predicate(self.committed)`` holds (checked after every commit)."""
        while not predicate(self.committed):
            await self._changed.wait()

    async def wait_for_message(self, message_id: str) -> Committed:
        """Wait for the latest commit of the message with this Message-ID."""
        await self.wait_for(lambda done: any(c.message_id == message_id for c in done))
        return [c for c in self.committed if c.message_id == message_id][-1]

    def statuses(self) -> list[OutcomeStatus]:
        return [c.outcome.status for c in self.committed]


def _commit(tx: Any, message: RawMessage) -> Outcome:
    status, error = _decide(tx, message)
    if tx.get_raw(message.source_key) is None:
        tx.add_raw(RawRecord(
            source_key=message.source_key, account=message.account, raw=message.raw,
            status=status.value,
            message_id=message_id_of(message.raw) if message.raw else None,
            sha256=hashlib.sha256(message.raw).hexdigest() if message.raw else None,
            error=error, folder=message.folder, received_at=message.received_at))
    if message.checkpoint is not None:
        cp = message.checkpoint
        tx.set_checkpoint(cp.account, cp.key, cp.value)
    return Outcome(message.source_key, status, reason=error)


def _decide(tx: Any, message: RawMessage) -> tuple[OutcomeStatus, str | None]:
    if message.too_large is not None:
        return OutcomeStatus.FAILED, f"message too large: {message.too_large} bytes"
    if _seen_before(tx, message):
        return OutcomeStatus.DUPLICATE, None
    if POISON in message.raw:
        return OutcomeStatus.FAILED, "processing failed: poisoned test message"
    return OutcomeStatus.IMPORTED, None


def _seen_before(tx: Any, message: RawMessage) -> bool:
    if tx.get_raw(message.source_key) is not None:
        return True
    message_id = message_id_of(message.raw)
    if message_id is not None:
        return tx.find_raw_by_message_id(message.account, message_id) is not None
    digest = hashlib.sha256(message.raw).hexdigest()
    return tx.find_raw_by_sha256(message.account, digest) is not None
