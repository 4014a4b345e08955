"""The one transaction that turns a classified message into CRM objects.

:func:`import_message` runs inside :meth:`AsyncStore.run`, in the store's worker thread.
Everything it writes — the raw bytes under their source key, the conversation parent, the
conversation, the message, followers, documents, embedded files, error records and the
intake's checkpoint — commits together or not at all. A crash at any point therefore means
"fetch again and deduplicate", never "lost" and never "twice".

Deduplication, per account: the same source key, or the same Message-ID, or (without a
Message-ID) the same SHA-256 of the raw bytes. A duplicate is recorded under its own source
key with empty bytes, so the intake can acknowledge it.

:func:`record_failure` is the other way out: when parsing or importing raised, a fresh
transaction keeps the raw bytes with the error and a ``conversationmessageerror`` record.
"""

from __future__ import annotations

__all__ = ["ImportJob", "ImportResult", "Processing", "engine_id", "import_message",
           "record_failure"]

import html
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import pluggy

from daemon.crm.bounces import record_bounce
from daemon.crm.errors import ErrorKind, record_error
from daemon.crm.followers import Participant, add_followers, participants
from daemon.crm.identify import find_candidates, replied_message
from daemon.crm.mapping import map_parent_properties, message_properties
from daemon.crm.relations import append_related
from daemon.crm.replies import auto_reply_due, take_auto_reply_allowance
from daemon.crm.unread import note_unread
from daemon.mail.model import Classification, MessageKind, ParsedMessage
from daemon.messages import Outcome, OutcomeStatus, RawMessage
from daemon.plugins.events import MessageImported
from daemon.plugins.manager import call_hook
from daemon.store.base import RawRecord, Tx

if TYPE_CHECKING:
    from daemon.config import Account, RuntimeConfig
    from daemon.config.runtime import ConversationParent


@dataclass(frozen=True)
class Processing:
    """What the importer needs besides the message; built once by the processor.

    Attributes:
        runtime: the runtime configuration (``daemon.config.RuntimeConfig``).
        pm: the plugin manager.
        accounts: the configured accounts by id.
        own_addresses: every account address and alias, lower-cased.
        conversation_of_token: verifies one of our signed Message-IDs, returning its
            conversation id (or None).
        follower_of_token: the same for the message follower id it carries.
        queue_mail: ``queue_mail(tx, account_id, **kwargs)`` composes and queues mail to
            followers (:func:`daemon.outbox.queue.queue_to_followers`); None disables
            automatic replies and notifications (``postroom inspect``).
        now: the clock (tests pass a fixed one).
    """

    runtime: RuntimeConfig
    pm: pluggy.PluginManager
    accounts: Mapping[str, Account]
    own_addresses: frozenset[str]
    conversation_of_token: Callable[[str], int | None]
    follower_of_token: Callable[[str], int | None]
    queue_mail: Callable[..., list[int]] | None = None
    now: Callable[[], datetime] = lambda: datetime.now(UTC)


@dataclass(frozen=True)
class ImportJob:
    """One message, parsed and classified, ready to be written.

    ``may_create_parent`` is the verdict on an automatic message that matches no
    conversation (``allowAutomaticEmails`` and the ``postroom_allow_sender`` hook);
    it is ignored for normal mail.
    """

    raw: RawMessage
    parsed: ParsedMessage
    classification: Classification
    may_create_parent: bool


@dataclass(frozen=True)
class ImportResult:
    outcome: Outcome
    event: MessageImported | None = None


