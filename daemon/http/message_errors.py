"""Resolving a conversation message error (a bounce, a failed delivery, a failed import).

::

    POST /api/v1/errors/<id>/resolve    {"coworker": 12}    -> 200, the updated record

Sets the runtime configuration's ``propertyResolvedDate`` to now and
``relationResolvedBy`` to the coworker. Resolving twice keeps the first resolution.
Unresolved errors are listed through the object API:
``GET /api/v1/objects/conversationmessageerror?resolveddate=null``.
"""

from __future__ import annotations

__all__ = ["message_errors_blueprint"]

from datetime import UTC, datetime
from typing import Any

from quart import Blueprint, jsonify

from daemon.http.context import DaemonContext
from daemon.http.input import ApiError, json_object
from daemon.store.base import Tx


def message_errors_blueprint(daemon: DaemonContext) -> Blueprint:
    """The route above, bound to a running daemon."""
    bp = Blueprint("message_errors", __name__)
    ecfg = daemon.config.runtime.conversation_message_error

    @bp.post("/api/v1/errors/<error_id>/resolve")
    async def resolve(error_id: int) -> Any:
        body = await json_object(optional=True)
        coworker = body.get("coworker")
        if coworker is not None and (type(coworker) is not int or coworker < 1):
            raise ApiError("coworker", "must be a coworker id (a whole number)")

        def apply(tx: Tx) -> Any:
            record = tx.get(ecfg.limetype, error_id)
            if record is None:
                return None
            if record.get(ecfg.property_resolved_date) is None:
                tx.update(ecfg.limetype, error_id, {
                    ecfg.property_resolved_date: datetime.now(UTC).isoformat(),
                    ecfg.relation_resolved_by: coworker})
                tx.add_event("error.resolved", None, {"id": error_id, "coworker": coworker})
            return tx.get(ecfg.limetype, error_id)

        record = await daemon.store.run(apply)
        if record is None:
            return jsonify(error=f"no {ecfg.limetype} with id {error_id}"), 404
        return jsonify(record.as_json())

    return bp
