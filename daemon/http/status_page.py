"""The status page: what an operator looks at, served by the daemon itself.

::

    GET  /                                  the page (accounts, failed, outbox, errors)
    GET  /login   POST /login   POST /logout
    GET  /ui/fragment                       the page's main part (live updates fetch it)
    GET  /ui/failed/<id>/raw                a failed message as received
    POST /ui/accounts/<id>/sync             "Sync now"
    POST /ui/failed/<id>/retry              "Retry" (re-import)
    POST /ui/outbox/<id>/retry | /cancel    "Retry" / "Cancel"
    POST /ui/errors/<id>/resolve            "Resolve" a conversationmessageerror

Server-rendered Jinja2 (``daemon/templates/ui/*.html``), no build step; a few lines of
plain JS subscribe to ``/events`` and re-fetch the fragment when something happens, and
every button is a plain form, so the page works without JS too.

Who may see it: with ``[http] api_token``, whoever logs in with the token. The login sets
a session cookie (random, HttpOnly, SameSite=Strict, Path=/; ``Secure`` when the request
came over HTTPS) naming an in-memory session, so a restart logs everyone out. Without a
token, the app's loopback rule applies (:func:`daemon.http.app._check_caller`) and no
login is asked.

CSRF: every form carries the session's CSRF token (a random value compared in constant
time), the cookie is SameSite=Strict, and a POST whose ``Origin`` names another host is
refused. The ``/events`` websocket accepts the session cookie only with a same-host
``Origin``.
"""

from __future__ import annotations

__all__ = ["SESSION_COOKIE", "Sessions", "status_page_blueprint"]

import hmac
import secrets
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import jinja2
from quart import Blueprint, Response, redirect, request, websocket

from daemon.config import RuntimeConfig
from daemon.crm.errors import open_errors, resolve
from daemon.http.context import DaemonContext
from daemon.http.failed import failed_as_json
from daemon.http.input import ApiError, path_id
from daemon.http.outbox import outbox_action
from daemon.store.base import Tx

SESSION_COOKIE = "postroom_session"
SESSION_SECONDS = 12 * 3600
_LIST = 50
_TEMPLATES = jinja2.Environment(
    loader=jinja2.FileSystemLoader(Path(__file__).parents[1] / "templates" / "ui"),
    autoescape=True, undefined=jinja2.StrictUndefined)


@dataclass
class _Session:
    csrf: str
    expires: float


class Sessions:
    """Logged-in browsers: session id -> CSRF token and expiry (in memory)."""

    def __init__(self, needs_login: bool) -> None:
        self.needs_login = needs_login
        self._sessions: dict[str, _Session] = {}
        self._anonymous_csrf = secrets.token_urlsafe(32)  # loopback-only mode

    def open(self) -> str:
        self._forget_expired()
        sid = secrets.token_urlsafe(32)
        self._sessions[sid] = _Session(secrets.token_urlsafe(32),
                                       time.monotonic() + SESSION_SECONDS)
        return sid

    def close(self, sid: str | None) -> None:
        self._sessions.pop(sid or "", None)

    def lookup(self, sid: str | None) -> _Session | None:
        if not self.needs_login:
            return _Session(self._anonymous_csrf, float("inf"))
        session = self._sessions.get(sid or "")
        if session is None or session.expires < time.monotonic():
            return None
        return session

    def websocket_allowed(self) -> bool:
        """For ``/events``: a valid session cookie and a same-host ``Origin``."""
        origin = websocket.headers.get("Origin")
        if origin is None or urlsplit(origin).netloc != websocket.headers.get("Host"):
            return False
        return self.lookup(websocket.cookies.get(SESSION_COOKIE)) is not None

    def _forget_expired(self) -> None:
        now = time.monotonic()
        for sid in [s for s, v in self._sessions.items() if v.expires < now]:
            del self._sessions[sid]


