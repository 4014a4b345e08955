"""One copy: the message follower row, the signed Message-ID, the rendered bytes, the queue.

:func:`queue_one` does, for one recipient and inside the caller's transaction: create the
outgoing *message follower* row, sign a Message-ID that names it
(:func:`daemon.mail.ids.make_message_id`), thread the copy onto that follower's own last
message (In-Reply-To / References), render the account's template within
``max_outgoing_bytes`` and enqueue the bytes. The bytes are final here: the outbox actor
only ever sends what was stored.
"""

from __future__ import annotations

__all__ = ["KINDS", "REFERENCES_LIMIT", "queue_one"]

from typing import Any

from markupsafe import Markup

from daemon.mail.ids import body_marker, make_message_id
from daemon.outbox.compose import (
    Headers,
    Mailbox,
    OutgoingTooLarge,
    ThreadEntry,
    build_message,
    conversation_html,
    ensure_marker,
    merge_codes,
    render_html,
    render_text,
    text_to_html,
)
from daemon.outbox.content import Content, signature
from daemon.outbox.outgoing import Outgoing
from daemon.outbox.phrases import phrases_for
from daemon.outbox.recipients import Recipient
from daemon.store.base import Obj, OutboxItem, Tx

#: The kinds of mail, with the one-letter kind signed into their Message-IDs.
KINDS = {"reply": "r", "notification": "n", "auto_reply": "a"}
#: ``Auto-Submitted`` per kind (RFC 3834); a person's reply has none.
_AUTO_SUBMITTED = {"reply": None, "notification": "auto-generated",
                   "auto_reply": "auto-replied"}
#: At most this many ids in References: the thread's first, then the newest.
REFERENCES_LIMIT = 10


def queue_one(tx: Tx, out: Outgoing, kind: str, conversation: Obj, message_id: int,
               content: Content, recipient: Recipient, others: tuple[Mailbox, ...],
               followers: tuple[Mailbox, ...], *, status: str = "queued") -> int | None:
    rt, account = out.runtime, out.account
    mf = rt.message_follower
    in_reply_to, references = _thread_ids(tx, out, recipient.follower_id, conversation)
    mf_id = tx.create(mf.limetype, {
        mf.relation_follower: recipient.follower_id,
        mf.relation_conversation_message: message_id,
        mf.property_participation_level: "to",
        "direction": "outgoing",
        "kind": kind,
    })
    signed = make_message_id(out.secret, conversation_id=conversation.id,
                             message_follower_id=mf_id,
                             installation=out.config.daemon.installation_id,
                             domain=out.config.daemon.message_id_domain, kind=KINDS[kind])
    sender, reply_to = _sender(tx, out, kind, conversation, content.author)
    headers = Headers(
        sender=sender, reply_to=reply_to, recipient=recipient.mailbox,
        subject=content.subject, message_id=signed, in_reply_to=in_reply_to,
        references=references, date=out.now(), language=account.language,
        loop_token=out.config.daemon.installation_id, auto_submitted=_AUTO_SUBMITTED[kind])
    raw = _compose(tx, out, kind, content, headers, others, followers)
    if raw is None:
        tx.delete(mf.limetype, mf_id)
        tx.add_event("outbox.skipped", out.account_id, {
            "reason": "too large even without attachments", "recipient":
            recipient.mailbox.address, "conversationmessage": message_id})
        return None
    outbox_id = tx.enqueue(OutboxItem(
        account=out.account_id, recipient=recipient.mailbox.address, message_id=signed,
        raw=raw, kind=kind, status=status, message_follower_id=mf_id,
        conversation_message_id=message_id))
    tx.update(mf.limetype, mf_id, {mf.property_message_id: signed,
                                   mf.property_queue_id: outbox_id})
    return outbox_id


def _compose(tx: Tx, out: Outgoing, kind: str, content: Content, headers: Headers,
             others: tuple[Mailbox, ...], followers: tuple[Mailbox, ...]) -> bytes | None:
    """The message bytes within ``max_outgoing_bytes``; see :func:`queue_to_followers`."""
    limit = out.account.max_outgoing_bytes
    html = _render(tx, out, kind, content, headers, others, followers, note="")
    raw = build_message(headers, html, attachments=content.attachments, inline=content.inline)
    if len(raw) <= limit:
        return raw
    if kind == "reply":
        raise OutgoingTooLarge(len(raw), limit, account=out.account_id)
    names = ", ".join(a.filename for a in content.attachments)
    note = phrases_for(out.account.language).attachments_omitted.format(names=names)
    html = _render(tx, out, kind, content, headers, others, followers,
                   note=note if names else "")
    raw = build_message(headers, html)
    return raw if len(raw) <= limit else None


