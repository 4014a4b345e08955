"""The OAuth routes: the "Authenticate" button's start, and the provider's callback.

Routes::

    GET       /oauth/start?account=ID[&link=L]   302 to the provider (PKCE S256, state, nonce)
    GET|POST  /oauth/callback                    the provider sends the browser back here
    GET|POST  <path of each app's redirect_uri>  the same (the reference's
                                                 /<app>/limepkg-email/oauth/callback)

``/oauth/start`` needs ``Authorization: Bearer <api token>`` when an API token is set, or a
one-time ``link`` from ``postroom authenticate ACCOUNT`` (a browser cannot send the
header). The callback accepts query parameters (GET) and ``form_post`` (POST, which msal
asks Microsoft for); it needs no token: the single-use state is its credential. Its page
names the mailbox and the user who signed in, or says why nothing was stored (400).
"""

from __future__ import annotations

__all__ = ["oauth_blueprint"]

import hmac
from html import escape
from typing import Any

from quart import Blueprint, Response, redirect, request

from daemon.http.context import DaemonContext
from daemon.oauth.flow import callback_paths
from daemon.oauth.provider import FlowRefused, ProviderUnavailable


def oauth_blueprint(daemon: DaemonContext) -> Blueprint:
    """The routes above, bound to the running daemon (a :class:`DaemonContext`)."""
    bp = Blueprint("oauth", __name__)

    @bp.get("/oauth/start")
    async def start() -> Any:
        account = request.args.get("account", "")
        link = request.args.get("link")
        try:
            if link is not None:
                daemon.oauth.links.check(account, link)
            elif not _bearer_ok(daemon):
                return _page("Not allowed", "This link needs the API token (or run "
                             "postroom authenticate for a one-time link).", 401)
            url = await daemon.oauth.begin(account)
        except FlowRefused as exc:
            return _page("Sign-in refused", str(exc), 400)
        except ProviderUnavailable as exc:
            return _page("Provider unavailable", str(exc), 503)
        return redirect(url, 302)

    async def callback() -> Any:
        if request.method == "POST":
            params = dict((await request.form).items())
        else:
            params = dict(request.args.items())
        try:
            signed_in = await daemon.oauth.finish(params)
        except FlowRefused as exc:
            return _page("Sign-in refused", f"{exc}. Nothing was stored.", 400)
        return _page("Signed in", f"The mailbox {signed_in.mailbox} is connected, signed "
                     f"in as {signed_in.user or 'unknown'}.", 200)

    for number, path in enumerate(callback_paths(daemon.config)):
        bp.add_url_rule(path, f"callback_{number}", callback, methods=["GET", "POST"])
    return bp


def _bearer_ok(daemon: DaemonContext) -> bool:
    token = daemon.api_token
    if token is None:
        return True
    given = request.headers.get("Authorization", "")
    return hmac.compare_digest(given.encode(), f"Bearer {token.reveal()}".encode())


def _page(title: str, text: str, status: int) -> Response:
    body = (f"<!doctype html><meta charset=utf-8><title>{escape(title)}</title>"
            f"<h1>{escape(title)}</h1><p>{escape(text)}</p>")
    return Response(body, status, {"Content-Type": "text/html; charset=utf-8",
                                   "Cache-Control": "no-store"})