def status_page_blueprint(daemon: DaemonContext) -> tuple[Blueprint, Sessions]:
    """The routes above, and the sessions (``/events`` checks them too)."""
    bp = Blueprint("status_page", __name__)
    sessions = Sessions(needs_login=daemon.api_token is not None)

    def current() -> _Session | None:
        return sessions.lookup(request.cookies.get(SESSION_COOKIE))

    @bp.get("/")
    async def page() -> Any:
        session = current()
        if session is None:
            return redirect("/login", 303)
        data = await _page_data(daemon)
        return _html("status.html", csrf=session.csrf, login=sessions.needs_login,
                     **data)

    @bp.get("/ui/fragment")
    async def fragment() -> Any:
        session = current()
        if session is None:
            return Response("log in again", 401, {"Content-Type": "text/plain"})
        return _html("main.html", csrf=session.csrf, **await _page_data(daemon))

    @bp.get("/login")
    async def login_form() -> Any:
        if not sessions.needs_login:
            return redirect("/", 303)
        return _html("login.html", error=None)

    @bp.post("/login")
    async def login() -> Any:
        _same_origin()
        form = await request.form
        token = daemon.api_token
        given = (form.get("token") or "").encode()
        if token is None or not hmac.compare_digest(given, token.reveal().encode()):
            return _html("login.html", error="That is not the API token.", status=401)
        response = redirect("/", 303)
        response.set_cookie(SESSION_COOKIE, sessions.open(), max_age=SESSION_SECONDS,
                            httponly=True, samesite="Strict", path="/",
                            secure=request.scheme == "https")
        return response

    @bp.post("/logout")
    async def logout() -> Any:
        await _checked_form(current())
        sessions.close(request.cookies.get(SESSION_COOKIE))
        response = redirect("/login", 303)
        response.delete_cookie(SESSION_COOKIE, path="/")
        return response

    @bp.get("/ui/failed/<failed_id>/raw")
    async def raw(failed_id: str) -> Any:
        if current() is None:
            return redirect("/login", 303)
        number = path_id("failed_id", failed_id)
        record = await daemon.store.run(lambda tx: tx.raw_by_id(number))
        if record is None or record.status != "failed":
            raise ApiError("failed_id", f"no failed message with id {number}", 404)
        return Response(record.raw, 200, {
            "Content-Type": "message/rfc822",
            "Content-Disposition": f'attachment; filename="failed-{number}.eml"'})

    @bp.post("/ui/accounts/<account>/sync")
    async def sync(account: str) -> Any:
        await _checked_form(current())
        handle = daemon.handles.get(account)
        if handle is None:
            raise ApiError("account", f"no account named {account!r}", 404)
        handle.wake()
        return redirect("/", 303)

    @bp.post("/ui/failed/<failed_id>/retry")
    async def retry_failed(failed_id: str) -> Any:
        await _checked_form(current())
        number = path_id("failed_id", failed_id)
        record = await daemon.store.run(lambda tx: tx.raw_by_id(number))
        if record is not None and record.status == "failed":
            await daemon.retry_message(record.source_key)
        return redirect("/", 303)

    @bp.post("/ui/outbox/<outbox_id>/<action>")
    async def outbox(outbox_id: str, action: str) -> Any:
        await _checked_form(current())
        number = path_id("outbox_id", outbox_id)
        if action not in ("retry", "cancel"):
            raise ApiError("action", "retry or cancel", 404)
        verb = "retried" if action == "retry" else "cancelled"
        if await daemon.store.run(lambda tx: outbox_action(tx, number, verb)):
            daemon.mail_queued()
        return redirect("/", 303)

    @bp.post("/ui/errors/<record>/resolve")  # not "error_id": the app converts those
    async def resolve(record: str) -> Any:
        await _checked_form(current())
        number = path_id("record", record)
        await daemon.store.run(lambda tx: _resolve(tx, daemon.config.runtime, number))
        return redirect("/", 303)

    return bp, sessions


def _html(name: str, *, status: int = 200, **context: Any) -> Response:
    body = _TEMPLATES.get_template(name).render(**context)
    return Response(body, status, {
        "Content-Type": "text/html; charset=utf-8",
        "Content-Security-Policy": "default-src 'self'; style-src 'self' 'unsafe-inline'; "
                                   "script-src 'self' 'unsafe-inline'; "
                                   "connect-src 'self' ws: wss:; frame-ancestors 'none'",
        "X-Frame-Options": "DENY", "Referrer-Policy": "same-origin",
        "Cache-Control": "no-store"})


def _same_origin() -> None:
    """Refuse a POST whose ``Origin`` (when sent) is another host."""
    origin = request.headers.get("Origin")
    if origin is not None and urlsplit(origin).netloc != request.headers.get("Host"):
        raise ApiError("Origin", "cross-site form posts are refused", 403)


async def _checked_form(session: _Session | None) -> None:
    """A logged-in session, a same-host Origin and the right CSRF token, or ApiError."""
    if session is None:
        raise ApiError("session", "log in first", 401)
    _same_origin()
    form = await request.form
    if not hmac.compare_digest((form.get("csrf") or "").encode(), session.csrf.encode()):
        raise ApiError("csrf", "the form is stale or forged; reload the page", 403)


def _resolve(tx: Tx, runtime: RuntimeConfig, error_id: int) -> None:
    resolve(tx, runtime, error_id, coworker=None, when=datetime.now(UTC))


async def _page_data(daemon: DaemonContext) -> dict[str, Any]:
    """Everything the page shows, read in one store call."""
    ecfg = daemon.config.runtime.conversation_message_error

    def read(tx: Any) -> dict[str, Any]:
        errors = open_errors(tx, daemon.config.runtime, limit=_LIST)
        return {
            "failed": [failed_as_json(i, r) for i, r in tx.failed_raw(0, _LIST)],
            "queued": tx.outbox_page("queued", 0, _LIST),
            "held": tx.outbox_page("held", 0, _LIST),
            "outbox_failed": tx.outbox_page("failed", 0, _LIST),
            "errors": [{"id": e.id, "type": e.get(ecfg.property_type),
                        "message": e.get(ecfg.property_error_message),
                        "date": e.get(ecfg.property_date)} for e in errors],
        }

    data = await daemon.store.run(read)
    status = daemon.status()
    data["accounts"] = [_account_view(daemon, a) for a in status["accounts"]]
    data["outbox_status"] = status.get("outbox", {})
    data["now"] = datetime.now(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
    return data


def _account_view(daemon: DaemonContext, account: dict[str, Any]) -> dict[str, Any]:
    """One row of the accounts table: intake mode and node beside /status's fields."""
    configured = next((a for a in daemon.config.accounts if a.id == account["account"]),
                      None)
    mode = "maildir scan"
    if account.get("kind") not in ("maildir", None):
        mode = "webhook + delta" if account.get("webhook") else (
            "IDLE" if account.get("idle", True) else "polling")
    return {**account, "mode": mode, "node": daemon.config.daemon.installation_id,
            "oauth": bool(configured is not None and getattr(configured, "oauth", False)),
            "warnings": account.get("warnings", [])}
