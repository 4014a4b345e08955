"""An agent's reply from the API: checked, stored as a message, queued to every follower.

:func:`queue_reply` is one store transaction. It refuses (:class:`ReplyRefused`, with the
HTTP status that fits) before anything is written when the conversation or coworker does
not exist, the coworker's groups may not use the account, an attachment or text snippet
does not exist, or nobody would receive the mail. Otherwise it writes:

1. the ``conversationmessage`` (``direction`` ``outgoing``, ``kind`` ``reply``, the
   sanitised HTML, its plain text, the author, the account);
2. a ``document`` per attachment, linked to the message (and the parent);
3. the author as a follower of the conversation (so they hear about answers), with a
   ``from`` message follower;
4. the text snippets' usage (``count`` + 1, ``lastused``);
5. one composed copy per follower (:func:`daemon.outbox.queue.queue_to_followers`),
   which marks each of them vouched for: from now on they also get hub notifications —
   which raises :class:`~daemon.outbox.compose.OutgoingTooLarge` for a reply above the
   account's ``max_outgoing_bytes``, rolling all of it back.

Coworker groups: the coworker object's ``groups`` property (``[crm] coworker_groups``; a
list of names, or one comma-separated string) must share a name with the account's
``groups``. An account with no ``groups`` may be used by every coworker.
"""

from __future__ import annotations

__all__ = [
    "COWORKER",
    "COWORKER_GROUPS",
    "ReplyRefused",
    "ReplyRequest",
    "ReplyResult",
    "conversation_account",
    "conversation_parent",
    "offered_actions",
    "queue_reply",
]

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from daemon.crm.followers import Participant, add_followers
from daemon.crm.relations import append_related
from daemon.crm.unread import mark_read
from daemon.mail.html import html_to_text, sanitize_html
from daemon.outbox.queue import Outgoing, queue_to_followers
from daemon.store.base import Obj, Tx

if TYPE_CHECKING:
    from daemon.config import RuntimeConfig
    from daemon.config.runtime import SendMessageAction

#: The limetype of agents, and the default property listing a coworker's user groups
#: (``[crm] coworker_groups``).
COWORKER = "coworker"
COWORKER_GROUPS = "groups"


class ReplyRefused(ValueError):
    """The reply cannot be sent as asked. ``status`` is the HTTP status that fits."""

    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.status = status


@dataclass(frozen=True)
class ReplyRequest:
    """What ``POST /api/v1/conversations/<id>/messages`` asks for.

    Attributes:
        conversation_id: the conversation answered.
        coworker_id: the agent writing (a ``coworker`` object).
        html: the body as HTML (sanitised before it is stored or sent).
        account: the sending account; None means the conversation's own account.
        attachments: ids of stored files (``POST /api/v1/files``).
        text_snippets: ids of the text snippets used in the body.
        action: the ``id`` of one of the parent's ``sendMessageActions``, run afterwards.
    """

    conversation_id: int
    coworker_id: int
    html: str
    account: str | None = None
    attachments: tuple[int, ...] = ()
    text_snippets: tuple[int, ...] = ()
    action: str | None = None

    @classmethod
    def from_json(cls, conversation_id: int, data: Any) -> ReplyRequest:
        """Validate the JSON body.

        Raises:
            ReplyRefused: (400) naming the first field that is wrong.
        """
        if not isinstance(data, dict):
            raise ReplyRefused("the body must be a JSON object")
        known = {"coworker", "html", "account", "attachments", "textSnippets",
                 "sendMessageAction"}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ReplyRefused(f"unknown field(s): {', '.join(unknown)}; allowed: "
                               f"{', '.join(sorted(known))}")
        html = data.get("html")
        if not isinstance(html, str) or not html.strip():
            raise ReplyRefused("html: required, a non-empty string")
        account, action = data.get("account"), data.get("sendMessageAction")
        if account is not None and not isinstance(account, str):
            raise ReplyRefused("account: must be an account id (a string)")
        if action is not None and not isinstance(action, str):
            raise ReplyRefused("sendMessageAction: must be an action id (a string)")
        return cls(conversation_id=conversation_id,
                   coworker_id=_id(data.get("coworker"), "coworker"), html=html,
                   account=account, attachments=_ids(data.get("attachments"), "attachments"),
                   text_snippets=_ids(data.get("textSnippets"), "textSnippets"),
                   action=action)