def _render(tx: Tx, out: Outgoing, kind: str, content: Content, headers: Headers,
            others: tuple[Mailbox, ...], followers: tuple[Mailbox, ...], *, note: str
            ) -> str:
    account = out.account
    context: dict[str, Any] = {
        **content.extra,
        **merge_codes(kind=kind, subject=content.topic, recipient=headers.recipient,
                      others=others, followers=followers, sender=content.author,
                      language=account.language),
    }
    thread = content.thread
    if content.auto_body is not None:
        body = text_to_html(render_text(content.auto_body, context)) + signature(account)
        thread = (ThreadEntry(content.author, headers.date, str(body), ours=True), *thread)
    context |= {
        "conversation_messages": conversation_html(
            thread, zone=account.zone, print_zone=account.print_timezone,
            language=account.language),
        "subject": headers.subject,
        "language": account.language,
        "account_name": account.name or "",
        "account_address": headers.sender.address,
        "note": note,
        "marker": Markup(body_marker(headers.message_id)),
    }
    assert out.templates is not None
    html, problem = render_html(out.templates, account.template, context)
    if problem is not None:
        tx.add_event("outbox.template_fallback", out.account_id,
                     {"template": account.template, "problem": problem})
    return ensure_marker(html, headers.message_id)


def _thread_ids(tx: Tx, out: Outgoing, follower_id: int, conversation: Obj
                ) -> tuple[str | None, tuple[str, ...]]:
    """In-Reply-To (the follower's last message) and References (the thread's first id,
    then the follower's messages, oldest first, at most :data:`REFERENCES_LIMIT`)."""
    mf = out.runtime.message_follower
    seen = [str(row.get(mf.property_message_id))
            for row in tx.find(mf.limetype, {mf.relation_follower: follower_id})
            if row.get(mf.property_message_id)]
    root = conversation.get(out.runtime.conversation.property_thread_id)
    chain = list(dict.fromkeys(([str(root)] if root else []) + seen))
    if len(chain) > REFERENCES_LIMIT:
        chain = chain[:1] + chain[-(REFERENCES_LIMIT - 1):]
    last = seen[-1] if seen else (str(root) if root else None)
    return last, tuple(chain)


def _sender(tx: Tx, out: Outgoing, kind: str, conversation: Obj, author: Mailbox
            ) -> tuple[Mailbox, Mailbox]:
    """From and Reply-To: the account (or the alias written to), personalised for agents."""
    account = out.account
    address = _addressed_alias(tx, out, conversation.id) or account.email
    team = account.name or ""
    name = team
    if kind == "reply" and out.runtime.personalized_emails and author.name:
        name = f"{author.name} - {team}" if team else author.name
    return Mailbox(address, name), Mailbox(address, team)


def _addressed_alias(tx: Tx, out: Outgoing, conversation_id: int) -> str | None:
    """With ``reply_from_alias``, the alias the conversation's first mail was sent to."""
    account = out.account
    if not account.reply_from_alias or not account.aliases:
        return None
    cm = out.runtime.conversation_message
    aliases: dict[str, str] = {a.lower(): a for a in account.aliases}
    for m in tx.find(cm.limetype, {cm.relation_conversation: conversation_id}, limit=5):
        key = m.get(cm.property_unique_id)
        raw = tx.get_raw(str(key)) if key else None
        if raw is None or not raw.raw:
            continue
        for address in _addressed_to(raw.raw):
            if address in aliases:
                return aliases[address]
    return None


def _addressed_to(raw: bytes) -> list[str]:
    from email.parser import BytesHeaderParser
    from email.utils import getaddresses

    headers = BytesHeaderParser().parsebytes(raw)
    values = [str(v) for name in ("To", "Cc", "Delivered-To") for v in
              headers.get_all(name, [])]
    return [address.lower() for _, address in getaddresses(values) if address]
