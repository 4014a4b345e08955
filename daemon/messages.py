"""The values that travel between actors.

Intake actors (Maildir, IMAP, Graph, ``postroom deliver``) hand a :class:`RawMessage` to the
processor through a :data:`Submit` (or :data:`SubmitMany`) and get an :class:`Outcome`
back. Only after the outcome says the message is safely committed does the intake touch
the server (set ``\\Seen``, move the file, move to the failure folder).
"""

from __future__ import annotations

__all__ = ["Checkpoint", "Outcome", "OutcomeStatus", "RawMessage", "Submit", "SubmitMany",
           "source_key"]

import enum
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime


def source_key(*parts: object) -> str:
    """Build the unique key of a message at its source: ``imap:support:INBOX:1700000:42``.

    Parts are joined with ``:``; a ``:`` inside a part is escaped as ``%3A`` so that keys
    from different folders can never collide.
    """
    return ":".join(str(p).replace("%", "%25").replace(":", "%3A") for p in parts)


@dataclass(frozen=True, slots=True)
class Checkpoint:
    """A value the intake wants committed in the same transaction as the message.

    The IMAP actor uses it to advance ``last_uid`` atomically with the import, so a crash
    at any point means "fetch again and deduplicate", never "lost".
    """

    account: str
    key: str
    value: str


@dataclass(frozen=True, slots=True)
class RawMessage:
    """One message exactly as the server gave it.

    Attributes:
        account: the account id from the TOML file.
        source_key: unique per account and source location (see :func:`source_key`).
        raw: the RFC 5322 bytes, untouched.
        received_at: when the server says it arrived (IMAP INTERNALDATE), if known.
        checkpoint: committed together with the message, if given.
        folder: the server folder it came from, for logs and the failure folder.
        too_large: set (to the declared size) when the message was not downloaded because
            it exceeds the account's ``max_message_bytes``; ``raw`` is then empty and the
            processor records an error instead of importing.
    """

    account: str
    source_key: str
    raw: bytes
    received_at: datetime | None = None
    checkpoint: Checkpoint | None = None
    folder: str | None = None
    too_large: int | None = None


class OutcomeStatus(enum.Enum):
    IMPORTED = "imported"     # new objects committed
    DUPLICATE = "duplicate"   # this source key (or Message-ID) was already stored
    DISCARDED = "discarded"   # stored as raw only, on purpose (e.g. automatic mail, loop)
    FAILED = "failed"         # stored as raw with an error record: move to failure folder


@dataclass(frozen=True, slots=True)
class Outcome:
    """What the processor did with one :class:`RawMessage`; committed before it is sent."""

    source_key: str
    status: OutcomeStatus
    conversation_message_id: int | None = None
    reason: str | None = None
    rules: tuple[str, ...] = field(default=())

    @property
    def failed(self) -> bool:
        return self.status is OutcomeStatus.FAILED


#: How an intake actor hands a message to the processor and waits until it is committed
#: (:meth:`daemon.actors.processor.Processor.submit`).
Submit = Callable[[RawMessage], Awaitable[Outcome]]
#: The same for a batch, imported in order in one transaction (group commit).
SubmitMany = Callable[[Sequence[RawMessage]], Awaitable[list[Outcome]]]
