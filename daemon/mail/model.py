"""What the pipeline knows about one message after parsing and classification.

These are plain frozen values: the parser builds them from bytes
(:func:`daemon.mail.parse.parse_message`), the classifier reads them
(:func:`daemon.mail.classify.classify`), plugins receive them in hooks. Nothing here
touches the store or the network.
"""

from __future__ import annotations

__all__ = [
    "Address",
    "Attachment",
    "BounceInfo",
    "Classification",
    "MessageKind",
    "ParsedMessage",
]

import enum
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime


@dataclass(frozen=True, slots=True)
class Address:
    """A mailbox: ``email`` is lower-cased and stripped; ``name`` may be empty."""

    email: str
    name: str = ""

    def __str__(self) -> str:
        return f"{self.name} <{self.email}>" if self.name else self.email


@dataclass(frozen=True, slots=True)
class Attachment:
    """A file carried by a message.

    ``inline`` is true for a part referenced from the HTML by ``cid:`` (an embedded file);
    ``content_id`` is kept without angle brackets. ``origin`` says where it came from:
    ``mime`` (an ordinary part), ``tnef`` (unpacked from winmail.dat), ``rfc822`` (an
    attached message, stored as ``<subject>.eml``) or ``data-uri``.
    """

    filename: str
    content_type: str
    data: bytes
    content_id: str | None = None
    inline: bool = False
    origin: str = "mime"

    @property
    def size(self) -> int:
        return len(self.data)


@dataclass(frozen=True, slots=True)
class ParsedMessage:
    """A message as the pipeline sees it.

    Attributes:
        message_id: the Message-ID without ``<>``, trimmed; None when missing.
        in_reply_to: ids from In-Reply-To, without ``<>``.
        references: ids from References, oldest first, without ``<>``.
        subject: decoded (RFC 2047), whitespace folded.
        from_: the sender's mailbox: From, else (when From has no usable address)
            Sender, Reply-To, Return-Path; a best-effort repair of a malformed header
            is recorded in ``defects`` (``sender-repaired:<field>:<how>``).
        from_source: the header ``from_`` was read from (``from``, ``sender``,
            ``reply-to``, ``return-path``), None when there is no sender.
        reply_to, to, cc: decoded address lists (may be empty).
        date: the Date header as an aware datetime, or None.
        headers: every header, lower-cased name -> decoded values in order.
        text: the plain-text body; derived from the HTML when there is no text part.
        html: the HTML body sanitised with nh3 (``cid:`` links kept), or None.
        attachments: documents (not inline).
        inline_images: embedded files referenced by ``cid:``.
        defects: what the parser had to repair, as short strings.
        size: len(raw); sha256: hex digest of raw.
    """

    message_id: str | None
    subject: str
    from_: Address | None
    to: tuple[Address, ...] = ()
    cc: tuple[Address, ...] = ()
    reply_to: tuple[Address, ...] = ()
    in_reply_to: tuple[str, ...] = ()
    references: tuple[str, ...] = ()
    date: datetime | None = None
    headers: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    text: str = ""
    html: str | None = None
    attachments: tuple[Attachment, ...] = ()
    inline_images: tuple[Attachment, ...] = ()
    defects: tuple[str, ...] = ()
    size: int = 0
    sha256: str = ""
    from_source: str | None = None

    def header(self, name: str) -> str | None:
        """The first value of header ``name`` (case-insensitive), or None."""
        values = self.headers.get(name.lower())
        return values[0] if values else None


class MessageKind(enum.Enum):
    NORMAL = "normal"        # written by a person
    AUTOMATIC = "automatic"  # out-of-office, notifications, lists, bots
    BOUNCE = "bounce"        # a delivery status notification about mail we sent
    OWN = "own"              # our own mail coming back: a loop


@dataclass(frozen=True, slots=True)
class BounceInfo:
    """What a delivery report says about one recipient (RFC 3464 fields where present).

    ``reason`` is one word of :data:`daemon.mail.bounces.reasons.REASONS` (``user-unknown``,
    ``mailbox-full``...), read from the status and the diagnostic text; ``remote_mta`` is
    the server that refused (RFC 3464 ``Remote-MTA`` or the host named in the text).
    """

    recipient: str | None
    action: str | None = None            # failed | delayed | delivered | relayed | expanded
    status: str | None = None            # e.g. 5.1.1
    diagnostic: str | None = None        # Diagnostic-Code text
    original_message_id: str | None = None  # without <>
    reporting_mta: str | None = None
    remote_mta: str | None = None
    reason: str | None = None

    @property
    def permanent(self) -> bool:
        """True when the address itself is bad, so the follower should be marked failing.

        Decided by the reason first: ``user-unknown``, ``host-unknown``, ``suspended``
        and ``not-accepted`` are permanent; a full mailbox, a spam or size rejection, a
        block of the sending server or an expired queue entry are not (the next message
        may well arrive). Without a known reason, a 5.x.x status (or action ``failed``
        without a status) counts as permanent.
        """
        from daemon.mail.bounces.reasons import PERMANENT_REASONS, TEMPORARY_REASONS

        if self.reason in PERMANENT_REASONS:
            return True
        if self.reason in TEMPORARY_REASONS:
            return False
        if self.status:
            return self.status.startswith("5")
        return (self.action or "").lower() == "failed"


@dataclass(frozen=True, slots=True)
class Classification:
    """The verdict on one message and the named rules that produced it.

    ``rules`` records every check that fired (``header.auto-submitted``,
    ``sender.noreply``, ``subject.out-of-office``, ``bounce.dsn``...), so ``postroom
    inspect`` and the stored message can say *why*.
    """

    kind: MessageKind
    rules: tuple[str, ...] = ()
    bounce: BounceInfo | None = None
    out_of_office: bool = False
    bounces: tuple[BounceInfo, ...] = ()  # every failed recipient; ``bounce`` is the first

    @property
    def automatic(self) -> bool:
        """True for anything not written by a person (automatic, bounce, own)."""
        return self.kind is not MessageKind.NORMAL
