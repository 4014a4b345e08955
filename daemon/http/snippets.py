"""Text snippets: pre-written answers agents insert into replies (CRUD over ``textsnippet``).

Routes::

    GET    /api/v1/textsnippets              list; filter with ?language=sv&type=...&pinned=true
    POST   /api/v1/textsnippets              create (201)
    GET    /api/v1/textsnippets/<id>
    PATCH  /api/v1/textsnippets/<id>         change some fields
    DELETE /api/v1/textsnippets/<id>         (204)

The API speaks in fixed field names; the store uses the property names of the runtime
configuration's ``textSnippet`` section (``status`` is stored as ``textsnippetstatus``
by default)::

    field        runtime key           type
    text         propertyText          string, required on create
    description  propertyDescription   string or null
    type         propertyType          string or null
    status       propertyStatus        string or null
    language     propertyLanguage      string or null
    count        propertyCount         whole number >= 0 (default 0)
    lastused     propertyLastUsed      ISO 8601 date-time or null
    pinned       propertyPinned        true / false (default false)

Lists come pinned first, then most used. A snippet named in a send
(``textSnippets``) gets ``count`` + 1 and ``lastused`` set, in the send's transaction.
"""

from __future__ import annotations

__all__ = ["FIELDS", "snippets_blueprint"]

from datetime import datetime
from typing import Any

from quart import Blueprint, Response, jsonify, request

from daemon.http.context import DaemonContext
from daemon.http.input import ApiError, filter_value, json_object
from daemon.http.paging import PAGING, page_by_name
from daemon.store.base import Obj, Tx

#: API field -> attribute of ``RuntimeConfig.text_snippet`` naming the stored property.
FIELDS = {
    "text": "property_text",
    "description": "property_description",
    "type": "property_type",
    "status": "property_status",
    "language": "property_language",
    "count": "property_count",
    "lastused": "property_last_used",
    "pinned": "property_pinned",
}
_NULLABLE_TEXT = ("description", "type", "status", "language")


def snippets_blueprint(daemon: DaemonContext) -> Blueprint:
    """The routes above, bound to a running daemon."""
    bp = Blueprint("textsnippets", __name__)
    scfg = daemon.config.runtime.text_snippet
    names = {field: getattr(scfg, attribute) for field, attribute in FIELDS.items()}

    def as_json(obj: Obj) -> dict[str, Any]:
        return {"id": obj.id, **{field: obj.get(prop) for field, prop in names.items()}}

    @bp.get("/api/v1/textsnippets")
    async def list_snippets() -> Any:
        where = {names[_known(k)]: filter_value(v) for k, v in request.args.items()
                 if k not in PAGING}
        found = await daemon.store.run(lambda tx: tx.find(scfg.limetype, where))
        found.sort(key=lambda o: (not o.get(names["pinned"]), -_count(o, names["count"]),
                                  o.id))
        return jsonify(page_by_name([as_json(o) for o in found], "id", cursor=int))

    @bp.post("/api/v1/textsnippets")
    async def create() -> Any:
        values = _validate(await json_object(), create=True)
        props = {names[f]: v for f, v in {"count": 0, "pinned": False, **values}.items()}
        obj = await daemon.store.run(lambda tx: tx.get(scfg.limetype,
                                                       tx.create(scfg.limetype, props)))
        assert obj is not None  # created in the same transaction
        return jsonify(as_json(obj)), 201

    @bp.get("/api/v1/textsnippets/<snippet_id>")
    async def read(snippet_id: int) -> Any:
        obj = await daemon.store.run(lambda tx: tx.get(scfg.limetype, snippet_id))
        if obj is None:
            return _missing(snippet_id)
        return jsonify(as_json(obj))

    @bp.patch("/api/v1/textsnippets/<snippet_id>")
    async def change(snippet_id: int) -> Any:
        values = _validate(await json_object(), create=False)
        props = {names[f]: v for f, v in values.items()}

        def update(tx: Tx) -> Obj | None:
            if tx.get(scfg.limetype, snippet_id) is None:
                return None
            tx.update(scfg.limetype, snippet_id, props)
            return tx.get(scfg.limetype, snippet_id)

        obj = await daemon.store.run(update)
        if obj is None:
            return _missing(snippet_id)
        return jsonify(as_json(obj))

    @bp.delete("/api/v1/textsnippets/<snippet_id>")
    async def delete(snippet_id: int) -> Any:
        def remove(tx: Tx) -> bool:
            if tx.get(scfg.limetype, snippet_id) is None:
                return False
            tx.delete(scfg.limetype, snippet_id)
            return True

        if not await daemon.store.run(remove):
            return _missing(snippet_id)
        return Response("", 204)

    return bp


def _missing(snippet_id: int) -> Any:
    return jsonify(error=f"no text snippet with id {snippet_id}"), 404


def _known(field: str) -> str:
    if field not in FIELDS:
        raise ApiError(field, f"unknown field {field!r}; fields: {', '.join(FIELDS)}")
    return field


def _count(obj: Obj, prop: str) -> int:
    value = obj.get(prop)
    return value if type(value) is int else 0


def _validate(data: dict[str, Any], *, create: bool) -> dict[str, Any]:
    """The fields of a create or change body, checked one by one.

    Raises:
        ApiError: naming the first wrong field.
    """
    values = {}
    for field, value in data.items():
        _known(field)
        values[field] = _check(field, value)
    if create and not values.get("text"):
        raise ApiError("text", "required, a non-empty string")
    if "text" in values and not values["text"]:
        raise ApiError("text", "must be a non-empty string")
    return values


def _check(field: str, value: Any) -> Any:
    if field == "text":
        if not isinstance(value, str):
            raise ApiError("text", "must be a string")
        return value
    if field in _NULLABLE_TEXT:
        if value is not None and not isinstance(value, str):
            raise ApiError(field, "must be a string or null")
        return value
    if field == "count":
        if type(value) is not int or value < 0:
            raise ApiError("count", "must be a whole number, 0 or more")
        return value
    if field == "pinned":
        if not isinstance(value, bool):
            raise ApiError("pinned", "must be true or false")
        return value
    if value is None:  # lastused
        return None
    try:
        parsed = datetime.fromisoformat(str(value))
    except ValueError:
        raise ApiError("lastused", "must be an ISO 8601 date-time or null") from None
    return parsed.isoformat()
