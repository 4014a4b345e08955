"""Which existing conversation does a message belong to?

Methods, strongest first (helpdesk-ingestion research, "Threading order"):

1. ``signed-id``: an id in In-Reply-To/References (nearest parent first) is one of our own
   HMAC-signed Message-IDs; it names the conversation directly.
2. ``body-marker``: the same signed token found in the body, for providers that rewrite
   Message-IDs.
3. ``references``: an id in In-Reply-To/References is the Message-ID of a stored message,
   or of a copy we sent to one follower.
4. ``subject-tag``: ``[#<number>]`` in the subject — only when the sender already
   follows that conversation; a stranger quoting a tag gets a new conversation. The
   number is the parent's number (``[crm] parent_numbers``, ``helpdesknumber``), or the
   conversation id when the parent has no whole-number number (and for tags sent before
   numbering existed).

Methods 1–3 run when ``identificationMethod`` includes ``messageId``; 4 when it includes
``subject``. The result is a list of candidates, best first, without repeats, for the
``postroom_identify_conversation`` hook to confirm or override.
"""

from __future__ import annotations

__all__ = ["SUBJECT_TAG", "conversation_tag", "find_candidates", "reference_chain",
           "replied_message", "subject_tag"]

import re
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any

from daemon.crm.followers import followers_by_address
from daemon.mail.ids import find_body_markers
from daemon.mail.model import ParsedMessage
from daemon.plugins.events import Candidate
from daemon.store.base import Obj, Tx

if TYPE_CHECKING:
    from daemon.config import RuntimeConfig

SUBJECT_TAG = re.compile(r"\[#(\d{1,18})\]")


def subject_tag(number: int) -> str:
    """The tag put in outgoing subjects when the subject method is on."""
    return f"[#{number}]"


def conversation_tag(tx: Tx, runtime: Any, conversation: Obj) -> str:
    """The subject tag of ``conversation``: its parent's number, else its own id."""
    for parent in runtime.conversation_parents:
        prop = runtime.crm.number_property(parent.limetype)
        parent_id = conversation.get(runtime.crm.parent_link(parent.limetype))
        if prop is None or type(parent_id) is not int:
            continue
        found = tx.get(parent.limetype, parent_id)
        number = found.get(prop) if found is not None else None
        if type(number) is int:
            return subject_tag(number)
    return subject_tag(conversation.id)


def replied_message(tx: Tx, runtime: Any, message: ParsedMessage) -> int | None:
    """The stored conversation message ``message`` answers (nearest in its chain), if any.

    In-Reply-To first, then References newest first; an id may be a stored message's
    Message-ID or the one we gave a follower's copy.
    """
    for message_id in reference_chain(message):
        stored = _stored_message(tx, runtime, message_id)
        if stored is not None:
            return stored.id
    return None


def reference_chain(message: ParsedMessage) -> list[str]:
    """In-Reply-To then References newest first, each id once."""
    ordered = [*message.in_reply_to, *reversed(message.references)]
    return list(dict.fromkeys(i for i in ordered if i))


def find_candidates(tx: Tx, runtime: RuntimeConfig, message: ParsedMessage, *,
                    methods: frozenset[str],
                    conversation_of_token: Callable[[str], int | None]) -> list[Candidate]:
    """Conversations this message may belong to, best first.

    Args:
        tx: the open transaction.
        runtime: the runtime configuration.
        message: the parsed message.
        methods: ``{"messageId", "subject"}`` or a subset.
        conversation_of_token: maps a Message-ID to a conversation id when it is one of
            our signed ids (verifying the signature), else None.
    """
    found: list[Candidate] = []
    if "messageId" in methods:
        chain = reference_chain(message)
        found += _signed(tx, runtime, chain, "signed-id", conversation_of_token)
        body = f"{message.text}\n{message.html or ''}"
        found += _signed(tx, runtime, find_body_markers(body), "body-marker",
                         conversation_of_token)
        found += _stored(tx, runtime, chain)
    if "subject" in methods:
        found += _tagged(tx, runtime, message)
    unique: dict[int, Candidate] = {}
    for candidate in found:
        unique.setdefault(candidate.conversation_id, candidate)
    return list(unique.values())


def _signed(tx: Tx, runtime: RuntimeConfig, ids: Iterable[str], method: str,
            conversation_of_token: Callable[[str], int | None]) -> list[Candidate]:
    result = []
    for message_id in ids:
        conversation_id = conversation_of_token(message_id)
        if conversation_id and tx.get(runtime.conversation.limetype, conversation_id):
            result.append(Candidate(conversation_id, method))
    return result


def _stored(tx: Tx, runtime: RuntimeConfig, chain: list[str]) -> list[Candidate]:
    """Conversations of stored messages (or per-follower copies) named in the chain."""
    cm = runtime.conversation_message
    result = []
    for message_id in chain:
        stored = _stored_message(tx, runtime, message_id)
        if stored is not None and stored.get(cm.relation_conversation):
            result.append(Candidate(stored.get(cm.relation_conversation), "references"))
    return result


def _stored_message(tx: Tx, runtime: Any, message_id: str) -> Obj | None:
    """The conversation message with this Message-ID, or whose follower copy had it."""
    cm, mf = runtime.conversation_message, runtime.message_follower
    stored = tx.find_one(cm.limetype, {cm.property_email_id: message_id})
    if stored is None:
        copy = tx.find_one(mf.limetype, {mf.property_message_id: message_id})
        related = copy.get(mf.relation_conversation_message) if copy is not None else None
        if type(related) is int:
            stored = tx.get(cm.limetype, related)
    return stored


def _tagged(tx: Tx, runtime: Any, message: ParsedMessage) -> list[Candidate]:
    """Subject tags, honoured only for senders who already follow that conversation."""
    if message.from_ is None:
        return []
    result = []
    for match in SUBJECT_TAG.finditer(message.subject):
        for conversation_id in _tagged_conversations(tx, runtime, int(match.group(1))):
            if message.from_.email in followers_by_address(tx, runtime, conversation_id):
                result.append(Candidate(conversation_id, "subject-tag"))
    return result


def _tagged_conversations(tx: Tx, runtime: Any, number: int) -> list[int]:
    """Conversations a tag's number may name: numbered parents first, then the id."""
    found = []
    for parent in runtime.conversation_parents:
        prop = runtime.crm.number_property(parent.limetype)
        if prop is None:
            continue
        for obj in tx.find(parent.limetype, {prop: number}, limit=10):
            conversation_id = obj.get(parent.relation_conversation)
            if type(conversation_id) is int:
                found.append(conversation_id)
    if tx.get(runtime.conversation.limetype, number) is not None:
        found.append(number)
    return found
