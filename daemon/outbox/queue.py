"""Queueing hub mail: one composed email per follower, durably, inside the caller's transaction.

The hub model (the reference's "conversation" with followers): whoever writes into a
conversation, every other active, subscribed follower gets a copy from the account's
address, so the conversation stays one thread for everyone. :func:`queue_to_followers` is
the one entry point, called inside a store transaction:

* by the API, for an agent's reply (``kind="reply"``, :mod:`daemon.outbox.reply`);
* by the importer, for a hub notification when a follower wrote (``"notification"``) and
  for the automatic reply to a new conversation (``"auto_reply"``).

For each recipient it creates the outgoing *message follower* row, signs a Message-ID
that names that row (:func:`daemon.mail.ids.make_message_id`), threads the copy onto that
follower's own last message (In-Reply-To / References), renders the account's template,
builds the complete RFC 5322 bytes and enqueues them. The bytes are final at this point:
the outbox actor only ever sends what was stored, so a retry after a crash or restart
sends the identical message with the identical Message-ID, and a bounce or an answer
finds its way back to the row through that id. Because everything happens in the
caller's transaction, mail is queued exactly when the message it belongs to is committed.

Who receives a copy (in this order of rules):

1. followers of the conversation that are active and subscribed;
2. never one of our own addresses or aliases (any account's);
3. never the author (``author_email``), except for the automatic reply;
4. for a notification, not a follower who got the incoming mail directly (they were in
   its To or Cc: a second copy would be a duplicate);
5. for a notification, only followers a coworker vouched for
   (:func:`daemon.crm.followers.is_vouched`, with the account's ``notify_known_people``):
   an address that merely appeared in a stranger's To or Cc gets nothing until an agent
   answers; an agent's reply goes to every follower and vouches for them;
6. only addresses in ``only`` when it is given.

Automatic mail (notifications and automatic replies) counts against the account's
sliding-hour budget (:mod:`daemon.outbox.budget`); copies beyond it are queued ``held``.
"""

from __future__ import annotations

__all__ = [
    "KINDS",
    "REFERENCES_LIMIT",
    "Outgoing",
    "StoreObject",
    "mail_queuer",
    "queue_to_followers",
]

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import jinja2
from markupsafe import Markup

from daemon.crm.followers import is_vouched, vouch
from daemon.crm.identify import SUBJECT_TAG, subject_tag
from daemon.mail.ids import body_marker, make_message_id
from daemon.outbox.budget import HELD, take_automatic_mail_budget
from daemon.outbox.compose import (
    FilePart,
    Headers,
    Mailbox,
    OutgoingTooLarge,
    ThreadEntry,
    build_message,
    conversation_html,
    ensure_marker,
    environment_for,
    merge_codes,
    render_html,
    render_text,
    text_to_html,
)
from daemon.outbox.phrases import phrases_for
from daemon.store.base import Obj, OutboxItem, StoredFile, Tx

if TYPE_CHECKING:
    from daemon.config import Account, Config, RuntimeConfig

#: The kinds of mail, with the one-letter kind signed into their Message-IDs.
KINDS = {"reply": "r", "notification": "n", "auto_reply": "a"}
#: ``Auto-Submitted`` per kind (RFC 3834); a person's reply has none.
_AUTO_SUBMITTED = {"reply": None, "notification": "auto-generated",
                   "auto_reply": "auto-replied"}
#: At most this many ids in References: the thread's first, then the newest.
REFERENCES_LIMIT = 10
#: Message kinds (set by the importer) that never appear in the quoted history.
_NOT_HISTORY = frozenset({"automatic", "bounce", "own"})
_PREFIX = re.compile(r"^\s*(?:(?:re|sv|aw|antw|vs|fw|fwd)\s*(?:\[\d+\])?\s*:\s*)+", re.I)


