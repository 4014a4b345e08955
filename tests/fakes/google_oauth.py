"""A Google OAuth 2.0 emulator (authorize and token endpoints), over HTTPS on loopback.

Routes (the daemon is pointed here by ``authorize_url`` and ``token_url``)::

    GET  /o/oauth2/v2/auth    signs the login_hint in at once; 302 back with ?code
    POST /token               authorization_code (PKCE S256 checked) and refresh_token
    POST /introspect  (plain http)  for Dovecot's oauth2 passdb

Google's rules the scenarios reproduce: a refresh token only with ``access_type=offline``
and ``prompt=consent``; granular consent may grant fewer scopes than asked
(:attr:`FakeGoogle.granted_scopes`); :attr:`FakeGoogle.omit_refresh_token` answers a code
exchange without one; a revoked token is ``400 invalid_grant`` ("Token has been expired
or revoked.").
"""

from __future__ import annotations

__all__ = ["FakeGoogle"]

import time
from typing import Any

import jwt

from tests.fakes.oauth_server import OAuthEmulator, PendingCode, Reply

ISSUER = "https://accounts.google.com"


class FakeGoogle(OAuthEmulator):
    """See the module docstring."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.granted_scopes: tuple[str, ...] | None = None
        self.omit_refresh_token = False
        self.offline_requested: list[bool] = []

    @property
    def authorize_url(self) -> str:
        return f"{self.base_url}/o/oauth2/v2/auth"

    @property
    def token_url(self) -> str:
        return f"{self.base_url}/token"

    def route(self, method: str, path: str, query: dict[str, str], form: dict[str, str],
              headers: Any) -> Reply:
        if method == "GET" and path == "/o/oauth2/v2/auth":
            self.offline_requested.append(query.get("access_type") == "offline"
                                          and query.get("prompt") == "consent")
            return self.authorize(query, form_post_allowed=False)
        if method == "POST" and path == "/token":
            return self._token(form, headers)
        return Reply(404, {"error": "not_found"})

    def _token(self, form: dict[str, str], headers: Any) -> Reply:
        reply, record, code = self.token(form, headers)
        if record is None:
            return reply
        if code is not None and self.granted_scopes is not None:
            record.scopes = self.granted_scopes
        first = code is not None
        access, refresh = self.issue(record, refresh=first and not self.omit_refresh_token
                                     and bool(self.offline_requested[-1:] == [True]))
        body: dict[str, Any] = {"access_token": access, "expires_in": self.expires_in,
                                "token_type": "Bearer", "scope": " ".join(record.scopes)}
        if refresh:
            body["refresh_token"] = refresh
        if code is not None:
            body["id_token"] = self._id_token(code)
        return Reply(200, body)

    def _id_token(self, code: PendingCode) -> str:
        now = int(time.time())
        return jwt.encode({"iss": ISSUER, "aud": self.client_id, "sub": "1" + "0" * 20,
                           "email": code.user, "email_verified": True, "iat": now,
                           "exp": now + 3600, "nonce": code.nonce},
                          "emulator-signing-key-" + "x" * 16, algorithm="HS256")

    def revoked_description(self) -> str:
        return "Token has been expired or revoked."
