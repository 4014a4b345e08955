"""Resolving a conversation message error (a bounce, a failed delivery, a failed import).

::

    POST /api/v1/errors/<id>/resolve    {"coworker": 12}    -> 200, the updated record

Sets the runtime configuration's ``propertyResolvedDate`` to now and
``relationResolvedBy`` to the coworker (:func:`daemon.crm.errors.resolve`). Resolving
twice keeps the first resolution.
Unresolved errors are listed through the object API:
``GET /api/v1/objects/conversationmessageerror?resolveddate=null``.
"""

from __future__ import annotations

__all__ = ["message_errors_blueprint"]

from datetime import UTC, datetime
from typing import Any

from quart import Blueprint, jsonify

from daemon.crm import errors
from daemon.http.context import DaemonContext
from daemon.http.input import ApiError, json_object


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

        when = datetime.now(UTC)
        record = await daemon.store.run(
            lambda tx: errors.resolve(tx, daemon.config.runtime, error_id, coworker=coworker,
                               when=when))
        if record is None:
            return jsonify(error=f"no {ecfg.limetype} with id {error_id}"), 404
        return jsonify(record.as_json())

    return bp