def _id(value: Any, name: str) -> int:
    if type(value) is not int or value < 0:
        raise ReplyRefused(f"{name}: required, an object id (a whole number)")
    return value


def _ids(value: Any, name: str) -> tuple[int, ...]:
    if value is None:
        return ()
    if not isinstance(value, list) or any(type(v) is not int for v in value):
        raise ReplyRefused(f"{name}: must be a list of ids (whole numbers)")
    return tuple(dict.fromkeys(value))


@dataclass(frozen=True)
class ReplyResult:
    """What was stored and queued."""

    conversation_id: int
    conversation_message_id: int
    outbox_ids: tuple[int, ...]
    recipients: tuple[str, ...]
    account: str
    parent_limetype: str | None
    parent_id: int | None


def conversation_account(tx: Tx, runtime: RuntimeConfig, conversation_id: int) -> str | None:
    """The account the conversation's mail arrived at (its first message that says so)."""
    cm = runtime.conversation_message
    for message in tx.find(cm.limetype, {cm.relation_conversation: conversation_id}):
        if message.get(runtime.crm.message_account):
            return str(message.get(runtime.crm.message_account))
    return None


def conversation_parent(runtime: RuntimeConfig, conversation: Obj) -> tuple[str | None, int | None]:
    """``(limetype, id)`` of the object the conversation hangs off, or ``(None, None)``."""
    for parent in runtime.conversation_parents:
        parent_id = conversation.get(runtime.crm.parent_link(parent.limetype))
        if type(parent_id) is int:
            return parent.limetype, parent_id
    return None, None


def offered_actions(runtime: RuntimeConfig, account_id: str
                    ) -> tuple[SendMessageAction, ...]:
    """The ``sendMessageActions`` an agent may choose when sending from ``account_id``.

    None when the account serves conversation parents of different limetypes (the
    reference: "Message actions will not be shown if the same account is used on
    multiple Conversation parents with different Limetypes").
    """
    serving = [p for p in runtime.conversation_parents
               if account_id in p.accounts or not p.accounts]
    chosen = runtime.parent_for(account_id)
    if chosen is not None and chosen not in serving:
        serving.append(chosen)
    if len({p.limetype for p in serving}) != 1:
        return ()
    actions: dict[str, SendMessageAction] = {}
    for parent in serving:
        for action in parent.send_message_actions:
            actions.setdefault(action.action.id, action)
    return tuple(actions.values())


def queue_reply(tx: Tx, out: Outgoing, request: ReplyRequest) -> ReplyResult:
    """Store the agent's reply and queue it to every follower (see the module docstring).

    Raises:
        ReplyRefused: nothing was written (404 conversation, 403 groups, 409 account
            disabled, 400 otherwise).
        OutgoingTooLarge: the reply is above ``max_outgoing_bytes``; let the transaction
            roll back.
    """
    rt = out.runtime
    if not out.account.enabled:
        raise ReplyRefused(f"account {out.account_id!r} is disabled (enabled = false): "
                           "it sends nothing", 409)
    conversation = tx.get(rt.conversation.limetype, request.conversation_id)
    if conversation is None:
        raise ReplyRefused(f"no conversation with id {request.conversation_id}", 404)
    author = _coworker(tx, out, request.coworker_id)
    _check_files(tx, request.attachments)
    snippets = _snippets(tx, rt, request.text_snippets)
    parent_limetype, parent_id = conversation_parent(rt, conversation)
    html = sanitize_html(request.html)
    message_id = _create_message(tx, out, conversation, author, request.coworker_id, html)
    _attach(tx, rt, message_id, request.attachments, parent_limetype, parent_id)
    add_followers(tx, rt, conversation.id, message_id, None, [author], vouched=True)
    _count_use(tx, rt, snippets, out.now().isoformat())
    mark_read(tx, rt, conversation.id)
    ids = queue_to_followers(tx, out, conversation_id=conversation.id,
                             conversation_message_id=message_id, kind="reply",
                             author_email=author.email)
    if not ids:
        raise ReplyRefused("the conversation has no active, subscribed followers besides "
                           "the author: nobody would receive this reply", 422)
    tx.add_event("message.sent", out.account_id, {
        "conversation": conversation.id, "conversationmessage": message_id,
        "coworker": request.coworker_id, "outbox": ids})
    recipients = tuple(item.recipient for i in ids if (item := tx.get_outbox(i)) is not None)
    return ReplyResult(conversation.id, message_id, tuple(ids), recipients, out.account_id,
                       parent_limetype, parent_id)


