"""What the consent flow and the refresh need from a provider, and how its errors read.

A provider (:mod:`daemon.oauth.microsoft`, :mod:`daemon.oauth.google`) is blocking code
(msal is built on requests; Google's endpoints are called with httpx's sync client), run
by :mod:`daemon.oauth.manager` in worker threads. Three steps:

* ``begin(login_hint, redirect_uri) -> Started``: the provider's authorize URL, with PKCE
  (S256), a random state and a nonce, and what ``finish`` needs later (kept in memory);
* ``finish(started, params) -> Grant``: exchange the callback's code; refuse what must not
  be stored;
* ``refresh(grant) -> Grant``: a new access token from the refresh token.

Errors. The token endpoint's ``error`` field decides, never AADSTS numbers (Microsoft says
they change)::

    invalid_grant, interaction_required,        -> ReauthenticationRequired (the account)
    consent_required, login_required
    invalid_client, unauthorized_client          -> OAuthAppFailing (the app, all accounts)
    HTTP 429, 5xx, temporarily_unavailable,      -> ProviderUnavailable (transient: backoff)
    network errors, anything else

Descriptions are kept (they hold no secrets: ids and AADSTS texts), tokens never.
"""

from __future__ import annotations

__all__ = ["APP_ERRORS", "GRANT_ERRORS", "FlowRefused", "Provider", "ProviderUnavailable",
           "Started", "classify"]

from dataclasses import dataclass, field
from typing import Any, Protocol

from daemon.errors import ConnectError, OAuthAppFailing, PostroomError, ReauthenticationRequired
from daemon.oauth.tokens import Grant

GRANT_ERRORS = frozenset({"invalid_grant", "interaction_required", "consent_required",
                          "login_required"})
APP_ERRORS = frozenset({"invalid_client", "unauthorized_client"})


class ProviderUnavailable(ConnectError):
    """The token endpoint could not be reached or said "later" (429, 5xx)."""


class FlowRefused(ValueError):
    """A callback that must not store anything (forged, replayed, expired, refused)."""


@dataclass(frozen=True)
class Started:
    """A consent in progress. ``secret_state`` (verifier, nonce, msal's flow) stays here."""

    auth_url: str
    state: str
    secret_state: dict[str, Any] = field(repr=False)


class Provider(Protocol):
    def begin(self, login_hint: str, redirect_uri: str) -> Started: ...

    def finish(self, started: Started, params: dict[str, str], *, account: str) -> Grant: ...

    def refresh(self, grant: Grant) -> Grant: ...


def classify(error: str | None, description: str | None, status: int | None, *,
             account: str, app: str) -> PostroomError:
    """The postroom error for a token-endpoint refusal (see the module docstring)."""
    text = f"{error or 'error'}: {description or 'no description'}"
    if status is not None and (status == 429 or status >= 500):
        return ProviderUnavailable(f"token endpoint of app {app!r} answered {status} "
                                   f"({text})", account=account)
    if error in GRANT_ERRORS:
        return ReauthenticationRequired(f"the sign-in is no longer valid ({text}); "
                                        "sign in again", account=account)
    if error in APP_ERRORS:
        return OAuthAppFailing(f"oauth app {app!r} is refused by the provider ({text})",
                               account=account)
    return ProviderUnavailable(f"token endpoint of app {app!r}: {text}", account=account)
