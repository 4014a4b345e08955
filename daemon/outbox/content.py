"""What every copy of one message shares: subject, author, quoted thread, files, merge codes.

:func:`content_for` reads the conversation, its message and its earlier messages inside
the caller's transaction and returns a :class:`Content`; :mod:`daemon.outbox.copies`
renders it once per recipient. :class:`StoreObject` gives templates read-only access to
the conversation and its parent (``{{helpdesk.company.name}}``).
"""

from __future__ import annotations

__all__ = ["Content", "StoreObject", "content_for", "signature"]

import re
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from markupsafe import Markup

from daemon.crm.identify import SUBJECT_TAG, conversation_tag
from daemon.outbox.compose import FilePart, Mailbox, ThreadEntry, render_text, text_to_html
from daemon.outbox.outgoing import Outgoing
from daemon.outbox.recipients import Recipient
from daemon.store.base import Obj, Tx

#: Message kinds (set by the importer) that never appear in the quoted history.
_NOT_HISTORY = frozenset({"automatic", "bounce", "own"})
_PREFIX = re.compile(r"^\s*(?:(?:re|sv|aw|antw|vs|fw|fwd)\s*(?:\[\d+\])?\s*:\s*)+", re.I)


class StoreObject:
    """A read-only view of a stored object for merge codes: ``{{helpdesk.company.name}}``.

    A property holding an integer that is the id of an object of the limetype named like
    the property (``company``, ``person``) is followed to that object, up to three steps.
    Anything else is the stored value; a missing property renders empty.
    """

    __slots__ = ("_depth", "_obj", "_tx")

    def __init__(self, tx: Tx, obj: Obj, depth: int = 0) -> None:
        self._tx = tx
        self._obj = obj
        self._depth = depth

    def __getitem__(self, name: str) -> Any:
        if name == "id":
            return self._obj.id
        if name not in self._obj.props:
            raise KeyError(name)
        value = self._obj.props[name]
        if type(value) is int and self._depth < 3 and re.fullmatch(r"[A-Za-z0-9_]+", name):
            related = self._tx.get(name, value)
            if related is not None:
                return StoreObject(self._tx, related, self._depth + 1)
        return value

    def __str__(self) -> str:
        return str(self._obj.props.get("name") or self._obj.id)


@dataclass(frozen=True, slots=True)
class Content:
    """What every copy of one message shares."""

    subject: str
    topic: str
    author: Mailbox
    thread: tuple[ThreadEntry, ...]
    attachments: tuple[FilePart, ...]
    inline: tuple[FilePart, ...]
    extra: dict[str, Any]
    auto_body: str | None = None


def content_for(tx: Tx, out: Outgoing, kind: str, conversation: Obj, message: Obj,
                followers: list[Recipient]) -> Content:
    rt, account = out.runtime, out.account
    cm = rt.conversation_message
    names = rt.crm
    base = str(conversation.get(rt.conversation.property_subject)
               or message.get(names.message_subject) or "")
    topic = " ".join(SUBJECT_TAG.sub("", _PREFIX.sub("", base)).split())
    known = {f.mailbox.address: f.mailbox.name for f in followers}
    history = _history(tx, out, conversation.id, message.id, known,
                       include_current=kind == "auto_reply")
    store_context = _store_context(tx, out, conversation)
    tag = conversation_tag(tx, rt, conversation)
    if kind == "auto_reply":
        author = Mailbox(account.email, account.name or "")
        subject = render_text(account.auto_reply.subject, store_context).strip()
        return Content(_subject(out, tag, subject or base, reply=not subject),
                        topic, author, tuple(history), (), (), store_context,
                        auto_body=account.auto_reply.body)
    address = str(message.get(names.message_from_address) or "").lower()
    author = Mailbox(address, str(message.get(names.message_from_name)
                                  or known.get(address, "")))
    html = str(message.get(cm.property_message) or "")
    if kind == "reply":
        html += str(signature(account))
    current = ThreadEntry(author, _date(message.get(cm.property_date)), html,
                          ours=message.get(names.message_direction) == "outgoing")
    attachments, inline = _files(tx, out, message.id)
    return Content(_subject(out, tag, base, reply=True), topic, author,
                    (current, *history), attachments, inline, store_context)


