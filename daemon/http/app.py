"""The HTTP surface: probes, status, the object API and the sync trigger.

Served by Hypercorn inside the daemon's root nursery (:func:`daemon.app.run_daemon`), so
handlers share the Trio run with the actors and read their state directly.

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
    ...  /api/v1/outbox[/<id>/release]             held automatic mail (daemon/http/outbox.py)
    ...  /oauth/start, /oauth/callback              OAuth sign-in (daemon/http/oauth.py)

``/api/`` requires ``Authorization: Bearer <token>`` when ``[http] api_token_env`` (or
``_file``) is set. Query values are compared as JSON scalars: ``42`` is a number,
``true``/``false`` booleans, ``null`` null, anything else a string; quote a value
(``?number="42"``) to force a string.
"""

from __future__ import annotations

__all__ = ["create_app", "filter_value"]

import hmac
import json
from typing import TYPE_CHECKING, Any

from quart import Quart, Response, abort, jsonify, request
from quart_trio import QuartTrio

from daemon.http.conversations import conversations_blueprint
from daemon.http.message_errors import message_errors_blueprint
from daemon.http.oauth import oauth_blueprint
from daemon.http.outbox import outbox_blueprint
from daemon.http.snippets import snippets_blueprint
from daemon.plugins.manager import call_hook

if TYPE_CHECKING:
    from daemon.app import Daemon

API_LIMIT_MAX = 1000


def filter_value(text: str) -> Any:
    """A query-string value as the JSON scalar it most likely means (see module doc)."""
    if len(text) >= 2 and text[0] == text[-1] == '"':
        return text[1:-1]
    if text in ("true", "false"):
        return text == "true"
    if text == "null":
        return None
    if text.lstrip("-").isdigit() and len(text) < 19:
        return int(text)
    return text


def create_app(daemon: Daemon) -> Quart:
    """Build the Quart-Trio app around a running :class:`~daemon.app.Daemon`."""
    app = QuartTrio("postroom")
    app.config["JSON_SORT_KEYS"] = False

    @app.before_request
    async def require_token() -> None:
        token = daemon.api_token
        if token is None or not request.path.startswith("/api/"):
            return
        given = request.headers.get("Authorization", "")
        expected = f"Bearer {token.reveal()}"
        if not hmac.compare_digest(given.encode(), expected.encode()):
            abort(Response(json.dumps({"error": "missing or wrong bearer token"}), 401,
                           {"Content-Type": "application/json",
                            "WWW-Authenticate": "Bearer"}))

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
        return jsonify(daemon.status())

    @app.get("/metrics")
    async def metrics() -> Any:
        return Response(daemon.metrics_text(), 200,
                        {"Content-Type": "text/plain; version=0.0.4"})

    @app.post("/api/v1/accounts/<account>/sync")
    async def sync(account: str) -> Any:
        handle = daemon.handles.get(account)
        if handle is None:
            return jsonify(error=f"no account named {account!r}"), 404
        handle.wake()
        return jsonify(account=account, state=handle.status.state.value), 202

    @app.get("/api/v1/objects/<limetype>")
    async def objects(limetype: str) -> Any:
        args = request.args.to_dict()
        try:
            limit = min(int(args.pop("_limit", 100)), API_LIMIT_MAX)
        except ValueError:
            return jsonify(error="_limit must be a whole number"), 400
        newest = args.pop("_order", "") == "newest"
        where = {key: filter_value(value) for key, value in args.items()}
        found = await daemon.store.run(
            lambda tx: tx.find(limetype, where, limit=limit, newest_first=newest))
        return jsonify([obj.as_json() for obj in found])

    @app.get("/api/v1/objects/<limetype>/<int:object_id>")
    async def one_object(limetype: str, object_id: int) -> Any:
        obj = await daemon.store.run(lambda tx: tx.get(limetype, object_id))
        if obj is None:
            return jsonify(error=f"no {limetype} with id {object_id}"), 404
        return jsonify(obj.as_json())

    app.register_blueprint(conversations_blueprint(daemon))
    app.register_blueprint(snippets_blueprint(daemon))
    app.register_blueprint(message_errors_blueprint(daemon))
    app.register_blueprint(outbox_blueprint(daemon))
    app.register_blueprint(oauth_blueprint(daemon))
    for blueprint in _plugin_blueprints(daemon):
        app.register_blueprint(blueprint)
    return app


def _plugin_blueprints(daemon: Daemon) -> list[Any]:
    blueprints = []
    for result in call_hook(daemon.pm, "postroom_http_blueprints"):
        blueprints.extend(result)
    return blueprints