def _utcnow() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True)
class Outgoing:
    """Everything composing mail for one account needs that is not in the store.

    Build it with :meth:`from_config`; the processor and the API keep one per account.

    Attributes:
        config: the whole :class:`~daemon.config.Config` (accounts, runtime, daemon).
        secret: the installation's key (:func:`daemon.config.load_secret_key`), which
            signs Message-IDs.
        account_id: the sending account.
        now: the clock for the Date header (tests pass a fixed one).
        templates: the template environment; by default the one for ``config.base_dir``.
    """

    config: Config
    secret: bytes = field(repr=False)
    account_id: str
    now: Callable[[], datetime] = _utcnow
    templates: jinja2.Environment | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        if self.templates is None:
            object.__setattr__(self, "templates",
                               environment_for(self.config))

    @classmethod
    def from_config(cls, config: Config, secret: bytes, account_id: str, *,
                    now: Callable[[], datetime] | None = None) -> Outgoing:
        """The composer for ``account_id``.

        Raises:
            KeyError: no such account.
            ValueError: ``secret`` is shorter than 16 bytes.
        """
        config.account(account_id)
        if len(secret) < 16:
            raise ValueError("secret: at least 16 bytes are required")
        return cls(config=config, secret=secret, account_id=account_id, now=now or _utcnow,
                   templates=environment_for(config))

    @property
    def account(self) -> Account:
        return self.config.account(self.account_id)

    @property
    def runtime(self) -> RuntimeConfig:
        return self.config.runtime

    @property
    def own_addresses(self) -> frozenset[str]:
        """Every account's address and aliases, lower-cased."""
        return frozenset(a for account in self.config.accounts for a in account.addresses)


def mail_queuer(config: Config, secret: bytes, *, now: Callable[[], datetime] | None = None
                ) -> Callable[..., list[int]]:
    """``queue_mail(tx, account_id, **kwargs)`` for the importer's ``Processing.queue_mail``.

    Keeps one :class:`Outgoing` per account and passes ``kwargs`` on to
    :func:`queue_to_followers`.
    """
    composers: dict[str, Outgoing] = {}

    def queue_mail(tx: Tx, account_id: str, **kwargs: Any) -> list[int]:
        out = composers.get(account_id)
        if out is None:
            out = composers[account_id] = Outgoing.from_config(config, secret, account_id,
                                                               now=now)
        return queue_to_followers(tx, out, **kwargs)

    return queue_mail


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
class _Recipient:
    follower_id: int
    mailbox: Mailbox
    follower: Obj


@dataclass(frozen=True, slots=True)
class _Content:
    """What every copy of one message shares."""

    subject: str
    topic: str
    author: Mailbox
    thread: tuple[ThreadEntry, ...]
    attachments: tuple[FilePart, ...]
    inline: tuple[FilePart, ...]
    extra: dict[str, Any]
    auto_body: str | None = None


def queue_to_followers(tx: Tx, out: Outgoing, *, conversation_id: int,
                       conversation_message_id: int, kind: str, author_email: str | None,
                       only: frozenset[str] | None = None) -> list[int]:
    """Compose and enqueue one email per active, subscribed follower of the conversation.

    Leaves out the author and our own addresses and aliases (see the module docstring for
    every rule); ``only`` restricts the recipients further (the automatic reply goes to its
    sender only). Creates the outgoing message follower rows
    (``participationlevel`` ``to``, ``direction`` ``outgoing``, ``kind``) with their
    ``messageid`` and ``queueid``. Runs inside the caller's transaction; does no I/O
    besides the store.

    Args:
        tx: the open transaction.
        out: the account's composer.
        conversation_id: the conversation.
        conversation_message_id: the message this mail carries (the agent's reply, the
            follower's incoming message) or answers (the automatic reply).
        kind: ``reply`` (an agent), ``notification`` (another follower wrote) or
            ``auto_reply``.
        author_email: who wrote the message; never gets a copy (ignored for
            ``auto_reply``).
        only: when given, the addresses (any case) that may receive a copy.

    Returns:
        The outbox ids, in follower order (any ``held`` ones last); empty when nobody
        is to receive a copy.

    Raises:
        ValueError: an unknown ``kind``, or no such conversation or message.
        OutgoingTooLarge: an agent's reply is larger than ``max_outgoing_bytes`` (nothing
            is queued if the caller lets the transaction roll back). Automatic mail that
            is too large is sent without its attachments, or, if still too large, not at
            all (event ``outbox.skipped``).
    """
    if kind not in KINDS:
        raise ValueError(f"kind: must be one of {', '.join(KINDS)}, not {kind!r}")
    rt = out.runtime
    conversation = _require(tx, rt.conversation.limetype, conversation_id, "conversation_id")
    message = _require(tx, rt.conversation_message.limetype, conversation_message_id,
                       "conversation_message_id")
    followers = _active_followers(tx, out, conversation_id)
    recipients = _recipients(tx, out, followers, kind=kind, author_email=author_email,
                             only=only, message_id=conversation_message_id)
    if not recipients:
        return []
    if kind == "reply":
        vouch(tx, rt, [r.follower for r in recipients])
    content = _content(tx, out, kind, conversation, message, followers)
    budget = (len(recipients) if kind == "reply" else
              take_automatic_mail_budget(tx, out.account, out.now(), len(recipients)))
    ids: list[int] = []
    held: list[int] = []
    for n, recipient in enumerate(recipients):
        others = tuple(r.mailbox for r in recipients if r is not recipient)
        queued = _queue_one(tx, out, kind, conversation, message.id, content, recipient,
                            others, tuple(f.mailbox for f in followers),
                            status="queued" if n < budget else HELD)
        if queued is not None:
            (ids if n < budget else held).append(queued)
    if ids:
        tx.add_event("outbox.queued", out.account_id, {
            "kind": kind, "conversation": conversation_id,
            "conversationmessage": conversation_message_id, "outbox": ids})
    if held:
        tx.add_event("outbox.held", out.account_id, {
            "kind": kind, "conversation": conversation_id,
            "conversationmessage": conversation_message_id, "outbox": held,
            "reason": "automatic_mail_per_hour reached"})
    return ids + held


