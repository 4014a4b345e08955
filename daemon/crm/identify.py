"""Which existing conversation does a message belong to?

Methods, strongest first (helpdesk-ingestion research, "Threading order"):

1. ``signed-id``: an id in In-Reply-To/References (nearest parent first) is one of our own
   HMAC-signed Message-IDs; it names the conversation directly.
2. ``body-marker``: the same signed token found in the body, for providers that rewrite
   Message-IDs.
3. ``references``: an id in In-Reply-To/References is the Message-ID of a stored message,
   or of a copy we sent to one follower.
4. ``subject-tag``: ``[#<conversation id>]`` in the subject — only when the sender already
   follows that conversation; a stranger quoting a tag gets a new conversation.

Methods 1–3 run when ``identificationMethod`` includes ``messageId``; 4 when it includes
``subject``. The result is a list of candidates, best first, without repeats, for the
``postroom_identify_conversation`` hook to confirm or override.
"""

from __future__ import annotations

__all__ = ["SUBJECT_TAG", "find_candidates", "reference_chain", "subject_tag"]

import re
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING

from daemon.crm.followers import followers_by_address
from daemon.mail.ids import find_body_markers
from daemon.mail.model import ParsedMessage
from daemon.plugins.events import Candidate
from daemon.store.base import Tx

if TYPE_CHECKING:
    from daemon.config import RuntimeConfig

SUBJECT_TAG = re.compile(r"\[#(\d{1,18})\]")


def subject_tag(conversation_id: int) -> str:
    """The tag put in outgoing subjects when the subject method is on."""
    return f"[#{conversation_id}]"


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
    cm, mf = runtime.conversation_message, runtime.message_follower
    result = []
    for message_id in chain:
        stored = tx.find_one(cm.limetype, {cm.property_email_id: message_id})
        if stored is None:
            copy = tx.find_one(mf.limetype, {mf.property_message_id: message_id})
            if copy is not None:
                stored = tx.get(cm.limetype, copy.get(mf.relation_conversation_message))
        if stored is not None and stored.get(cm.relation_conversation):
            result.append(Candidate(stored.get(cm.relation_conversation), "references"))
    return result


def _tagged(tx: Tx, runtime: RuntimeConfig, message: ParsedMessage) -> list[Candidate]:
    """Subject tags, honoured only for senders who already follow that conversation."""
    if message.from_ is None:
        return []
    result = []
    for match in SUBJECT_TAG.finditer(message.subject):
        conversation_id = int(match.group(1))
        if message.from_.email in followers_by_address(tx, runtime, conversation_id):
            result.append(Candidate(conversation_id, "subject-tag"))
    return result