def import_message(tx: Tx, ctx: Processing, job: ImportJob) -> ImportResult:
    """Write ``job`` in the open transaction; see the module docstring."""
    raw, parsed = job.raw, job.parsed
    seen = _already_stored(tx, raw)
    if seen is not None:
        return ImportResult(seen)
    duplicate = _duplicate_of(tx, raw, parsed)
    if duplicate is not None:
        return ImportResult(_store_raw(tx, ctx, raw, parsed, OutcomeStatus.DUPLICATE,
                                       reason=f"duplicate of {duplicate}", keep_bytes=False))
    kind = job.classification.kind
    if kind is MessageKind.OWN:
        return ImportResult(_store_raw(tx, ctx, raw, parsed, OutcomeStatus.DISCARDED,
                                       reason="our own mail came back (loop)",
                                       rules=job.classification.rules))
    if kind is MessageKind.BOUNCE:
        bounced = _record_bounce(tx, ctx, raw, parsed, job.classification)
        if bounced is not None:
            return ImportResult(bounced)
    conversation_id = _identify(tx, ctx, parsed)
    parent_cfg = ctx.runtime.parent_for(raw.account)
    previous = None
    if conversation_id is not None and not job.classification.automatic:
        conversation_id, previous = _closed_parent_policy(
            tx, ctx, ctx.accounts[raw.account], parent_cfg, conversation_id)
    new_conversation = conversation_id is None
    if new_conversation and job.classification.automatic and not job.may_create_parent:
        return ImportResult(_store_raw(
            tx, ctx, raw, parsed, OutcomeStatus.DISCARDED,
            reason="automatic mail that matches no conversation (allowAutomaticEmails)",
            rules=job.classification.rules))
    parent_id = None
    if conversation_id is None:
        conversation_id, parent_id = _start_conversation(tx, ctx, parent_cfg, parsed)
        if previous is not None:
            tx.update(ctx.runtime.conversation.limetype, conversation_id,
                      {ctx.runtime.crm.conversation_previous: previous})
    else:
        parent_id = _parent_of(tx, ctx, parent_cfg, conversation_id)
    assert conversation_id is not None
    message_id = _create_message(tx, ctx, raw, parsed, job.classification, conversation_id)
    if kind is MessageKind.NORMAL:
        _note_incoming(tx, ctx, parsed, conversation_id)
    people = participants(parsed, ctx.own_addresses)
    followers = add_followers(tx, ctx.runtime, conversation_id, message_id,
                              parsed.message_id, people,
                              max_new=ctx.accounts[raw.account].max_new_followers_per_message)
    if len(followers) < len(people):
        _record_unadded(tx, ctx, raw, message_id, people, followers)
    _attach_files(tx, ctx, parent_cfg, parent_id, message_id, parsed)
    if kind is MessageKind.NORMAL:
        _send_replies(tx, ctx, raw, parsed, conversation_id, message_id, new_conversation,
                      [p for _, p in followers])
    outcome = _store_raw(tx, ctx, raw, parsed, OutcomeStatus.IMPORTED,
                         message_id=message_id, rules=job.classification.rules)
    event = MessageImported(
        account=raw.account, source_key=raw.source_key, conversation_id=conversation_id,
        conversation_message_id=message_id,
        parent_limetype=parent_cfg.limetype if parent_cfg else "",
        parent_id=parent_id, new_conversation=new_conversation, kind=kind.value,
        rules=job.classification.rules, follower_ids=tuple(f for f, _ in followers))
    tx.add_event("message.imported", raw.account, {
        "source_key": raw.source_key, "message_id": parsed.message_id,
        "conversation": conversation_id, "conversationmessage": message_id,
        "new_conversation": new_conversation, "kind": kind.value})
    return ImportResult(outcome, event)


def record_failure(tx: Tx, ctx: Processing, raw: RawMessage, error: str) -> Outcome:
    """Keep the raw bytes of a message that could not be imported, with the error.

    Also creates a ``conversationmessageerror`` (type ``import``) so the failure shows in
    the CRM, and advances the intake's checkpoint: the intake moves the message to the
    failure folder, and it stays recoverable from the store.
    """
    seen = _already_stored(tx, raw)
    if seen is not None:
        return seen
    record_error(tx, ctx.runtime, kind=ErrorKind.IMPORT, text=f"{raw.source_key}: {error}",
                 when=ctx.now())
    tx.add_raw(RawRecord(source_key=raw.source_key, account=raw.account, raw=raw.raw,
                         status=OutcomeStatus.FAILED.value, error=error,
                         folder=raw.folder, received_at=raw.received_at))
    _checkpoint(tx, raw)
    tx.add_event("message.failed", raw.account, {"source_key": raw.source_key,
                                                 "error": error})
    return Outcome(raw.source_key, OutcomeStatus.FAILED, reason=error)


# -- steps ----------------------------------------------------------------------------