# -- who ---------------------------------------------------------------------------------


def _require(tx: Tx, limetype: str, id: int, name: str) -> Obj:
    obj = tx.get(limetype, id)
    if obj is None:
        raise ValueError(f"{name}: no {limetype} with id {id}")
    return obj


def _active_followers(tx: Tx, out: Outgoing, conversation_id: int) -> list[_Recipient]:
    """Active followers that are not us, in follower order, each address once."""
    fcfg = out.runtime.follower
    ours = out.own_addresses
    result: dict[str, _Recipient] = {}
    for follower in tx.find(fcfg.limetype, {fcfg.relation_conversation: conversation_id}):
        address = str(follower.get(fcfg.property_address) or "").strip().lower()
        if not address or address in ours or follower.get(fcfg.property_active) is False:
            continue
        if follower.get(fcfg.property_subscribed) is False:
            continue
        name = str(follower.get(fcfg.property_name) or "")
        result.setdefault(address, _Recipient(follower.id, Mailbox(address, name), follower))
    return list(result.values())


def _recipients(tx: Tx, out: Outgoing, followers: list[_Recipient], *, kind: str,
                author_email: str | None, only: frozenset[str] | None, message_id: int
                ) -> list[_Recipient]:
    author = (author_email or "").strip().lower() if kind != "auto_reply" else ""
    allowed = None if only is None else {a.strip().lower() for a in only}
    notification = kind == "notification"
    direct = _direct_recipients(tx, out, message_id) if notification else set()
    known = out.account.notify_known_people
    return [f for f in followers
            if f.mailbox.address != author
            and (allowed is None or f.mailbox.address in allowed)
            and f.follower_id not in direct
            and (not notification or is_vouched(f.follower, known_people=known))]


def _direct_recipients(tx: Tx, out: Outgoing, message_id: int) -> set[int]:
    """Followers who were in the To or Cc of the incoming message itself."""
    mf = out.runtime.message_follower
    rows = tx.find(mf.limetype, {mf.relation_conversation_message: message_id})
    return {row.get(mf.relation_follower) for row in rows
            if row.get(mf.property_participation_level) in ("to", "cc")
            and row.get("direction") != "outgoing"}


# -- what --------------------------------------------------------------------------------


