"""The OpenAPI 3.1 description of ``/api/v1``, kept here beside the routes it describes.

::

    GET /api/v1/openapi.json     this document

Written by hand (a dict built by small helpers) rather than generated: the routes are
plain Quart handlers with hand-written validation (:mod:`daemon.http.input`), and a spec
that is data can be checked. ``tests/http/test_openapi.py`` checks that every ``/api/v1``
route of the app is here and nothing else is, and runs ``schemathesis`` against a real
daemon (no 500, no undocumented status code).

The spec also drives one rule (:func:`refuse_unknown_query`): a query parameter an
operation does not declare is answered 400 naming it, so ``?subjct=x`` cannot silently
match nothing. Operations whose query *is* data (``/objects``' property filters,
``/textsnippets``' field filters) say ``x-query-filters: true`` and check the names
themselves.
"""

from __future__ import annotations

__all__ = ["SPEC", "openapi_blueprint", "operation_for", "refuse_unknown_query"]

import re
from typing import Any

from quart import Blueprint, jsonify, request

from daemon import __version__
from daemon.http.input import ApiError
from daemon.http.paging import LIMIT_MAX

_ERROR = {"$ref": "#/components/schemas/Error"}
_ANY_OBJECT = {"type": "object"}
_ID = {"type": "integer", "minimum": 1, "maximum": 2 ** 63 - 1}
_LIST = {"type": "array", "items": _ANY_OBJECT}


def _error(description: str) -> dict[str, Any]:
    return {"description": description,
            "content": {"application/json": {"schema": _ERROR}}}


#: Answers any ``/api/v1`` operation may give besides its own (the caller check, bad
#: input, the router, shutting down).
_COMMON = {
    "400": _error("a parameter is malformed or unknown (the answer names it)"),
    "401": _error("missing or wrong bearer token"),
    "403": _error("without a token, only loopback Host and Origin are answered"),
    "404": _error("no such route or object"),
    "405": _error("method not allowed on this route"),
    "503": _error("the daemon is stopping, or the store is busy"),
}


