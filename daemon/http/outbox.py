"""The outbox API: what is waiting, and releasing automatic mail that was held.

Routes::

    GET  /api/v1/outbox?status=held[&_limit=N]   items with that status, oldest first
    POST /api/v1/outbox/<id>/release             a held item becomes queued (sent soon)

Automatic mail (automatic replies, hub notifications) beyond an account's
``automatic_mail_per_hour`` is queued ``held`` (:mod:`daemon.outbox.budget`): nothing is
dropped, and nothing goes out until an operator looks. Items are shown without their
bytes: id, account, recipient, kind, status, Message-ID, the message they belong to,
attempts, the last error and when they were queued.
"""

from __future__ import annotations

__all__ = ["outbox_blueprint"]

from typing import TYPE_CHECKING, Any

from quart import Blueprint, jsonify, request

from daemon.store.base import OutboxItem

if TYPE_CHECKING:
    from daemon.http.context import DaemonContext
    from daemon.store.base import Tx

_STATUSES = ("held", "queued", "sent", "failed")
_LIMIT_MAX = 1000


def outbox_blueprint(daemon: DaemonContext) -> Blueprint:
    """The routes above, bound to a running :class:`~daemon.app.Daemon`."""
    bp = Blueprint("outbox", __name__)

    @bp.get("/api/v1/outbox")
    async def listing() -> Any:
        status = request.args.get("status", "held")
        if status not in _STATUSES:
            return jsonify(error=f"status: one of {', '.join(_STATUSES)}"), 400
        try:
            limit = min(int(request.args.get("_limit", 100)), _LIMIT_MAX)
        except ValueError:
            return jsonify(error="_limit must be a whole number"), 400
        items = await daemon.store.run(lambda tx: tx.outbox_by_status(status, limit))
        return jsonify([_as_json(item) for item in items])

    @bp.post("/api/v1/outbox/<int:outbox_id>/release")
    async def release(outbox_id: int) -> Any:
        released = await daemon.store.run(lambda tx: _release(tx, daemon, outbox_id))
        if not released:
            return jsonify(error=f"outbox item {outbox_id} is not held"), 409
        outbox = getattr(daemon, "outbox", None)
        if outbox is not None:
            outbox.wakeup()
        return jsonify(outbox=outbox_id, status="queued"), 202

    return bp


def _release(tx: Tx, daemon: DaemonContext, outbox_id: int) -> bool:
    if not tx.release_outbox(outbox_id):
        return False
    item = tx.get_outbox(outbox_id)
    tx.add_event("outbox.released", item.account if item else None, {"outbox": outbox_id})
    return True


def _as_json(item: OutboxItem) -> dict[str, Any]:
    return {
        "id": item.id, "account": item.account, "recipient": item.recipient,
        "kind": item.kind, "status": item.status, "messageId": item.message_id,
        "conversationMessage": item.conversation_message_id, "attempts": item.attempts,
        "lastError": item.last_error,
        "createdAt": item.created_at.isoformat() if item.created_at else None,
    }
