"""The send API: an agent's reply to a conversation, its attachments and its actions.

Routes::

    POST /api/v1/conversations/<id>/messages   queue a reply to every follower (202)
    GET  /api/v1/conversations/<id>/actions    the sendMessageActions on offer
    POST /api/v1/conversations/<id>/read       an agent read it: clear the earliest unread
    POST /api/v1/files?filename=NAME           store an attachment's bytes (201)

``POST .../messages`` takes a JSON object (see :class:`daemon.outbox.reply.ReplyRequest`)::

    {"coworker": 12, "html": "<p>Hello</p>", "account": "support",
     "attachments": [41], "textSnippets": [7],
     "sendMessageAction": "limepkg_standard_actions.update-limeobject"}

and answers ``202`` once every copy is committed to the outbox, with the new message's
id, the outbox ids and the recipients; then wakes the outbox actor and runs the chosen
action through the ``postroom_message_action`` hook (its result is in the answer; the mail
is queued whatever the action does, and ``handled: false`` comes with an ``error`` saying
why: no loaded plugin declares the id, or the plugin did not run it). Refusals: ``400`` (a
field is wrong, an attachment or snippet does not exist, an action is not offered),
``403`` (the coworker's groups may
not use the account), ``404`` (no such conversation), ``413`` (the composed message is
larger than the account's ``max_outgoing_bytes``; the answer names the size and the
limit), ``409`` (the account cannot send now, with the reason: an OAuth account not
signed in or whose app is failing), ``422`` (nobody to send to). A refused reply leaves
nothing behind.

``POST /api/v1/files`` takes the raw bytes as the body, the name in ``?filename=`` and
the type in ``Content-Type``; the answer's ``id`` goes in ``attachments``. Bodies up to
the largest ``max_outgoing_bytes`` of any account are accepted.
"""

from __future__ import annotations

__all__ = ["conversations_blueprint"]

from typing import TYPE_CHECKING, Any

import structlog
from quart import Blueprint, jsonify, request

from daemon.config import Config, load_secret_key
from daemon.crm.unread import mark_read
from daemon.http.context import DaemonContext
from daemon.http.input import ApiError, json_object
from daemon.http.paging import page_by_name
from daemon.outbox.compose import OutgoingTooLarge
from daemon.outbox.queue import Outgoing
from daemon.outbox.reply import (
    ReplyRefused,
    ReplyRequest,
    ReplyResult,
    conversation_account,
    offered_actions,
    queue_reply,
)
from daemon.plugins.actions import handled_action_ids
from daemon.plugins.events import ActionContext
from daemon.plugins.manager import call_async_hook
from daemon.store.base import Tx

if TYPE_CHECKING:
    from flask.sansio.app import App  # what Quart's BlueprintSetupState.app is typed as

    from daemon.config.runtime import SendMessageAction

log = structlog.get_logger("postroom.http")

#: Room for headers and encoding overhead on top of the largest attachment allowed.
_UPLOAD_MARGIN = 1_000_000


def conversations_blueprint(daemon: DaemonContext) -> Blueprint:
    """The routes above, bound to a running daemon."""
    bp = Blueprint("conversations", __name__)
    composers = _Composers(daemon.config)
    upload_limit = max((a.max_outgoing_bytes for a in daemon.config.accounts),
                       default=0) + _UPLOAD_MARGIN
    bp.record_once(lambda state: _raise_upload_limit(state.app, upload_limit))

    @bp.post("/api/v1/conversations/<conversation_id>/messages")
    async def send(conversation_id: int) -> Any:
        body = await json_object()
        try:
            reply = ReplyRequest.from_json(conversation_id, body)
            account_id = reply.account or await _account_of(daemon, conversation_id)
            _refuse_if_cannot_send(daemon, account_id)
            action = _chosen_action(daemon, account_id, reply.action)
            out = composers.get(account_id)
            result = await daemon.store.run(queue_reply, out, reply)
        except ReplyRefused as exc:
            return _refused(exc)
        except OutgoingTooLarge as exc:
            return jsonify(error=str(exc), size=exc.size, limit=exc.limit), 413
        daemon.mail_queued()
        answer: dict[str, Any] = {
            "conversationMessage": result.conversation_message_id,
            "account": result.account, "outbox": list(result.outbox_ids),
            "recipients": list(result.recipients)}
        if action is not None:
            answer["action"] = await _run_action(daemon, action, result)
        return jsonify(answer), 202

    @bp.get("/api/v1/conversations/<conversation_id>/actions")
    async def actions(conversation_id: int) -> Any:
        try:
            account_id = request.args.get("account") or await _account_of(
                daemon, conversation_id)
        except ReplyRefused as exc:
            return _refused(exc)
        return jsonify(page_by_name([{"id": a.action.id, "label": a.label, "icon": a.icon,
                                      "params": a.action.params}
                                     for a in offered_actions(daemon.config.runtime,
                                                              account_id)], "id"))

    @bp.post("/api/v1/conversations/<conversation_id>/read")
    async def read(conversation_id: int) -> Any:
        found = await daemon.store.run(mark_read, daemon.config.runtime, conversation_id)
        if not found:
            return jsonify(error=f"no conversation with id {conversation_id}"), 404
        return jsonify(conversation=conversation_id, read=True), 200

    @bp.post("/api/v1/files")
    async def upload() -> Any:
        filename = _filename(request.args.get("filename") or "")
        content_type = request.headers.get("Content-Type") or "application/octet-stream"
        data = await request.get_data(cache=False)
        assert isinstance(data, bytes)
        file_id = await daemon.store.run(lambda tx: tx.put_file(data, filename,
                                                                content_type))
        return jsonify(id=file_id, filename=filename, contentType=content_type,
                       size=len(data)), 201

    return bp


