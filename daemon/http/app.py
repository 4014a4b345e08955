"""The HTTP surface: probes, status, the object API and the sync trigger.

Served by :func:`daemon.http.server.serve` inside the daemon's nursery
(:func:`daemon.app.run_daemon`), so handlers share the Trio run with the actors and read
their state directly, through :class:`~daemon.http.context.DaemonContext`.

Routes::

    GET  /livez                         the event loop answers (never checks mail servers)
    GET  /readyz   (/healthz)           store open, actors started, not stopping; else 503
    GET  /status                        per account: state, last sync, counts, last error
    GET  /metrics                       Prometheus text format
    GET  /api/v1/accounts               the same as /status, for API clients
    POST /api/v1/accounts/<id>/sync     wake that account's actor now ("Sync emails")
    GET  /api/v1/objects/<limetype>     objects, filtered by ?property=value
    GET  /api/v1/objects/<limetype>/<id>
    ...  /api/v1/conversations/..., /api/v1/files   sending (daemon/http/conversations.py)
    ...  /api/v1/textsnippets[/<id>]                text snippets (daemon/http/snippets.py)
    POST /api/v1/errors/<id>/resolve               daemon/http/message_errors.py
    ...  /api/v1/outbox[/<id>/release|retry|cancel] the outbox (daemon/http/outbox.py)
    ...  /api/v1/failed[/<id>/raw|retry]           failed messages (daemon/http/failed.py)
    GET  /api/v1/openapi.json                      the API's description (daemon/http/openapi.py)
    WS   /events                                   the event log, live (daemon/http/event_stream.py)
    GET  /, /login, /ui/...                        the status page (daemon/http/status_page.py)
    ...  /oauth/start, /oauth/callback              OAuth sign-in (daemon/http/oauth.py)

Who may ask (:func:`_check_caller`, for everything but the probes):

* ``[http] api_token_env`` (or ``_file``) set: ``/api/`` requires
  ``Authorization: Bearer <token>``; a refusal is 401 and closes the connection.
* No token: only requests a browser page cannot forge. ``Host`` must be a loopback name or
  address (``localhost``, ``127.0.0.0/8``, ``[::1]``, any port), which defeats DNS
  rebinding, and an ``Origin`` header, if any, must be loopback too, which defeats a
  cross-site ``fetch``/form post. Otherwise 403.

Either way, every route that reads JSON requires ``Content-Type: application/json``
(415), which a cross-site "simple" request cannot send without a CORS preflight we never
grant. Bad input answers 400 naming the parameter (:mod:`daemon.http.input`); anything
unexpected answers a JSON 500 with no traceback (it goes to the log).

Query values are compared as JSON scalars (:func:`~daemon.http.input.filter_value`).
"""

from __future__ import annotations

__all__ = ["create_app", "filter_value"]

import hmac
from typing import Any
from urllib.parse import urlsplit

import structlog
from quart import Quart, Response, jsonify, request
from quart_trio import QuartTrio
from werkzeug.exceptions import HTTPException

from daemon.http.context import DaemonContext
from daemon.http.conversations import conversations_blueprint
from daemon.http.event_stream import event_stream_blueprint
from daemon.http.failed import failed_blueprint
from daemon.http.input import ApiError, filter_value, path_id, property_name, whole_number
from daemon.http.loopback import is_loopback_host as _is_loopback_host
from daemon.http.message_errors import message_errors_blueprint
from daemon.http.oauth import oauth_blueprint
from daemon.http.objects import find_objects, get_object
from daemon.http.openapi import openapi_blueprint
from daemon.http.outbox import outbox_blueprint
from daemon.http.paging import page_by_name
from daemon.http.snippets import snippets_blueprint
from daemon.http.status_page import status_page_blueprint
from daemon.kicks import kick
from daemon.plugins.manager import call_hook

log = structlog.get_logger("postroom.http")

API_LIMIT_MAX = 1000
#: Answered whoever asks: orchestrators probe from outside the host.
PROBES = frozenset({"/livez", "/readyz", "/healthz"})
#: Path parameters that are object ids (checked by :func:`~daemon.http.input.path_id`).
_ID_PARAMETERS = ("object_id", "conversation_id", "snippet_id", "error_id")