def _already_stored(tx: Tx, raw: RawMessage) -> Outcome | None:
    """The earlier outcome when this very source key was committed before (a re-fetch
    after a crash between commit and acknowledgement)."""
    existing = tx.get_raw(raw.source_key)
    if existing is None:
        return None
    _checkpoint(tx, raw)
    return Outcome(raw.source_key, OutcomeStatus(existing.status),
                   existing.conversation_message_id, reason=existing.error)


def _duplicate_of(tx: Tx, raw: RawMessage, parsed: ParsedMessage) -> str | None:
    if parsed.message_id:
        found = tx.find_raw_by_message_id(raw.account, parsed.message_id)
    else:
        found = tx.find_raw_by_sha256(raw.account, parsed.sha256)
    if found is not None and found.status != OutcomeStatus.FAILED.value:
        return found.source_key
    return None


def _record_bounce(tx: Tx, ctx: Processing, raw: RawMessage, parsed: ParsedMessage,
                   classification: Classification) -> Outcome | None:
    assert classification.bounce is not None
    records = [r for r in (record_bounce(tx, ctx.runtime, b, ctx.now(), ctx.follower_of_token)
                           for b in classification.bounces or (classification.bounce,)) if r]
    if not records:
        return None
    for record in records:
        tx.add_event("message.bounced", raw.account, {
            "source_key": raw.source_key, "conversationmessageerror": record.error_id,
            "messagefollower": record.message_follower_id,
            "conversation": record.conversation_id})
    return _store_raw(tx, ctx, raw, parsed, OutcomeStatus.IMPORTED,
                      reason="bounce recorded as " + ", ".join(
                          f"error {r.error_id} on message follower {r.message_follower_id}"
                          for r in records),
                      rules=classification.rules)


#: At most this many addresses are listed in a message's ``unaddedfollowers``.
UNADDED_LISTED = 1000


def _record_unadded(tx: Tx, ctx: Processing, raw: RawMessage, message_id: int,
                    people: list[Participant], followers: list[tuple[int, Participant]]
                    ) -> None:
    """Note on the message who did not become a follower (``max_new_followers_per_message``).

    The message keeps ``unaddedfollowers`` (the addresses, at most :data:`UNADDED_LISTED`;
    the raw message has them all) and the event ``followers.capped`` says how many.
    """
    added = {p.email for _, p in followers}
    unadded = [p.email for p in people if p.email not in added]
    tx.update(ctx.runtime.conversation_message.limetype, message_id,
              {"unaddedfollowers": unadded[:UNADDED_LISTED]})
    tx.add_event("followers.capped", raw.account, {
        "source_key": raw.source_key, "conversationmessage": message_id,
        "added": len(followers), "unadded": len(unadded)})


def _send_replies(tx: Tx, ctx: Processing, raw: RawMessage, parsed: ParsedMessage,
                  conversation_id: int, message_id: int, new_conversation: bool,
                  people: list[Participant]) -> None:
    """Queue the automatic reply (new conversation) or hub notifications (a reply).

    The automatic reply goes to the sender alone (RFC 3834 §3.1: to the Return-Path or
    From, never to the other recipients), and only within the sender's rate limit; who
    receives a notification is decided by :func:`daemon.outbox.queue.queue_to_followers`.
    """
    if ctx.queue_mail is None:
        return
    if not new_conversation:
        ctx.queue_mail(tx, raw.account, conversation_id=conversation_id,
                       conversation_message_id=message_id, kind="notification",
                       author_email=parsed.from_.email if parsed.from_ else None)
        return
    account = ctx.accounts[raw.account]
    now = ctx.now()
    if not auto_reply_due(account, parsed, raw.received_at, now):
        return
    sender = next((p.email for p in people if p.level == "from"), None)
    if sender is not None and take_auto_reply_allowance(tx, account, sender, now):
        ctx.queue_mail(tx, raw.account, conversation_id=conversation_id,
                       conversation_message_id=message_id, kind="auto_reply",
                       author_email=None, only=frozenset({sender}))