class _Composers:
    """One :class:`Outgoing` per account; the secret key is loaded on first use."""

    def __init__(self, config: Config) -> None:
        self.config = config
        self._secret: bytes | None = None
        self._by_account: dict[str, Outgoing] = {}

    def get(self, account_id: str) -> Outgoing:
        """Raises ReplyRefused (400) for an unknown account."""
        if account_id not in self._by_account:
            if self._secret is None:
                self._secret = load_secret_key(self.config)
            try:
                self._by_account[account_id] = Outgoing.from_config(
                    self.config, self._secret, account_id)
            except KeyError:
                raise ReplyRefused(f"account: no account named {account_id!r}") from None
        return self._by_account[account_id]


def _refused(exc: ReplyRefused) -> Any:
    """A refused reply as JSON; ``parameter`` is the field its message starts with."""
    field, colon, _ = str(exc).partition(": ")
    parameter = field if colon and field.isidentifier() else None
    return jsonify(error=str(exc), parameter=parameter), exc.status


def _filename(text: str) -> str:
    """An attachment's name: no slashes, no control characters (CR LF would end up in a
    MIME header), no lone surrogates. Raises ApiError."""
    name = text.strip()
    if (not name or "/" in name or "\\" in name or not name.isprintable()
            or any(0xD800 <= ord(c) <= 0xDFFF for c in name) or len(name) > 255):
        raise ApiError("filename", "required in the query string: up to 255 printable "
                                   "characters, without slashes")
    return name


def _raise_upload_limit(app: App, limit: int) -> None:
    current = app.config.get("MAX_CONTENT_LENGTH")
    if current is not None and current < limit:
        app.config["MAX_CONTENT_LENGTH"] = limit


async def _account_of(daemon: DaemonContext, conversation_id: int) -> str:
    """The conversation's account; ReplyRefused when there is no such conversation."""
    runtime = daemon.config.runtime

    def find(tx: Tx) -> tuple[bool, str | None]:
        exists = tx.get(runtime.conversation.limetype, conversation_id) is not None
        return exists, conversation_account(tx, runtime, conversation_id) if exists else None

    exists, account_id = await daemon.store.run(find)
    if not exists:
        raise ReplyRefused(f"no conversation with id {conversation_id}", 404)
    if account_id is None:
        if len(daemon.config.accounts) != 1:
            raise ReplyRefused("account: required (the conversation does not say which "
                               "account it belongs to)")
        account_id = daemon.config.accounts[0].id
    return account_id


def _refuse_if_cannot_send(daemon: DaemonContext, account_id: str) -> None:
    """409 at once for an account that cannot send now (an OAuth account without a
    grant, a failing app), instead of accepting the reply and failing it later."""
    reason = daemon.oauth.sending_refusal(account_id)
    if reason is not None:
        raise ReplyRefused(reason, 409)


def _chosen_action(daemon: DaemonContext, account_id: str, action_id: str | None
                   ) -> SendMessageAction | None:
    if action_id is None:
        return None
    for action in offered_actions(daemon.config.runtime, account_id):
        if action.action.id == action_id:
            return action
    raise ReplyRefused(f"sendMessageAction: {action_id!r} is not offered for account "
                       f"{account_id!r} (GET .../actions lists the choices)")


async def _run_action(daemon: DaemonContext, action: SendMessageAction, result: ReplyResult
                      ) -> dict[str, Any]:
    """Run the chosen sendMessageAction through ``postroom_message_action``."""
    answer: dict[str, Any] = {"id": action.action.id, "label": action.label,
                              "handled": False}
    if result.parent_limetype is None or result.parent_id is None:
        return answer | {"error": "the conversation has no parent object to act on"}
    limetype, parent_id = result.parent_limetype, result.parent_id

    async def update_parent(props: dict[str, Any]) -> None:
        await daemon.store.run(_update_parent, result.account, limetype, parent_id,
                               dict(props))

    context = ActionContext(account=result.account, conversation_id=result.conversation_id,
                            conversation_message_id=result.conversation_message_id,
                            parent_limetype=limetype, parent_id=parent_id,
                            update_parent=update_parent)
    if action.action.id not in handled_action_ids(daemon.pm):
        return answer | {"error": f"no loaded plugin handles {action.action.id!r}: the "
                                  "message was sent and nothing else was done"}
    outcome = await call_async_hook(daemon.pm, "postroom_message_action",
                                    action_id=action.action.id,
                                    params=action.action.params, context=context)
    if not outcome:
        return answer | {"error": f"the plugin handling {action.action.id!r} did not run "
                                  "it (see the log)"}
    return answer | {"handled": True}


def _update_parent(tx: Tx, account: str, limetype: str, parent_id: int,
                   props: dict[str, Any]) -> None:
    tx.update(limetype, parent_id, props)
    tx.add_event("parent.updated", account, {"limetype": limetype, "id": parent_id,
                                             "properties": sorted(props)})
