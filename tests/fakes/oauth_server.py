"""What the Entra and Google emulators share: an HTTPS server, token bookkeeping, introspection.

:class:`OAuthEmulator` runs two threaded HTTP servers on loopback:

* the provider's endpoints over **HTTPS**, with a certificate from a trustme CA
  (:attr:`OAuthEmulator.ca_file`), as the daemon reaches the real ones;
* an introspection endpoint over plain HTTP for Dovecot's ``oauth2`` passdb
  (:attr:`OAuthEmulator.introspection_url`), answering ``200 {"active": true, "username":
  U}`` for a live access token and ``200 {"active": false}`` for an expired or revoked one
  (Dovecot reads HTTP 401 as a *temporary* failure).

Subclasses add the routes (:mod:`tests.fakes.entra`, :mod:`tests.fakes.google_oauth`).
Tokens are random strings recorded with the user they were issued to; the test drives
the scenario: :meth:`revoke` (consent withdrawn: the user's refresh and access tokens
die), :meth:`expire_access_tokens`, :attr:`secret_expired` (the app's client secret),
:meth:`fail_next` (a 429/5xx from the token endpoint). :attr:`token_requests` records
every token-endpoint call as ``(grant_type, status, error)``.
"""

from __future__ import annotations

__all__ = ["IssuedToken", "OAuthEmulator", "Reply"]

import base64
import hashlib
import html
import json
import secrets
import ssl
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

import trustme

HOST = "127.0.0.1"


@dataclass
class Reply:
    status: int
    body: Any = None
    headers: dict[str, str] = field(default_factory=dict)


@dataclass
class IssuedToken:
    """``user`` signed in; ``mailbox`` is what the token opens (a shared mailbox the user
    may open, as Exchange allows; default the user's own)."""

    user: str
    client_id: str
    scopes: tuple[str, ...]
    active: bool = True
    mailbox: str = ""


@dataclass
class PendingCode:
    client_id: str
    redirect_uri: str
    challenge: str
    method: str
    nonce: str
    user: str
    scopes: tuple[str, ...]
    mailbox: str = ""


def s256(verifier: str) -> str:
    digest = hashlib.sha256(verifier.encode()).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


def b64url(data: dict[str, Any]) -> str:
    return base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()


