"""Microsoft Entra through msal: the auth code flow and silent refresh, one cache per account.

Blocking (msal runs on requests); :mod:`daemon.oauth.manager` calls it in worker threads.

Pitfalls met, and what this module does about them:

* **TLS.** ``REQUESTS_CA_BUNDLE`` / ``CURL_CA_BUNDLE`` in the environment override a
  ``verify=`` given per request, so msal gets its own ``requests.Session`` with
  ``trust_env = False`` and ``verify`` set to the app's ``ca_file`` (or the default
  bundle).
* **msal's client-side error cache.** A ``ConfidentialClientApplication`` remembers a
  400 from the token endpoint for 60 s and a 429/5xx for its Retry-After, answering
  later calls from memory. Every call here builds a fresh application around the
  account's own ``SerializableTokenCache``, so a refresh after the operator fixed
  something reaches Entra. The price is one OpenID discovery request per call (a few per
  account per hour).
* **Reserved scopes.** ``offline_access``, ``openid`` and ``profile`` make msal raise; it
  adds them itself.
* **Authority.** ``<authority_base_url>/<tenant_id>`` with ``instance_discovery=False``: msal
  reads ``<authority>/v2.0/.well-known/openid-configuration`` (sovereign clouds, the test
  emulator) instead of asking login.microsoftonline.com about the host.

The id token's ``aud``, ``iss`` and ``nonce`` are checked by msal; the account comes from
``client_info``. The signed-in (delegated) user is the id token's ``preferred_username``.
"""

from __future__ import annotations

__all__ = ["MICROSOFT_SCOPES", "MicrosoftProvider"]

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import msal
import requests

from daemon.config import OAuthApp, Secret
from daemon.errors import ReauthenticationRequired
from daemon.oauth.provider import FlowRefused, ProviderUnavailable, Started, classify
from daemon.oauth.tokens import Grant

MICROSOFT_SCOPES: dict[str, tuple[str, ...]] = {
    "api": ("Mail.ReadWrite", "Mail.ReadWrite.Shared", "Mail.Send", "Mail.Send.Shared",
            "User.Read", "User.ReadBasic.All"),
    "imap_smtp": ("https://outlook.office.com/IMAP.AccessAsUser.All",
                  "https://outlook.office.com/SMTP.Send"),
}


class MicrosoftProvider:
    """See the module docstring and :class:`daemon.oauth.provider.Provider`."""

    def __init__(self, app: OAuthApp, secret: Secret, *, now: Callable[[], float]) -> None:
        self.app = app
        self._secret = secret
        self._now = now
        self.scopes = list(MICROSOFT_SCOPES[app.base_scope])

    def __repr__(self) -> str:
        return f"<MicrosoftProvider {self.app.id}>"

    @contextmanager
    def _network(self, account: str) -> Iterator[None]:
        try:
            yield
        except requests.RequestException as exc:
            raise ProviderUnavailable(f"cannot reach Entra for app {self.app.id!r}: "
                                      f"{type(exc).__name__}", account=account) from None
        except msal.exceptions.MsalServiceError as exc:  # msal raises on a 5xx
            raise ProviderUnavailable(f"Entra failed for app {self.app.id!r}: {exc}",
                                      account=account) from None

    def _client(self, cache: msal.SerializableTokenCache | None = None
                ) -> msal.ConfidentialClientApplication:
        session = requests.Session()
        session.trust_env = False
        session.verify = str(self.app.ca_file) if self.app.ca_file else True
        try:
            return msal.ConfidentialClientApplication(
                self.app.client_id, client_credential=self._secret.reveal(),
                authority=f"{self.app.authority_base_url}/{self.app.tenant_id}",
                token_cache=cache, http_client=session, instance_discovery=False)
        except ValueError as exc:  # discovery failed: msal says "Unable to get authority"
            raise ProviderUnavailable(f"Entra discovery for app {self.app.id!r} failed: "
                                      f"{exc}") from None

    def begin(self, login_hint: str, redirect_uri: str) -> Started:
        with self._network(""):
            flow = self._client().initiate_auth_code_flow(
                self.scopes, redirect_uri=redirect_uri, login_hint=login_hint,
                response_mode="form_post")
        return Started(flow["auth_uri"], flow["state"], {"flow": flow})

    def finish(self, started: Started, params: dict[str, str], *, account: str) -> Grant:
        flow = dict(started.secret_state.get("flow") or {})
        if not flow.get("code_verifier"):
            raise FlowRefused("no PKCE verifier for this sign-in; start again")
        if "error" in params:
            raise FlowRefused(f"Microsoft refused the sign-in: {params['error']}: "
                              f"{params.get('error_description', '')}".rstrip(": "))
        cache = msal.SerializableTokenCache()
        with self._network(account):
            try:
                result = self._client(cache).acquire_token_by_auth_code_flow(flow, params)
            except ValueError as exc:  # state mismatch, missing code
                raise FlowRefused(f"the callback does not match the sign-in ({exc})") from None
            except RuntimeError:  # msal's id token checks: aud, iss or nonce differ
                raise FlowRefused("the id token was not issued for this sign-in (aud, iss "
                                  "or nonce differ)") from None
        self._raise_for(result, account)
        claims = result.get("id_token_claims") or {}
        return Grant(account=account, app=self.app.id, provider="microsoft",
                     user=str(claims.get("preferred_username") or claims.get("sub") or ""),
                     scopes=tuple(str(result.get("scope", "")).split()),
                     consented_at=self._now(), access_token=result["access_token"],
                     expires_at=self._now() + float(result.get("expires_in", 3600)),
                     msal_cache=cache.serialize())

    def refresh(self, grant: Grant) -> Grant:
        cache = msal.SerializableTokenCache()
        cache.deserialize(grant.msal_cache)
        with self._network(grant.account):
            client = self._client(cache)
            accounts = client.get_accounts()
            if not accounts:
                raise ReauthenticationRequired("the stored sign-in has no account; sign in "
                                               "again", account=grant.account)
            result = client.acquire_token_silent_with_error(self.scopes, account=accounts[0],
                                                            force_refresh=True)
        if result is None:
            raise ReauthenticationRequired("no refresh token is stored; sign in again",
                                           account=grant.account)
        self._raise_for(result, grant.account)
        return grant.with_access_token(
            result["access_token"], self._now() + float(result.get("expires_in", 3600)),
            msal_cache=cache.serialize() if cache.has_state_changed else grant.msal_cache)

    def _raise_for(self, result: dict[str, Any], account: str) -> None:
        if "access_token" in result:
            return
        raise classify(result.get("error"), result.get("error_description"),
                       None, account=account, app=self.app.id)