def _coworker(tx: Tx, out: Outgoing, coworker_id: int) -> Participant:
    """The author as a participant, after the group check."""
    coworker = tx.get(COWORKER, coworker_id)
    if coworker is None:
        raise ReplyRefused(f"no coworker with id {coworker_id}")
    names = next(((p.property_address, p.property_name) for p in out.runtime.follower_parents
                  if p.limetype == COWORKER), ("email", "name"))
    email = str(coworker.get(names[0]) or "").strip().lower()
    if not email:
        raise ReplyRefused(f"coworker {coworker_id} has no email address")
    allowed = set(out.account.groups)
    groups = _groups(coworker.get(out.runtime.crm.coworker_groups))
    if allowed and not allowed & groups:
        raise ReplyRefused(
            f"coworker {coworker_id} (groups: {', '.join(sorted(groups)) or 'none'}) may "
            f"not send from account {out.account_id!r} (groups: "
            f"{', '.join(sorted(allowed))})", 403)
    return Participant(email, str(coworker.get(names[1]) or ""), "from")


def _groups(value: Any) -> set[str]:
    if isinstance(value, str):
        return {g.strip() for g in value.split(",") if g.strip()}
    if isinstance(value, list):
        return {str(g).strip() for g in value if str(g).strip()}
    return set()


def _check_files(tx: Tx, file_ids: tuple[int, ...]) -> None:
    missing = [str(f) for f in file_ids if tx.get_file(f) is None]
    if missing:
        raise ReplyRefused(f"attachments: no stored file with id {', '.join(missing)}")


def _snippets(tx: Tx, runtime: RuntimeConfig, ids: tuple[int, ...]) -> list[Obj]:
    limetype = runtime.text_snippet.limetype
    found = [(i, tx.get(limetype, i)) for i in ids]
    missing = [str(i) for i, obj in found if obj is None]
    if missing:
        raise ReplyRefused(f"textSnippets: no text snippet with id {', '.join(missing)}")
    return [obj for _, obj in found if obj is not None]


def _create_message(tx: Tx, out: Outgoing, conversation: Obj, author: Participant,
                    coworker_id: int, html: str) -> int:
    rt = out.runtime
    cm = rt.conversation_message
    names = rt.crm
    subject = str(conversation.get(rt.conversation.property_subject) or "")
    return tx.create(cm.limetype, {
        cm.relation_conversation: conversation.id,
        cm.property_message: html,
        cm.property_date: out.now().isoformat(),
        cm.property_source: rt.conversation.source_option,
        names.message_subject: subject,
        names.message_plaintext: html_to_text(html),
        names.message_from_address: author.email,
        names.message_from_name: author.name,
        names.message_direction: "outgoing",
        names.message_kind: "reply",
        names.message_account: out.account_id,
        COWORKER: coworker_id,
    })


def _attach(tx: Tx, runtime: RuntimeConfig, message_id: int, file_ids: tuple[int, ...],
            parent_limetype: str | None, parent_id: int | None) -> None:
    dcfg = runtime.document
    for file_id in file_ids:
        stored = tx.get_file(file_id)
        assert stored is not None
        props: dict[str, Any] = {
            dcfg.relation_conversation_message: message_id,
            dcfg.property_comment: stored.filename,
            dcfg.property_type: dcfg.document_type,
            dcfg.property_document: file_id,
        }
        if parent_limetype is not None and parent_id is not None:
            props[parent_limetype] = parent_id
        document_id = tx.create(dcfg.limetype, props)
        relation = next((p.relation_document for p in runtime.conversation_parents
                         if p.limetype == parent_limetype), None)
        if relation is not None and parent_id is not None:
            append_related(tx, str(parent_limetype), parent_id, relation, document_id)


def _count_use(tx: Tx, runtime: RuntimeConfig, snippets: list[Obj], now: str) -> None:
    scfg = runtime.text_snippet
    for snippet in snippets:
        count = snippet.get(scfg.property_count)
        tx.update(scfg.limetype, snippet.id, {
            scfg.property_count: (count if type(count) is int else 0) + 1,
            scfg.property_last_used: now})