def _closed_parent_policy(tx: Tx, ctx: Processing, account: Account,
                          parent_cfg: ConversationParent | None, conversation_id: int
                          ) -> tuple[int | None, int | None]:
    """Apply ``closed_parent`` to a person's reply: ``(conversation to join, previous)``.

    Reopening updates the parent and keeps the conversation; ``new`` returns no
    conversation (so one is started) and the old one as ``previous``.
    """
    policy = account.closed_parent
    parent_id = _parent_of(tx, ctx, parent_cfg, conversation_id)
    if policy is None or parent_cfg is None or parent_id is None:
        return conversation_id, None
    parent = tx.get(parent_cfg.limetype, parent_id)
    if parent is None or parent.get(policy.property) not in policy.values:
        return conversation_id, None
    if policy.action == "new":
        return None, conversation_id
    tx.update(parent_cfg.limetype, parent_id, {policy.property: policy.reopen_value})
    tx.add_event("parent.reopened", account.id, {"limetype": parent_cfg.limetype,
                                                 "id": parent_id})
    return conversation_id, None


def _identify(tx: Tx, ctx: Processing, parsed: ParsedMessage) -> int | None:
    candidates = find_candidates(tx, ctx.runtime, parsed,
                                 methods=ctx.runtime.identification_methods,
                                 conversation_of_token=ctx.conversation_of_token)
    chosen = call_hook(ctx.pm, "postroom_identify_conversation", message=parsed,
                       candidates=candidates)
    if chosen == 0:
        return None
    if isinstance(chosen, int) and tx.get(ctx.runtime.conversation.limetype, chosen):
        return chosen
    return candidates[0].conversation_id if candidates else None


def _start_conversation(tx: Tx, ctx: Processing, parent_cfg: ConversationParent | None,
                        parsed: ParsedMessage) -> tuple[int, int | None]:
    ccfg = ctx.runtime.conversation
    sender = parsed.from_.email if parsed.from_ else None
    conversation = {
        ccfg.property_thread_id: parsed.message_id,
        ccfg.property_subject: parsed.subject,
        ccfg.property_address: sender,
        ccfg.property_first_message_date: _date(ctx, parsed),
        ccfg.property_language: parsed.header("content-language"),
        ccfg.property_source: ccfg.source_option,
    }
    conversation_id = tx.create(ccfg.limetype, conversation)
    if parent_cfg is None:
        return conversation_id, None
    props = map_parent_properties(tx, parent_cfg.properties, message_properties(parsed))
    call_hook(ctx.pm, "postroom_conversation_parent_properties", message=parsed,
              limetype=parent_cfg.limetype, properties=props)
    _number_parent(tx, ctx, parent_cfg.limetype, props)
    props[parent_cfg.relation_conversation] = conversation_id
    parent_id = tx.create(parent_cfg.limetype, props)
    tx.update(ccfg.limetype, conversation_id,
              {ctx.runtime.crm.parent_link(parent_cfg.limetype): parent_id})
    return conversation_id, parent_id


def _number_parent(tx: Tx, ctx: Processing, limetype: str, props: dict[str, Any]) -> None:
    """Give a new parent the next number of its limetype's sequence (``[crm]
    parent_numbers``), unless the mapping or a plugin already set one (a connector to an
    external CRM supplies its own). The sequence is ``parent:<limetype>``."""
    prop = ctx.runtime.crm.number_property(limetype)
    if prop is not None and props.get(prop) in (None, ""):
        props[prop] = tx.next_number(f"parent:{limetype}")


def _note_incoming(tx: Tx, ctx: Processing, parsed: ParsedMessage,
                   conversation_id: int) -> None:
    """A person wrote: the conversation is unread until an agent answers or reads it."""
    note_unread(tx, ctx.runtime, conversation_id, _date(ctx, parsed))


def _parent_of(tx: Tx, ctx: Processing, parent_cfg: Any, conversation_id: int) -> int | None:
    if parent_cfg is None:
        return None
    conversation = tx.get(ctx.runtime.conversation.limetype, conversation_id)
    link = ctx.runtime.crm.parent_link(parent_cfg.limetype)
    return conversation.get(link) if conversation else None