def create_app(daemon: DaemonContext) -> Quart:
    """Build the Quart-Trio app around a running daemon."""
    app = QuartTrio("postroom")
    app.config["JSON_SORT_KEYS"] = False
    app.before_request(lambda: _check_caller(daemon))
    app.before_request(_convert_ids)
    _error_handlers(app)

    @app.get("/livez")
    async def livez() -> Any:
        return jsonify(status="ok")

    @app.get("/readyz")
    @app.get("/healthz")
    async def readyz() -> Any:
        problems = daemon.readiness_problems()
        body = {"status": "ok" if not problems else "unavailable", "problems": problems,
                "attention": daemon.readiness_notes()}
        return jsonify(body), (200 if not problems else 503)

    @app.get("/status")
    @app.get("/api/v1/accounts")
    async def status() -> Any:
        document = daemon.status()
        if request.path.startswith("/api/") and request.args:
            document["accounts"] = page_by_name(document["accounts"], "account")
        return jsonify(document)

    @app.get("/metrics")
    async def metrics() -> Any:
        return Response(await daemon.metrics_text(), 200,
                        {"Content-Type": "text/plain; version=0.0.4"})

    @app.post("/api/v1/accounts/<account>/sync")
    async def sync(account: str) -> Any:
        handle = daemon.handles.get(account)
        if handle is None:
            return jsonify(error=f"no account named {account!r}"), 404
        await kick(daemon, account)  # here, or the node serving it (daemon.kicks)
        return jsonify(account=account, state=handle.status.state.value), 202

    @app.get("/api/v1/objects/<limetype>")
    async def objects(limetype: str) -> Any:
        property_name(limetype)
        args = request.args.to_dict()
        limit = whole_number("_limit", args.pop("_limit", "100"), low=0, high=API_LIMIT_MAX)
        after = whole_number("_after", args.pop("_after", "0"), low=0, high=2 ** 63 - 1)
        newest = args.pop("_order", "") == "newest"
        where = {property_name(key): filter_value(value) for key, value in args.items()}
        found = await daemon.store.run(lambda tx: find_objects(
            tx, daemon.config.runtime, limetype, where, after=after, limit=limit,
            newest_first=newest))
        return jsonify([obj.as_json() for obj in found])

    @app.get("/api/v1/objects/<limetype>/<object_id>")
    async def one_object(limetype: str, object_id: int) -> Any:
        property_name(limetype)
        obj = await daemon.store.run(lambda tx: get_object(
            tx, daemon.config.runtime, limetype, object_id))
        if obj is None:
            return jsonify(error=f"no {limetype} with id {object_id}"), 404
        return jsonify(obj.as_json())

    app.register_blueprint(conversations_blueprint(daemon))
    app.register_blueprint(snippets_blueprint(daemon))
    app.register_blueprint(message_errors_blueprint(daemon))
    app.register_blueprint(outbox_blueprint(daemon))
    app.register_blueprint(oauth_blueprint(daemon))
    app.register_blueprint(failed_blueprint(daemon))
    app.register_blueprint(openapi_blueprint())
    status_page, sessions = status_page_blueprint(daemon)
    app.register_blueprint(status_page)
    app.register_blueprint(event_stream_blueprint(daemon, sessions.websocket_allowed))
    for blueprint in _plugin_blueprints(daemon):
        app.register_blueprint(blueprint)
    return app


def _check_caller(daemon: DaemonContext) -> None:
    """The token, or (without one) loopback Host and Origin; see the module docstring.

    Raises:
        ApiError: 401 (wrong or missing token) or 403 (a request from outside).
    """
    if request.path in PROBES:
        return
    token = daemon.api_token
    if token is None:
        _only_from_loopback()
        return
    if not request.path.startswith("/api/"):
        return
    given = request.headers.get("Authorization", "")
    expected = f"Bearer {token.reveal()}"
    if not hmac.compare_digest(given.encode(), expected.encode()):
        raise ApiError("Authorization", "missing or wrong bearer token", 401)


def _only_from_loopback() -> None:
    host = request.headers.get("Host", "")
    if not _is_loopback_host(host):
        raise ApiError("Host", "without an api_token only loopback hosts (localhost, "
                               "127.0.0.1, [::1]) are answered", 403)
    origin = request.headers.get("Origin")
    if origin is not None and not _is_loopback_host(urlsplit(origin).netloc):
        raise ApiError("Origin", "cross-origin requests are refused (no api_token is "
                                 "configured)", 403)


def _convert_ids() -> None:
    """Turn id path parameters into ints, or refuse with 400 naming the parameter."""
    values = request.view_args or {}
    for name in _ID_PARAMETERS:
        if isinstance(values.get(name), str):
            values[name] = path_id(name, values[name])


def _error_handlers(app: Quart) -> None:
    """JSON for every error; a traceback only in the log, never in the answer."""

    @app.errorhandler(ApiError)
    async def refused(error: ApiError) -> Any:
        headers = {}
        if error.status == 401:
            headers = {"WWW-Authenticate": "Bearer", "Connection": "close"}
        return jsonify(error.as_json()), error.status, headers

    @app.errorhandler(HTTPException)
    async def http_error(error: HTTPException) -> Any:
        status = error.code or 500
        return jsonify(error=f"{error.name}: {error.description}"), status

    @app.errorhandler(Exception)
    async def unexpected(error: Exception) -> Any:
        log.error("http.unhandled", path=request.path, method=request.method,
                  error=f"{type(error).__name__}: {error}", exc_info=error)
        return jsonify(error="internal error (see the daemon's log)"), 500


def _plugin_blueprints(daemon: DaemonContext) -> list[Any]:
    blueprints = []
    for result in call_hook(daemon.pm, "postroom_http_blueprints"):
        blueprints.extend(result)
    return blueprints