class OAuthEmulator:
    """See the module docstring. ``start()`` / ``stop()``; thread-safe bookkeeping.

    Args:
        ca: the trustme CA signing the HTTPS certificate.
        workdir: where the CA file is written.
        client_id, client_secret: the one registered app.
    """

    def __init__(self, ca: trustme.CA, workdir: Path, *, client_id: str,
                 client_secret: str) -> None:
        self.ca_file = workdir / f"{type(self).__name__.lower()}-ca.pem"
        ca.cert_pem.write_to_path(str(self.ca_file))
        self._context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        ca.issue_cert(HOST, "localhost").configure_cert(self._context)
        self.client_id = client_id
        self.client_secret = client_secret
        self.lock = threading.Lock()
        self.codes: dict[str, PendingCode] = {}
        self.access_tokens: dict[str, IssuedToken] = {}
        self.refresh_tokens: dict[str, IssuedToken] = {}
        self.token_requests: list[tuple[str, int, str | None]] = []
        self.secret_expired = False
        self.expires_in = 3600
        self.sign_in_as: str | None = None  # who signs in; default the login_hint
        self.deny: str | None = None  # an authorize error ("access_denied")
        self._failures: list[Reply] = []
        self._https = self._server(self._context)
        self._plain = self._server(None)
        self.base_url = f"https://{HOST}:{self._https.server_address[1]}"
        self.introspection_url = f"http://{HOST}:{self._plain.server_address[1]}/introspect"
        self._threads: list[threading.Thread] = []

    # -- lifecycle ---------------------------------------------------------------------

    def _server(self, context: ssl.SSLContext | None) -> ThreadingHTTPServer:
        emulator = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                emulator._serve(self, "GET")

            def do_POST(self) -> None:
                emulator._serve(self, "POST")

            def log_message(self, format: str, *args: Any) -> None:
                pass

        server = ThreadingHTTPServer((HOST, 0), Handler)
        server.daemon_threads = True
        if context is not None:
            server.socket = context.wrap_socket(server.socket, server_side=True)
        return server

    def start(self) -> None:
        for server in (self._https, self._plain):
            thread = threading.Thread(target=server.serve_forever, daemon=True)
            thread.start()
            self._threads.append(thread)

    def stop(self) -> None:
        for server in (self._https, self._plain):
            server.shutdown()
            server.server_close()

    # -- scenario ----------------------------------------------------------------------

    def revoke(self, user: str) -> None:
        """Consent withdrawn: every refresh and access token of ``user`` dies."""
        with self.lock:
            for token in (*self.access_tokens.values(), *self.refresh_tokens.values()):
                if token.user == user:
                    token.active = False

    def expire_access_tokens(self) -> None:
        """Every access token issued so far is past its expiry."""
        with self.lock:
            for token in self.access_tokens.values():
                token.active = False

    def fail_next(self, status: int, error: str = "temporarily_unavailable",
                  headers: dict[str, str] | None = None) -> None:
        """The next token-endpoint call answers ``status`` with ``error``."""
        with self.lock:
            self._failures.append(Reply(status, {"error": error}, headers or {}))

    def live_access_tokens(self, mailbox: str) -> list[str]:
        """Live access tokens that open ``mailbox`` (for the SMTP server's check)."""
        with self.lock:
            return [t for t, i in self.access_tokens.items()
                    if (i.mailbox or i.user) == mailbox and i.active]

    # -- plumbing ----------------------------------------------------------------------

    def _serve(self, handler: BaseHTTPRequestHandler, method: str) -> None:
        url = urlsplit(handler.path)
        query = {k: v[0] for k, v in parse_qs(url.query).items()}
        form: dict[str, str] = {}
        if method == "POST":
            length = int(handler.headers.get("Content-Length") or 0)
            body = handler.rfile.read(length).decode()
            form = {k: v[0] for k, v in parse_qs(body, keep_blank_values=True).items()}
        if url.path == "/introspect" and method == "POST":
            reply = self._introspect(form)
        else:
            reply = self.route(method, url.path, query, form, handler.headers)
        self._send(handler, reply)

    @staticmethod
    def _send(handler: BaseHTTPRequestHandler, reply: Reply) -> None:
        if isinstance(reply.body, (dict, list)):
            data = json.dumps(reply.body).encode()
            reply.headers.setdefault("Content-Type", "application/json")
        else:
            data = (reply.body or "").encode()
            reply.headers.setdefault("Content-Type", "text/html; charset=utf-8")
        handler.send_response(reply.status)
        for name, value in reply.headers.items():
            handler.send_header(name, value)
        handler.send_header("Content-Length", str(len(data)))
        handler.end_headers()
        handler.wfile.write(data)

    def route(self, method: str, path: str, query: dict[str, str], form: dict[str, str],
              headers: Any) -> Reply:
        raise NotImplementedError

    def _introspect(self, form: dict[str, str]) -> Reply:
        with self.lock:
            token = self.access_tokens.get(form.get("token", ""))
        if token is None or not token.active:
            return Reply(200, {"active": False})
        return Reply(200, {"active": True, "username": token.mailbox or token.user,
                           "scope": " ".join(token.scopes)})

    # -- shared endpoint logic ---------------------------------------------------------

    def authorize(self, query: dict[str, str], *, form_post_allowed: bool) -> Reply:
        """Sign the user in at once and send the browser back with a code (or an error)."""
        redirect_uri, state = query.get("redirect_uri", ""), query.get("state", "")
        if query.get("client_id") != self.client_id:
            return Reply(400, "unknown client_id")
        if self.deny:
            params = {"error": self.deny, "error_description": "The user said no.",
                      "state": state}
        else:
            code = secrets.token_urlsafe(16)
            user = self.sign_in_as or query.get("login_hint") or "someone@example.com"
            with self.lock:
                self.codes[code] = PendingCode(
                    self.client_id, redirect_uri, query.get("code_challenge", ""),
                    query.get("code_challenge_method", ""), query.get("nonce", ""), user,
                    tuple(query.get("scope", "").split()), query.get("login_hint") or user)
            params = {"code": code, "state": state}
        if form_post_allowed and query.get("response_mode") == "form_post":
            inputs = "".join(f'<input type="hidden" name="{k}" value="{html.escape(v)}">'
                             for k, v in params.items())
            return Reply(200, f'<form method="post" action="{html.escape(redirect_uri)}">'
                              f"{inputs}</form>")
        return Reply(302, "", {"Location": f"{redirect_uri}?{urlencode(params)}"})

    def token(self, form: dict[str, str], headers: Any) -> tuple[Reply, IssuedToken | None,
                                                                  PendingCode | None]:
        """Check the client and the grant; a reply for refusals, else the issued record."""
        grant_type = form.get("grant_type", "")
        refusal, issued, code = self._token_checks(form, headers, grant_type)
        if refusal is not None:
            self.token_requests.append((grant_type, refusal.status,
                                        (refusal.body or {}).get("error")))
            return refusal, None, None
        self.token_requests.append((grant_type, 200, None))
        return Reply(200), issued, code

    def _client_secret(self, form: dict[str, str], headers: Any) -> str | None:
        auth = headers.get("Authorization", "")
        if auth.startswith("Basic "):
            return base64.b64decode(auth[6:]).decode().partition(":")[2]
        return form.get("client_secret")

    def _token_checks(self, form: dict[str, str], headers: Any, grant_type: str
                      ) -> tuple[Reply | None, IssuedToken | None, PendingCode | None]:
        with self.lock:
            if self._failures:
                return self._failures.pop(0), None, None
            if form.get("client_id", self.client_id) != self.client_id:
                return self.error(400, "unauthorized_client", "unknown client id"), None, None
            if self.secret_expired:
                return self.error(401, "invalid_client", self.expired_description()), None, None
            if self._client_secret(form, headers) != self.client_secret:
                return self.error(401, "invalid_client", "wrong client secret"), None, None
            if grant_type == "authorization_code":
                code = self.codes.pop(form.get("code", ""), None)
                if code is None or code.redirect_uri != form.get("redirect_uri"):
                    return self.error(400, "invalid_grant", "unknown or used code"), None, None
                if code.method != "S256" or s256(form.get("code_verifier", "")) != code.challenge:
                    return self.error(400, "invalid_grant", "PKCE verification failed"), \
                        None, None
                return None, IssuedToken(code.user, self.client_id, code.scopes,
                                         mailbox=code.mailbox), code
            if grant_type == "refresh_token":
                record = self.refresh_tokens.get(form.get("refresh_token", ""))
                if record is None or not record.active:
                    return self.error(400, "invalid_grant", self.revoked_description()), \
                        None, None
                scopes = tuple(form.get("scope", "").split()) or record.scopes
                return None, IssuedToken(record.user, self.client_id, scopes,
                                         mailbox=record.mailbox), None
            return self.error(400, "unsupported_grant_type", grant_type), None, None

    def issue(self, record: IssuedToken, *, refresh: bool = True) -> tuple[str, str | None]:
        access = "at-" + secrets.token_urlsafe(24)
        refresh_token = "rt-" + secrets.token_urlsafe(24) if refresh else None
        with self.lock:
            self.access_tokens[access] = IssuedToken(record.user, record.client_id,
                                                     record.scopes, mailbox=record.mailbox)
            if refresh_token:
                self.refresh_tokens[refresh_token] = IssuedToken(
                    record.user, record.client_id, record.scopes, mailbox=record.mailbox)
        return access, refresh_token

    @staticmethod
    def error(status: int, error: str, description: str) -> Reply:
        return Reply(status, {"error": error, "error_description": description})

    def expired_description(self) -> str:
        return "The provided client secret keys are expired."

    def revoked_description(self) -> str:
        return "The refresh token was revoked."