def _content(tx: Tx, out: Outgoing, kind: str, conversation: Obj, message: Obj,
             followers: list[_Recipient]) -> _Content:
    rt, account = out.runtime, out.account
    cm = rt.conversation_message
    base = str(conversation.get(rt.conversation.property_subject) or message.get("subject")
               or "")
    topic = " ".join(SUBJECT_TAG.sub("", _PREFIX.sub("", base)).split())
    names = {f.mailbox.address: f.mailbox.name for f in followers}
    history = _history(tx, out, conversation.id, message.id, names,
                       include_current=kind == "auto_reply")
    store_context = _store_context(tx, out, conversation)
    if kind == "auto_reply":
        author = Mailbox(account.email, account.name or "")
        subject = render_text(account.auto_reply.subject, store_context).strip()
        return _Content(_subject(out, conversation.id, subject or base, reply=not subject),
                        topic, author, tuple(history), (), (), store_context,
                        auto_body=account.auto_reply.body)
    address = str(message.get("fromaddress") or "").lower()
    author = Mailbox(address, str(message.get("fromname") or names.get(address, "")))
    html = str(message.get(cm.property_message) or "")
    if kind == "reply":
        html += str(_signature(account))
    current = ThreadEntry(author, _date(message.get(cm.property_date)), html,
                          ours=message.get("direction") == "outgoing")
    attachments, inline = _files(tx, out, message.id)
    return _Content(_subject(out, conversation.id, base, reply=True), topic, author,
                    (current, *history), attachments, inline, store_context)


def _history(tx: Tx, out: Outgoing, conversation_id: int, message_id: int,
             names: dict[str, str], *, include_current: bool) -> list[ThreadEntry]:
    """Earlier messages of the conversation, newest first, people's mail only."""
    cm = out.runtime.conversation_message
    entries = []
    for m in tx.find(cm.limetype, {cm.relation_conversation: conversation_id},
                     newest_first=True):
        if m.id > message_id or (m.id == message_id and not include_current):
            continue
        if m.get("kind") in _NOT_HISTORY:
            continue
        address = str(m.get("fromaddress") or "").lower()
        sender = Mailbox(address, str(m.get("fromname") or names.get(address, "")))
        entries.append(ThreadEntry(sender, _date(m.get(cm.property_date)),
                                   str(m.get(cm.property_message) or ""),
                                   ours=m.get("direction") == "outgoing"))
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
        if stored is not None and emb.get("contentid"):
            inline.append(FilePart(stored.filename, stored.content_type, stored.data,
                                   content_id=str(emb.get("contentid"))))
    return tuple(attachments), tuple(inline)


def _file(tx: Tx, file_id: object) -> StoredFile | None:
    return tx.get_file(file_id) if type(file_id) is int else None


def _store_context(tx: Tx, out: Outgoing, conversation: Obj) -> dict[str, Any]:
    """``{<parent limetype>: view, "conversation": view}`` for merge codes."""
    context: dict[str, Any] = {"conversation": StoreObject(tx, conversation)}
    for parent in out.runtime.conversation_parents:
        parent_id = conversation.get(parent.limetype)
        if type(parent_id) is int:
            found = tx.get(parent.limetype, parent_id)
            if found is not None:
                context.setdefault(parent.limetype, StoreObject(tx, found))
    return context


def _subject(out: Outgoing, conversation_id: int, base: str, *, reply: bool) -> str:
    """``Re: <subject>``, with the ``[#id]`` tag when the subject method is on."""
    subject = " ".join(base.split())
    if reply:
        subject = "Re: " + _PREFIX.sub("", subject)
    if "subject" in out.runtime.identification_methods:
        tag = subject_tag(conversation_id)
        if not any(m.group(0) == tag for m in SUBJECT_TAG.finditer(subject)):
            subject = f"{subject} {tag}"
    return subject


def _signature(account: Account) -> Markup:
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


# -- one copy ----------------------------------------------------------------------------


def _queue_one(tx: Tx, out: Outgoing, kind: str, conversation: Obj, message_id: int,
               content: _Content, recipient: _Recipient, others: tuple[Mailbox, ...],
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


def _compose(tx: Tx, out: Outgoing, kind: str, content: _Content, headers: Headers,
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


def _render(tx: Tx, out: Outgoing, kind: str, content: _Content, headers: Headers,
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
        body = text_to_html(render_text(content.auto_body, context)) + _signature(account)
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
    aliases = {a.lower(): a for a in account.aliases}
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
