"""Google OAuth 2.0 through httpx: authorization code with PKCE, refresh, granular consent.

Blocking (httpx's sync client); :mod:`daemon.oauth.manager` calls it in worker threads.

Google's rules (developers.google.com/identity/protocols/oauth2/web-server):

* a refresh token comes only with ``access_type=offline`` and ``prompt=consent`` (and only
  on the first exchange of a code);
* granular consent lets the user untick scopes, so the granted ``scope`` is checked: a
  grant without ``https://mail.google.com/`` (or without a refresh token) is refused and
  nothing is stored;
* a refresh token dies on revocation, after 6 months unused, on a password change, past
  100 live tokens per client, and after 7 days for apps in "Testing" (see
  ``publishing_status``): all answer ``invalid_grant``.

``openid email`` are asked for too, so the id token names the user who signed in; its
``aud``, ``iss`` and ``nonce`` are checked here (the signature is not: the token comes
straight from the token endpoint over TLS, which is what OpenID Connect Core §3.1.3.7
allows for the code flow).
"""

from __future__ import annotations

__all__ = ["GOOGLE_MAIL_SCOPE", "GoogleProvider"]

import base64
import hashlib
import secrets
import ssl
from collections.abc import Callable
from typing import Any
from urllib.parse import urlencode

import httpx
import jwt

from daemon.config import OAuthApp, Secret
from daemon.oauth.provider import FlowRefused, ProviderUnavailable, Started, classify
from daemon.oauth.tokens import Grant

GOOGLE_MAIL_SCOPE = "https://mail.google.com/"
_ISSUERS = ("https://accounts.google.com", "accounts.google.com")


def _challenge(verifier: str) -> str:
    digest = hashlib.sha256(verifier.encode()).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


class GoogleProvider:
    """See the module docstring and :class:`daemon.oauth.provider.Provider`."""

    def __init__(self, app: OAuthApp, secret: Secret, *, now: Callable[[], float]) -> None:
        self.app = app
        self._secret = secret
        self._now = now
        self.scopes = (GOOGLE_MAIL_SCOPE, "openid", "email")

    def __repr__(self) -> str:
        return f"<GoogleProvider {self.app.id}>"

    def begin(self, login_hint: str, redirect_uri: str) -> Started:
        verifier, state, nonce = (secrets.token_urlsafe(64), secrets.token_urlsafe(32),
                                  secrets.token_urlsafe(16))
        query = {"client_id": self.app.client_id, "redirect_uri": redirect_uri,
                 "response_type": "code", "scope": " ".join(self.scopes),
                 "access_type": "offline", "prompt": "consent",
                 "include_granted_scopes": "true", "login_hint": login_hint, "state": state,
                 "nonce": nonce, "code_challenge": _challenge(verifier),
                 "code_challenge_method": "S256"}
        return Started(f"{self.app.authorize_url}?{urlencode(query)}", state,
                       {"code_verifier": verifier, "nonce": nonce,
                        "redirect_uri": redirect_uri})

    def finish(self, started: Started, params: dict[str, str], *, account: str) -> Grant:
        verifier = started.secret_state.get("code_verifier")
        if not verifier:
            raise FlowRefused("no PKCE verifier for this sign-in; start again")
        if "error" in params:
            raise FlowRefused(f"Google refused the sign-in: {params['error']}")
        if not params.get("code"):
            raise FlowRefused("the callback carries no code")
        body = self._post({"grant_type": "authorization_code", "code": params["code"],
                           "redirect_uri": started.secret_state["redirect_uri"],
                           "code_verifier": verifier}, account)
        granted = tuple(str(body.get("scope", "")).split())
        if GOOGLE_MAIL_SCOPE not in granted:
            raise FlowRefused(f"the mail scope {GOOGLE_MAIL_SCOPE} was not granted (Google "
                              "lets users untick it); sign in again and allow mail access")
        if not body.get("refresh_token"):
            raise FlowRefused("Google sent no refresh token (the app may already hold one "
                              "for this user: remove its access in the Google account and "
                              "sign in again)")
        user = self._signed_in_user(body.get("id_token"), started.secret_state["nonce"])
        return Grant(account=account, app=self.app.id, provider="google", user=user,
                     scopes=granted, consented_at=self._now(),
                     access_token=body["access_token"],
                     expires_at=self._now() + float(body.get("expires_in", 3600)),
                     refresh_token=body["refresh_token"])

    def refresh(self, grant: Grant) -> Grant:
        body = self._post({"grant_type": "refresh_token",
                           "refresh_token": grant.refresh_token}, grant.account)
        return grant.with_access_token(
            body["access_token"], self._now() + float(body.get("expires_in", 3600)),
            refresh_token=body.get("refresh_token") or grant.refresh_token)

    def _signed_in_user(self, id_token: Any, nonce: str) -> str:
        if not isinstance(id_token, str):
            raise FlowRefused("Google sent no id token")
        claims = jwt.decode(id_token, options={"verify_signature": False})
        if claims.get("aud") != self.app.client_id or claims.get("iss") not in _ISSUERS \
                or claims.get("nonce") != nonce:
            raise FlowRefused("the id token was not issued for this sign-in (aud, iss or "
                              "nonce differ)")
        return str(claims.get("email") or claims.get("sub") or "")

    def _post(self, form: dict[str, str], account: str) -> dict[str, Any]:
        form = {**form, "client_id": self.app.client_id,
                "client_secret": self._secret.reveal()}
        verify: ssl.SSLContext | bool = (ssl.create_default_context(cafile=str(self.app.ca_file))
                                         if self.app.ca_file else True)
        timeout = httpx.Timeout(self.app.read_timeout_seconds,
                                connect=self.app.connect_timeout_seconds)
        try:
            with httpx.Client(verify=verify, trust_env=False, timeout=timeout) as client:
                response = client.post(self.app.token_url, data=form)
        except httpx.TransportError as exc:
            raise ProviderUnavailable(f"cannot reach Google for app {self.app.id!r}: "
                                      f"{type(exc).__name__}", account=account) from None
        try:
            body = response.json()
        except ValueError:
            body = {}
        if response.status_code == 200 and "access_token" in body:
            return dict(body)
        raise classify(body.get("error"), body.get("error_description"),
                       response.status_code, account=account, app=self.app.id)