def _json(schema: dict[str, Any], description: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def _query(name: str, schema: dict[str, Any], description: str) -> dict[str, Any]:
    return {"name": name, "in": "query", "required": False, "schema": schema,
            "description": description}


def _path(name: str, schema: dict[str, Any] | None = None) -> dict[str, Any]:
    return {"name": name, "in": "path", "required": True, "schema": schema or _ID}


_PAGING = [
    _query("_after", {"type": "integer", "minimum": 0, "maximum": 2 ** 63 - 1},
           "cursor: only items with a larger id (the last id of the previous page)"),
    _query("_limit", {"type": "integer", "minimum": 0, "maximum": LIMIT_MAX},
           "page size (default 100)"),
]
_NAME_PAGING = [
    _query("_after", {"type": "string"}, "cursor: the last id of the previous page"),
    _PAGING[1],
]


def _op(summary: str, responses: dict[str, Any], *, parameters: list[Any] | None = None,
        body: dict[str, Any] | None = None, filters: bool = False,
        tag: str = "api") -> dict[str, Any]:
    op: dict[str, Any] = {"summary": summary, "tags": [tag],
                          "responses": {**_COMMON, **responses}}
    if parameters:
        op["parameters"] = parameters
    if body is not None:
        op["requestBody"] = {"required": True, "content": {"application/json": {
            "schema": body}}}
        op["responses"].setdefault("415", _error("the body is not application/json"))
    if filters:
        op["x-query-filters"] = True
    return op


_SNIPPET_FIELDS = {
    "text": {"type": "string", "minLength": 1}, "description": {"type": ["string", "null"]},
    "type": {"type": ["string", "null"]}, "status": {"type": ["string", "null"]},
    "language": {"type": ["string", "null"]}, "count": {"type": "integer", "minimum": 0},
    "lastused": {"type": ["string", "null"], "format": "date-time"},
    "pinned": {"type": "boolean"},
}

SPEC: dict[str, Any] = {
    "openapi": "3.1.0",
    "info": {"title": "postroom", "version": __version__,
             "description": "The daemon's API: accounts, CRM objects, sending, text "
                            "snippets, errors, the outbox and failed messages."},
    "components": {
        "schemas": {"Error": {"type": "object", "required": ["error"], "properties": {
            "error": {"type": "string"}, "parameter": {"type": "string"}}}},
        "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
    },
    "security": [{"bearer": []}, {}],
    "paths": {
        "/api/v1/openapi.json": {"get": _op("This document", {
            "200": _json(_ANY_OBJECT, "the OpenAPI description")})},
        "/api/v1/accounts": {"get": _op("Each account's state (as /status)", {
            "200": _json(_ANY_OBJECT, "accounts, outbox, http, ready")},
            parameters=_NAME_PAGING)},
        "/api/v1/accounts/{account}/sync": {"post": _op("Sync an account now", {
            "202": _json(_ANY_OBJECT, "the actor was woken")},
            parameters=[_path("account", {"type": "string"})])},
        "/api/v1/objects/{limetype}": {"get": _op(
            "Objects of a limetype; other query parameters filter by property", {
                "200": _json(_LIST, "objects, in id order (newest first with _order)")},
            parameters=[_path("limetype", {"type": "string", "pattern": "^[A-Za-z0-9_]+$"}),
                        *_PAGING,
                        _query("_order", {"enum": ["oldest", "newest"]}, "id order")],
            filters=True)},
        "/api/v1/objects/{limetype}/{object_id}": {"get": _op("One object", {
            "200": _json(_ANY_OBJECT, "the object")},
            parameters=[_path("limetype", {"type": "string", "pattern": "^[A-Za-z0-9_]+$"}),
                        _path("object_id")])},
        "/api/v1/conversations/{conversation_id}/read": {"post": _op(
            "Mark the conversation read (clears its earliest-unread date)", {
                "200": _json(_ANY_OBJECT, "conversation, read"),
                "404": _error("no such conversation")},
            parameters=[_path("conversation_id")])},
        "/api/v1/conversations/{conversation_id}/messages": {"post": _op(
            "Send an agent's reply", {
                "202": _json(_ANY_OBJECT, "queued: message, account, outbox ids"),
                "413": _error("the message would be larger than max_outgoing_bytes"),
                "409": _error("the conversation cannot be answered"),
                "422": _error("the reply was refused")},
            parameters=[_path("conversation_id")],
            body={"type": "object", "required": ["coworker", "html"], "properties": {
                "coworker": _ID, "html": {"type": "string", "minLength": 1},
                "account": {"type": "string"},
                "attachments": {"type": "array", "items": _ID},
                "textSnippets": {"type": "array", "items": _ID},
                "sendMessageAction": {"type": "string"}}})},
        "/api/v1/conversations/{conversation_id}/actions": {"get": _op(
            "The send actions offered for a conversation", {
                "200": _json(_LIST, "actions"),
                "409": _error("the conversation cannot be answered"),
                "422": _error("refused")},
            parameters=[_path("conversation_id"),
                        _query("account", {"type": "string"}, "the sending account"),
                        *_NAME_PAGING])},
        "/api/v1/files": {"post": {
            "summary": "Upload an attachment (the body is the file)", "tags": ["api"],
            "parameters": [_query("filename", {"type": "string"}, "the file's name")],
            "requestBody": {"required": True, "content": {
                "application/octet-stream": {"schema": {"type": "string",
                                                        "format": "binary"}}}},
            "responses": {**_COMMON, "201": _json(_ANY_OBJECT, "the stored file's id"),
                          "413": _error("too large")}}},
        "/api/v1/textsnippets": {
            "get": _op("Text snippets; other query parameters filter by field", {
                "200": _json(_LIST, "snippets, pinned and most used first")},
                parameters=_PAGING, filters=True),
            "post": _op("Create a text snippet", {"201": _json(_ANY_OBJECT, "created")},
                        body={"type": "object", "required": ["text"],
                              "properties": _SNIPPET_FIELDS,
                              "additionalProperties": False})},
        "/api/v1/textsnippets/{snippet_id}": {
            "get": _op("One text snippet", {"200": _json(_ANY_OBJECT, "the snippet")},
                       parameters=[_path("snippet_id")]),
            "patch": _op("Change a text snippet", {"200": _json(_ANY_OBJECT, "changed")},
                         parameters=[_path("snippet_id")],
                         body={"type": "object", "properties": _SNIPPET_FIELDS,
                               "additionalProperties": False}),
            "delete": _op("Delete a text snippet", {"204": {"description": "deleted"}},
                          parameters=[_path("snippet_id")])},
        "/api/v1/errors/{error_id}/resolve": {"post": {
            **_op("Resolve a conversationmessageerror", {
                "200": _json(_ANY_OBJECT, "the resolved record")},
                parameters=[_path("error_id")]),
            "requestBody": {"required": False, "content": {"application/json": {
                "schema": {"type": "object", "properties": {"coworker": _ID}}}}}}},
        "/api/v1/outbox": {"get": _op("Outbox items of one status", {
            "200": _json(_LIST, "items without their bytes, in id order")},
            parameters=[_query("status", {"enum": ["held", "queued", "sent", "failed",
                                                   "cancelled"]}, "default held"),
                        *_PAGING])},
        "/api/v1/outbox/{outbox_id}/release": {"post": _op("Release a held item", {
            "202": _json(_ANY_OBJECT, "queued"),
            "409": _error("the item is not held")},
            parameters=[_path("outbox_id")])},
        "/api/v1/outbox/{outbox_id}/retry": {"post": _op("Send a failed item again", {
            "202": _json(_ANY_OBJECT, "queued, due now"),
            "409": _error("the item is sent or cancelled")},
            parameters=[_path("outbox_id")])},
        "/api/v1/outbox/{outbox_id}/cancel": {"post": _op("Never send an item", {
            "200": _json(_ANY_OBJECT, "cancelled"),
            "409": _error("the item is already sent or cancelled")},
            parameters=[_path("outbox_id")])},
        "/api/v1/failed": {"get": _op("Messages whose processing failed", {
            "200": _json(_LIST, "failed messages without their bytes, in id order")},
            parameters=[_query("account", {"type": "string"}, "only this account's"),
                        *_PAGING])},
        "/api/v1/failed/{failed_id}/raw": {"get": {
            "summary": "The failed message as received", "tags": ["api"],
            "parameters": [_path("failed_id")],
            "responses": {**_COMMON, "200": {"description": "the message", "content": {
                "message/rfc822": {"schema": {"type": "string"}}}}}}},
        "/api/v1/failed/{failed_id}/retry": {"post": _op("Import a failed message again", {
            "200": _json(_ANY_OBJECT, "the new outcome"),
            "409": _error("its bytes were never downloaded (too large)")},
            parameters=[_path("failed_id")])},
    },
}

_RULE_PARAMETER = re.compile(r"<(?:[a-z]+:)?([A-Za-z_]+)>")


def openapi_path(rule: str) -> str:
    """A Quart rule (``/x/<int:id>``) as an OpenAPI path (``/x/{id}``)."""
    return _RULE_PARAMETER.sub(r"{\1}", rule)


def operation_for(rule: str, method: str) -> dict[str, Any] | None:
    """The spec's operation for a matched Quart rule and method, if any."""
    operation: dict[str, Any] | None = SPEC["paths"].get(openapi_path(rule), {}).get(
        method.lower())
    return operation


def refuse_unknown_query() -> None:
    """``before_request``: 400 naming query parameters the operation does not declare."""
    rule = request.url_rule
    if rule is None or not request.args or not request.path.startswith("/api/v1/"):
        return
    op = operation_for(rule.rule, request.method)
    if op is None or op.get("x-query-filters"):
        return
    declared = {p["name"] for p in op.get("parameters", ()) if p["in"] == "query"}
    unknown = sorted(set(request.args) - declared)
    if unknown:
        allowed = ", ".join(sorted(declared)) or "none"
        raise ApiError(unknown[0], f"unknown query parameter (unknown: {', '.join(unknown)}; "
                                   f"allowed: {allowed})")


def openapi_blueprint() -> Blueprint:
    """``GET /api/v1/openapi.json``, and :func:`refuse_unknown_query` for the whole app."""
    bp = Blueprint("openapi", __name__)
    bp.before_app_request(refuse_unknown_query)

    @bp.get("/api/v1/openapi.json")
    async def document() -> Any:
        return jsonify(SPEC)

    return bp