def _history(tx: Tx, out: Outgoing, conversation_id: int, message_id: int,
             names: dict[str, str], *, include_current: bool) -> list[ThreadEntry]:
    """Earlier messages of the conversation, newest first, people's mail only."""
    cm, crm = out.runtime.conversation_message, out.runtime.crm
    entries = []
    for m in tx.find(cm.limetype, {cm.relation_conversation: conversation_id},
                     newest_first=True):
        if m.id > message_id or (m.id == message_id and not include_current):
            continue
        if m.get(crm.message_kind) in _NOT_HISTORY:
            continue
        address = str(m.get(crm.message_from_address) or "").lower()
        sender = Mailbox(address, str(m.get(crm.message_from_name)
                                      or names.get(address, "")))
        entries.append(ThreadEntry(sender, _date(m.get(cm.property_date)),
                                   str(m.get(cm.property_message) or ""),
                                   ours=m.get(crm.message_direction) == "outgoing"))
    return entries


def _files(tx: Tx, out: Outgoing, message_id: int
           ) -> tuple[tuple[FilePart, ...], tuple[FilePart, ...]]:
    """The message's documents (attachments) and embedded files (inline images)."""
    dcfg, ecfg = out.runtime.document, out.runtime.embedded_file
    attachments = []
    for doc in tx.find(dcfg.limetype, {dcfg.relation_conversation_message: message_id}):
        stored = _file(tx, doc.get(dcfg.property_document))
        if stored is not None:
            attachments.append(FilePart(stored.filename, stored.content_type, stored.data))
    inline = []
    for emb in tx.find(ecfg.limetype, {ecfg.relation_conversation_message: message_id}):
        stored = _file(tx, emb.get(ecfg.property_document))
        content_id = emb.get(out.runtime.crm.embedded_file_content_id)
        if stored is not None and content_id:
            inline.append(FilePart(stored.filename, stored.content_type, stored.data,
                                   content_id=str(content_id)))
    return tuple(attachments), tuple(inline)


def _file(tx: Tx, file_id: Any) -> Any:
    return tx.get_file(file_id) if type(file_id) is int else None


def _store_context(tx: Tx, out: Outgoing, conversation: Obj) -> dict[str, Any]:
    """``{<parent limetype>: view, "conversation": view}`` for merge codes."""
    context: dict[str, Any] = {"conversation": StoreObject(tx, conversation)}
    for parent in out.runtime.conversation_parents:
        parent_id = conversation.get(out.runtime.crm.parent_link(parent.limetype))
        if type(parent_id) is int:
            found = tx.get(parent.limetype, parent_id)
            if found is not None:
                context.setdefault(parent.limetype, StoreObject(tx, found))
    return context


def _subject(out: Outgoing, tag: str, base: str, *, reply: bool) -> str:
    """``Re: <subject>``, with the ``[#number]`` tag when the subject method is on."""
    subject = " ".join(base.split())
    if reply:
        subject = "Re: " + _PREFIX.sub("", subject)
    tagged = any(m.group(0) == tag for m in SUBJECT_TAG.finditer(subject))
    if "subject" in out.runtime.identification_methods and not tagged:
        subject = f"{subject} {tag}"
    return subject


def signature(account: Any) -> Markup:
    if not account.signature.strip():
        return Markup("")
    return Markup('<div class="postroom-signature" style="margin:16px 0 0 0;">{}</div>'
                  ).format(text_to_html(account.signature))


def _date(value: Any) -> datetime | None:
    if isinstance(value, datetime):
        return value
    try:
        parsed = datetime.fromisoformat(str(value))
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)
