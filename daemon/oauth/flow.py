"""The consent flow's bookkeeping: single-use states, signed start links, redirect URIs.

A sign-in starts at ``GET /oauth/start?account=ID`` and ends at the callback. Between the
two, the daemon keeps (in memory, never on disk) what the provider step needs to finish:
the PKCE verifier, the nonce and msal's flow. :class:`PendingSignIns` hands each state out
once, for :data:`STATE_LIFETIME`, bound to the account it was started for; a wrong,
replayed or expired state is refused and nothing is stored.

``postroom authenticate ACCOUNT`` runs outside the daemon and has no browser session, so
it prints a start link carrying a :class:`StartLinks` token instead of the API token: an
HMAC over the account, an expiry and a nonce (key derived from the secret key with HKDF),
good once within :data:`START_LINK_LIFETIME`.

The redirect URI is the app's ``redirect_uri``, else ``<public_base_url>/oauth/callback``;
the callback is served at each such path (the reference product's
``/<app>/limepkg-email/oauth/callback`` keeps working).

Several nodes: a state lives in the node that started the sign-in; with a load balancer in
front, sign-ins need session affinity for ``/oauth/*``.
"""

from __future__ import annotations

__all__ = ["DEFAULT_CALLBACK_PATH", "START_LINK_LIFETIME", "STATE_LIFETIME", "PendingSignIn",
           "PendingSignIns", "StartLinks", "callback_paths", "redirect_uri_for"]

import hashlib
import hmac
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from daemon.config.units import MINUTES
from daemon.oauth.provider import FlowRefused, Started

STATE_LIFETIME = 10 * MINUTES
START_LINK_LIFETIME = 30 * MINUTES
DEFAULT_CALLBACK_PATH = "/oauth/callback"


@dataclass(frozen=True)
class PendingSignIn:
    """A sign-in between start and callback."""

    account: str
    app: str
    started: Started
    created_at: float


class PendingSignIns:
    """States handed out once each, expiring after :data:`STATE_LIFETIME`."""

    def __init__(self, now: Callable[[], float]) -> None:
        self._now = now
        self._by_state: dict[str, PendingSignIn] = {}

    def add(self, pending: PendingSignIn) -> None:
        cutoff = self._now() - STATE_LIFETIME
        self._by_state = {s: p for s, p in self._by_state.items() if p.created_at > cutoff}
        self._by_state[pending.started.state] = pending

    def take(self, state: str | None) -> PendingSignIn:
        """The sign-in ``state`` belongs to, forgotten at once (a second use is refused).

        Raises:
            FlowRefused: no state, an unknown or already used one, or an expired one.
        """
        if not state:
            raise FlowRefused("the callback carries no state")
        pending = self._by_state.pop(state, None)
        if pending is None:
            raise FlowRefused("unknown or already used state; start the sign-in again")
        if self._now() - pending.created_at > STATE_LIFETIME:
            raise FlowRefused("the sign-in took longer than 10 minutes; start again")
        return pending

    def __len__(self) -> int:
        return len(self._by_state)


class StartLinks:
    """One-time start links for ``postroom authenticate`` (see the module docstring)."""

    def __init__(self, secret_key: bytes, now: Callable[[], float]) -> None:
        self._key = HKDF(algorithm=hashes.SHA256(), length=32, salt=None,
                         info=b"postroom oauth start link v1").derive(secret_key)
        self._now = now
        self._used: dict[str, float] = {}

    def make(self, account: str) -> str:
        expires = int(self._now() + START_LINK_LIFETIME)
        nonce = secrets.token_urlsafe(12)
        return f"{expires}.{nonce}.{self._mac(account, expires, nonce)}"

    def check(self, account: str, token: str) -> None:
        """Accept ``token`` once for ``account``.

        Raises:
            FlowRefused: forged, for another account, expired, or used before.
        """
        expires_text, _, rest = token.partition(".")
        nonce, _, mac = rest.partition(".")
        if not expires_text.isdigit() or not hmac.compare_digest(
                mac, self._mac(account, int(expires_text), nonce)):
            raise FlowRefused("the start link is not valid for this account")
        now = self._now()
        if int(expires_text) < now:
            raise FlowRefused("the start link has expired; run postroom authenticate again")
        self._used = {n: e for n, e in self._used.items() if e >= now}
        if nonce in self._used:
            raise FlowRefused("the start link was used already")
        self._used[nonce] = int(expires_text)

    def _mac(self, account: str, expires: int, nonce: str) -> str:
        message = f"{account}|{expires}|{nonce}".encode()
        return hmac.new(self._key, message, hashlib.sha256).hexdigest()


def redirect_uri_for(app: Any, public_base_url: str) -> str:
    """The app's ``redirect_uri``, else ``<public_base_url>/oauth/callback``."""
    return app.redirect_uri or f"{public_base_url.rstrip('/')}{DEFAULT_CALLBACK_PATH}"


def callback_paths(config: Any) -> list[str]:
    """Every path the callback must be served at, the default one first."""
    paths = [DEFAULT_CALLBACK_PATH]
    for app in config.oauth_apps:
        path = urlsplit(redirect_uri_for(app, config.daemon.public_base_url)).path
        if path and path not in paths:
            paths.append(path)
    return paths