def _create_message(tx: Tx, ctx: Processing, raw: RawMessage, parsed: ParsedMessage,
                    classification: Classification, conversation_id: int) -> int:
    mcfg, names = ctx.runtime.conversation_message, ctx.runtime.crm
    body = parsed.html if parsed.html else _text_as_html(parsed.text)
    props = {
        mcfg.relation_conversation: conversation_id,
        mcfg.property_message: body,
        mcfg.property_email_id: parsed.message_id,
        mcfg.property_unique_id: raw.source_key,
        mcfg.property_email_engine_id: engine_id(raw.source_key),
        mcfg.property_date: _date(ctx, parsed),
        mcfg.property_source: ctx.runtime.conversation.source_option,
        names.message_subject: parsed.subject,
        names.message_plaintext: parsed.text,
        names.message_from_address: parsed.from_.email if parsed.from_ else None,
        names.message_direction: "incoming",
        names.message_kind: classification.kind.value,
        names.message_rules: list(classification.rules),
        names.message_account: raw.account,
    }
    answered = replied_message(tx, ctx.runtime, parsed)
    if answered is not None:
        props[ctx.runtime.conversation.property_reply_to_id] = answered
    return tx.create(mcfg.limetype, props)


def engine_id(key: str) -> str:
    """The intake's own id of a message: its source key without intake and account.

    ``imap:support:INBOX:1700000:42`` gives ``INBOX:1700000:42`` (folder, UIDVALIDITY,
    UID), ``maildir:support:1700000.M1P2.host`` the Maildir file name, ``deliver:...`` the
    SHA-256 of the bytes. ``:`` inside a part stays escaped as in the source key.
    """
    parts = key.split(":", 2)
    return parts[2] if len(parts) == 3 else key


def _attach_files(tx: Tx, ctx: Processing, parent_cfg: ConversationParent | None,
                  parent_id: int | None, message_id: int, parsed: ParsedMessage) -> None:
    dcfg, ecfg = ctx.runtime.document, ctx.runtime.embedded_file
    for attachment in parsed.attachments:
        file_id = tx.put_file(attachment.data, attachment.filename, attachment.content_type)
        props = {
            dcfg.relation_conversation_message: message_id,
            dcfg.property_comment: attachment.filename,
            dcfg.property_type: dcfg.document_type,
            dcfg.property_document: file_id,
        }
        if parent_cfg is not None and parent_id is not None:
            props[parent_cfg.limetype] = parent_id
        document_id = tx.create(dcfg.limetype, props)
        if parent_cfg is not None and parent_id is not None:
            append_related(tx, parent_cfg.limetype, parent_id, parent_cfg.relation_document,
                           document_id)
    for image in parsed.inline_images:
        file_id = tx.put_file(image.data, image.filename, image.content_type)
        tx.create(ecfg.limetype, {
            ecfg.relation_conversation_message: message_id,
            ecfg.property_document: file_id,
            ctx.runtime.crm.embedded_file_content_id: image.content_id,
        })


def _store_raw(tx: Tx, ctx: Processing, raw: RawMessage, parsed: ParsedMessage,
               status: OutcomeStatus, *, reason: str | None = None,
               message_id: int | None = None, rules: tuple[str, ...] = (),
               keep_bytes: bool = True) -> Outcome:
    tx.add_raw(RawRecord(
        source_key=raw.source_key, account=raw.account,
        raw=raw.raw if keep_bytes else b"", status=status.value,
        message_id=parsed.message_id, sha256=parsed.sha256, error=reason,
        conversation_message_id=message_id, folder=raw.folder, received_at=raw.received_at))
    _checkpoint(tx, raw)
    if status is OutcomeStatus.DISCARDED:
        tx.add_event("message.discarded", raw.account, {"source_key": raw.source_key,
                                                        "reason": reason})
    return Outcome(raw.source_key, status, message_id, reason=reason, rules=rules)


def _checkpoint(tx: Tx, raw: RawMessage) -> None:
    if raw.checkpoint is not None:
        cp = raw.checkpoint
        tx.set_checkpoint(cp.account, cp.key, cp.value)


def _date(ctx: Processing, parsed: ParsedMessage) -> str:
    return (parsed.date or ctx.now()).isoformat()


def _text_as_html(text: str) -> str:
    return "<div>" + html.escape(text).replace("\n", "<br>\n") + "</div>"
