"""The outbox API: what is waiting, and releasing automatic mail that was held.

Routes::

    GET  /api/v1/outbox?status=held[&_after=ID][&_limit=N]   items with that status, by id
    POST /api/v1/outbox/<id>/release             a held item becomes queued (sent soon)
    POST /api/v1/outbox/<id>/retry               a failed item is due again now
    POST /api/v1/outbox/<id>/cancel              a queued, held or failed item is never sent

Automatic mail (automatic replies, hub notifications) beyond an account's
``automatic_mail_per_hour`` is queued ``held`` (:mod:`daemon.outbox.budget`): nothing is
dropped, and nothing goes out until an operator looks. Items are shown without their
bytes: id, account, recipient, kind, status, Message-ID, the message they belong to,
attempts, the last error and when they were queued.
"""

from __future__ import annotations

__all__ = ["outbox_action", "outbox_blueprint"]

from typing import Any

import structlog
from quart import Blueprint, jsonify, request

from daemon.http.context import DaemonContext
from daemon.http.input import path_id
from daemon.http.paging import page_arguments
from daemon.store.base import OutboxItem, Tx

_STATUSES = ("held", "queued", "sent", "failed", "cancelled")
log = structlog.get_logger("postroom.http")


def outbox_blueprint(daemon: DaemonContext) -> Blueprint:
    """The routes above, bound to a running daemon."""
    bp = Blueprint("outbox", __name__)

    @bp.get("/api/v1/outbox")
    async def listing() -> Any:
        status = request.args.get("status", "held")
        if status not in _STATUSES:
            return jsonify(error=f"status: one of {', '.join(_STATUSES)}"), 400
        after, limit, _ = page_arguments(allowed=("status",))
        items = await daemon.store.run(lambda tx: tx.outbox_page(status, after, limit))
        return jsonify([_as_json(item) for item in items])

    @bp.post("/api/v1/outbox/<outbox_id>/release")
    async def release(outbox_id: str) -> Any:
        number = path_id("outbox_id", outbox_id)
        released = await daemon.store.run(lambda tx: _release(tx, number))
        if not released:
            return jsonify(error=f"outbox item {number} is not held"), 409
        daemon.mail_queued()
        return jsonify(outbox=number, status="queued"), 202

    async def act(outbox_id: str, action: str) -> tuple[int, bool]:
        number = path_id("outbox_id", outbox_id)
        return number, await daemon.store.run(lambda tx: outbox_action(tx, number, action))

    @bp.post("/api/v1/outbox/<outbox_id>/retry")
    async def retry(outbox_id: str) -> Any:
        number, done = await act(outbox_id, "retried")
        if not done:
            return jsonify(error=f"outbox item {number} is sent, cancelled or absent"), 409
        daemon.mail_queued()
        return jsonify(outbox=number, status="queued"), 202

    @bp.post("/api/v1/outbox/<outbox_id>/cancel")
    async def cancel(outbox_id: str) -> Any:
        number, done = await act(outbox_id, "cancelled")
        if not done:
            return jsonify(error=f"outbox item {number} is sent, cancelled or absent"), 409
        return jsonify(outbox=number, status="cancelled")

    return bp


def outbox_action(tx: Tx, outbox_id: int, action: str) -> bool:
    """Retry or cancel one item and log it as an event (``outbox.retried``/``.cancelled``)."""
    done = tx.requeue_outbox(outbox_id) if action == "retried" else tx.cancel_outbox(outbox_id)
    if done:
        item = tx.get_outbox(outbox_id)
        tx.add_event(f"outbox.{action}", item.account if item else None, {"outbox": outbox_id})
        log.info("outbox.retried" if action == "retried" else "outbox.cancelled",
                 outbox=outbox_id)
    return bool(done)


def _release(tx: Tx, outbox_id: int) -> bool:
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
