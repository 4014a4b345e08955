"""Failed messages: what could not be imported, its raw bytes, and "Retry".

Routes::

    GET  /api/v1/failed[?account=A][&_after=ID][&_limit=N]   failed messages, by id
    GET  /api/v1/failed/<id>/raw                              the message as received
    POST /api/v1/failed/<id>/retry                            import it again

A failed message is one whose processing raised (its bytes and the error are in the
store, and it sits in the account's failure folder). Once the cause is fixed (a plugin, a
runtime setting, a bug), "Retry" re-imports it from the stored bytes
(:meth:`daemon.actors.processor.Processor.retry`): the answer is the new outcome, and
retrying again is harmless: the re-imported message is stored under a new row (which
SQLite may give the same id: then it answers the recorded outcome; else 404), and nothing
is imported twice. The id is the store's row
id, which ``postroom failed`` prints and ``postroom retry ID`` takes.
"""

from __future__ import annotations

__all__ = ["failed_blueprint"]

from typing import Any

from quart import Blueprint, Response, jsonify

from daemon.errors import TransientError
from daemon.http.context import DaemonContext
from daemon.http.input import ApiError, path_id
from daemon.http.paging import page_arguments
from daemon.store.base import RawRecord


def failed_blueprint(daemon: DaemonContext) -> Blueprint:
    """The routes above, bound to a running daemon."""
    bp = Blueprint("failed", __name__)

    @bp.get("/api/v1/failed")
    async def listing() -> Any:
        after, limit, filters = page_arguments(allowed=("account",))
        account = filters.get("account")

        def read(tx: Any) -> list[tuple[int, RawRecord]]:
            found: list[tuple[int, RawRecord]] = []
            cursor = after
            while len(found) < limit:
                batch = tx.failed_raw(cursor, limit=max(limit, 100))
                if not batch:
                    break
                cursor = batch[-1][0]
                found += [row for row in batch if account in (None, row[1].account)]
            return found[:limit]

        rows = await daemon.store.run(read)
        return jsonify([failed_as_json(id, record) for id, record in rows])

    @bp.get("/api/v1/failed/<failed_id>/raw")
    async def raw(failed_id: str) -> Any:
        record = await _failed(daemon, path_id("failed_id", failed_id))
        name = f"failed-{failed_id}.eml"
        return Response(record.raw, 200, {"Content-Type": "message/rfc822",
                                          "Content-Disposition": f'attachment; filename="{name}"'})

    @bp.post("/api/v1/failed/<failed_id>/retry")
    async def retry(failed_id: str) -> Any:
        number = path_id("failed_id", failed_id)
        record = await daemon.store.run(lambda tx: tx.raw_by_id(number))
        if record is None:
            raise ApiError("failed_id", f"no failed message with id {number} (a message "
                                        "imported by an earlier retry has a new id)", 404)
        try:
            outcome = await daemon.retry_message(record.source_key)
        except ValueError as exc:
            raise ApiError("failed_id", str(exc), 409) from None
        except TransientError as exc:
            raise ApiError("", f"the store is busy, try again: {exc}", 503) from None
        return jsonify(id=number, sourceKey=record.source_key, status=outcome.status.value,
                       conversationMessage=outcome.conversation_message_id,
                       error=outcome.reason if outcome.failed else None)

    return bp


async def _failed(daemon: DaemonContext, number: int) -> RawRecord:
    record = await daemon.store.run(lambda tx: tx.raw_by_id(number))
    if record is None or record.status != "failed":
        raise ApiError("failed_id", f"no failed message with id {number}", 404)
    return record


def failed_as_json(id: int, record: RawRecord) -> dict[str, Any]:
    """One failed message without its bytes (``size`` says how many there are)."""
    return {"id": id, "account": record.account, "sourceKey": record.source_key,
            "messageId": record.message_id, "folder": record.folder, "error": record.error,
            "size": len(record.raw),
            "createdAt": record.created_at.isoformat() if record.created_at else None}


