"""A Microsoft Entra ID (v2.0 endpoints) emulator that msal accepts, over HTTPS on loopback.

Routes (``{tenant}`` is any tenant id; the daemon is pointed here by ``authority_base_url``)::

    GET  /{tenant}/v2.0/.well-known/openid-configuration   issuer, authorize, token
    GET  /{tenant}/oauth2/v2.0/authorize                   signs the login_hint in at once;
                                                           302 with ?code (or form_post)
    POST /{tenant}/oauth2/v2.0/token                       authorization_code (PKCE S256
                                                           checked) and refresh_token
    POST /introspect   (plain http)                        for Dovecot's oauth2 passdb

The token response carries what msal checks: ``client_info`` (base64url ``{"uid",
"utid"}``) and an ``id_token`` whose ``aud`` is the client id, ``iss`` the issuer and
``nonce`` the one sent to authorize (signed with a throw-away HS256 key: msal does not
verify id_token signatures, it trusts the TLS channel to the token endpoint).

Errors as Entra gives them: a revoked refresh token is ``400 invalid_grant`` (AADSTS50173),
an expired client secret ``401 invalid_client`` (AADSTS7000222); classify by ``error``.
"""

from __future__ import annotations

__all__ = ["FakeEntra"]

import time
import uuid
from typing import Any

import jwt

from tests.fakes.oauth_server import OAuthEmulator, Reply, b64url

TENANT_ID = "7d6c5b4a-0000-4000-8000-000000000001"


class FakeEntra(OAuthEmulator):
    """See the module docstring and :class:`tests.fakes.oauth_server.OAuthEmulator`."""

    tenant = "contoso"
    forge_nonce = False  # issue id tokens whose nonce is not the one sent to authorize

    def _issuer(self) -> str:
        return f"{self.base_url}/{self.tenant}/v2.0"

    def route(self, method: str, path: str, query: dict[str, str], form: dict[str, str],
              headers: Any) -> Reply:
        prefix = f"/{self.tenant}"
        if method == "GET" and path == f"{prefix}/v2.0/.well-known/openid-configuration":
            return Reply(200, self._discovery())
        if method == "GET" and path == f"{prefix}/oauth2/v2.0/authorize":
            return self.authorize(query, form_post_allowed=True)
        if method == "POST" and path == f"{prefix}/oauth2/v2.0/token":
            return self._token(form, headers)
        return Reply(404, {"error": "not_found", "error_description": path})

    def _discovery(self) -> dict[str, Any]:
        base = f"{self.base_url}/{self.tenant}"
        return {"issuer": self._issuer(),
                "authorization_endpoint": f"{base}/oauth2/v2.0/authorize",
                "token_endpoint": f"{base}/oauth2/v2.0/token",
                "device_authorization_endpoint": f"{base}/oauth2/v2.0/devicecode",
                "end_session_endpoint": f"{base}/oauth2/v2.0/logout",
                "response_modes_supported": ["query", "fragment", "form_post"],
                "tenant_region_scope": "EU"}

    def _token(self, form: dict[str, str], headers: Any) -> Reply:
        reply, record, code = self.token(form, headers)
        if record is None:
            return reply
        access, refresh = self.issue(record)
        oid = str(uuid.uuid5(uuid.NAMESPACE_URL, record.user))
        now = int(time.time())
        claims = {"aud": self.client_id, "iss": self._issuer(), "iat": now, "nbf": now,
                  "exp": now + 3600, "sub": oid, "oid": oid, "tid": TENANT_ID,
                  "preferred_username": record.user, "name": record.user.split("@")[0],
                  "ver": "2.0"}
        if code is not None and code.nonce:
            claims["nonce"] = "forged-nonce" if self.forge_nonce else code.nonce
        scopes = [s for s in record.scopes if s not in ("openid", "profile", "offline_access")]
        return Reply(200, {
            "token_type": "Bearer", "scope": " ".join(scopes), "expires_in": self.expires_in,
            "ext_expires_in": self.expires_in, "access_token": access, "refresh_token": refresh,
            "id_token": jwt.encode(claims, "emulator-signing-key-" + "x" * 16,
                                   algorithm="HS256"),
            "client_info": b64url({"uid": oid, "utid": TENANT_ID})})

    def expired_description(self) -> str:
        return ("AADSTS7000222: The provided client secret keys for app "
                f"'{self.client_id}' are expired.")

    def revoked_description(self) -> str:
        return ("AADSTS50173: The provided grant has expired due to it being revoked, a "
                "fresh auth token is needed.")
