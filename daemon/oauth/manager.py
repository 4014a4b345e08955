"""The daemon's OAuth side: sign-ins, access tokens on demand, and what /status shows.

State owned (one :class:`OAuthManager` per daemon, used from the Trio thread only):

* each OAuth account's :class:`~daemon.oauth.tokens.Grant`, cached in memory, stored sealed
  in the account's checkpoints;
* sign-ins in progress (:class:`~daemon.oauth.flow.PendingSignIns`) and used start links;
* accounts that need a human to sign in (never did, or the grant died), with the reason;
* apps that are failing (their own credentials refused), with the reason.

Access tokens. :meth:`OAuthManager.access_token` answers from memory while the token has
more than :data:`REFRESH_AHEAD` left, else refreshes through the provider in a worker
thread, **one refresh at a time per account** (a per-account lock: a thousand logins of
the same account cause one refresh), and stores the new grant sealed. What a refusal
means is decided by the ``error`` field (:func:`daemon.oauth.provider.classify`):

* ``invalid_grant`` and friends: the account needs a new sign-in
  (:class:`~daemon.errors.ReauthenticationRequired`; the actor parks in ``auth_error``
  with a re-authenticate link in /status);
* ``invalid_client`` / ``unauthorized_client``: the *app* is failing. It is logged once
  (``oauth.app.failing``), every account on it shows it, and no further request goes to
  the provider for that app until the daemon restarts with a fixed configuration (a
  client secret past ``client_secret_expires`` counts as failing from the start);
* 429, 5xx, network: :class:`~daemon.oauth.provider.ProviderUnavailable`, a
  ``TransientError``: the supervisor backs off and retries.

Cancellation: a refresh in its worker thread is abandoned if cancelled (the grant in the
store is unchanged, so the next call refreshes again); a sign-in's grant is stored in one
transaction or not at all.
"""

from __future__ import annotations

__all__ = ["REFRESH_AHEAD", "OAuthManager", "SignedIn"]

import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date
from typing import TYPE_CHECKING, Any
from urllib.parse import urlencode

import structlog
import trio

from daemon.config import Account, Config, OAuthApp, Secret
from daemon.config.units import HOURS, MINUTES
from daemon.errors import OAuthAppFailing, PostroomError, ReauthenticationRequired
from daemon.oauth.expiry import app_warnings, secret_days_left
from daemon.oauth.flow import PendingSignIn, PendingSignIns, StartLinks, redirect_uri_for
from daemon.oauth.google import GoogleProvider
from daemon.oauth.microsoft import MicrosoftProvider
from daemon.oauth.provider import FlowRefused, Provider
from daemon.oauth.tokens import Grant, GrantUnreadable, TokenCipher, load_grant, save_grant

if TYPE_CHECKING:
    from daemon.graph.client import TokenProvider

log = structlog.get_logger("postroom.oauth")

#: Refresh when the access token has less than this left.
REFRESH_AHEAD = 5 * MINUTES
_DAY = 24 * HOURS


@dataclass(frozen=True)
class SignedIn:
    """What the callback page shows: the mailbox and who signed in for it."""

    account: str
    mailbox: str
    user: str


class OAuthManager:
    """See the module docstring.

    Args:
        config: the daemon's configuration.
        store: an :class:`~daemon.store.AsyncStore`.
        secret_key: the daemon's key material (tokens are sealed with a key derived
            from it).
        now: epoch seconds (tests move it to expire tokens).
        today: the date for secret expiry (tests fix it).
        wake: called with an account id when a sign-in completes (the daemon wakes the
            account's actor).
    """

    def __init__(self, config: Config, store: Any, secret_key: bytes, *,
                 now: Callable[[], float] = time.time,
                 today: Callable[[], date] = date.today,
                 wake: Callable[[str], None] = lambda account: None) -> None:
        self.config = config
        self.store = store
        self.cipher = TokenCipher(secret_key)
        self.links = StartLinks(secret_key, now)
        self.pending = PendingSignIns(now)
        self.wake = wake
        self._now = now
        self._today = today
        self._grants: dict[str, Grant] = {}
        self._locks: dict[str, trio.Lock] = {}
        self.needs_sign_in: dict[str, str] = {}
        self.app_failures: dict[str, str] = {}
        self._providers: dict[str, Provider] = {}
        for app in config.oauth_apps:
            days = self.secret_days_left(app)
            if days is not None and days < 0:
                self.app_failures[app.id] = (f"the client secret expired on "
                                             f"{app.client_secret_expires}")

    # -- who is who ----------------------------------------------------------------------

    def app_of(self, account_id: str) -> OAuthApp | None:
        """The OAuth app the account authenticates with, or None (not an OAuth account)."""
        try:
            connection = self.config.connection_for(account_id)
        except KeyError:
            return None
        return connection if isinstance(connection, OAuthApp) else None

    def provider(self, app: OAuthApp) -> Provider:
        if app.id not in self._providers:
            assert app.client_secret is not None
            kind = MicrosoftProvider if app.provider == "microsoft" else GoogleProvider
            self._providers[app.id] = kind(app, app.client_secret, now=self._now)
        return self._providers[app.id]

    def start_url(self, account_id: str, *, link: str | None = None) -> str:
        """The daemon's own ``/oauth/start`` URL for the account (with a start link)."""
        query = {"account": account_id} | ({"link": link} if link else {})
        return (f"{self.config.daemon.public_base_url.rstrip('/')}/oauth/start?"
                f"{urlencode(query)}")

    # -- the sign-in ---------------------------------------------------------------------

    async def begin(self, account_id: str) -> str:
        """Start a sign-in; the provider URL to send the browser to.

        Raises:
            FlowRefused: not an OAuth account, or its app is failing.
            ProviderUnavailable: the provider could not be reached (Entra discovery).
        """
        app = self.app_of(account_id)
        if app is None:
            raise FlowRefused(f"account {account_id!r} does not sign in with OAuth")
        if app.id in self.app_failures:
            raise FlowRefused(f"oauth app {app.id!r} is failing: {self.app_failures[app.id]}")
        account = self.config.account(account_id)
        redirect_uri = redirect_uri_for(app, self.config.daemon.public_base_url)
        started = await trio.to_thread.run_sync(self.provider(app).begin, account.email,
                                                redirect_uri)
        self.pending.add(PendingSignIn(account_id, app.id, started, self._now()))
        log.info("oauth.signin.started", account=account_id, app=app.id)
        return started.auth_url

    async def finish(self, params: dict[str, str]) -> SignedIn:
        """Complete a sign-in from the callback's parameters; store the grant sealed.

        Raises:
            FlowRefused: wrong, replayed or expired state, no verifier, the provider's
                refusal, a grant that lacks what the account needs. Nothing is stored.
        """
        pending = self.pending.take(params.get("state"))
        app = self.app_of(pending.account)
        assert app is not None and app.id == pending.app
        try:
            grant = await trio.to_thread.run_sync(self._finish_in_thread, app, pending,
                                                  params)
        except OAuthAppFailing as exc:
            self._app_failing(app, str(exc))
            raise FlowRefused(str(exc)) from None
        except PostroomError as exc:
            raise FlowRefused(str(exc)) from None
        await self.store.run(lambda tx: save_grant(tx, self.cipher, grant))
        self._grants[pending.account] = grant
        self.needs_sign_in.pop(pending.account, None)
        log.info("oauth.signin.done", account=pending.account, app=app.id, user=grant.user)
        self.wake(pending.account)
        return SignedIn(pending.account, self.config.account(pending.account).email,
                        grant.user)

    def _finish_in_thread(self, app: OAuthApp, pending: PendingSignIn,
                          params: dict[str, str]) -> Grant:
        return self.provider(app).finish(pending.started, params, account=pending.account)

    # -- tokens --------------------------------------------------------------------------

    async def grant(self, account_id: str) -> Grant | None:
        """The account's grant (memory, else the store), or None before any sign-in.

        Raises:
            ReauthenticationRequired: the stored grant does not open with the secret key
                (it changed without ``postroom rekey-oauth``).
        """
        if account_id not in self._grants:
            try:
                found = await self.store.run(lambda tx: load_grant(tx, self.cipher,
                                                                   account_id))
            except GrantUnreadable:
                reason = ("the stored sign-in does not open with the current secret key "
                          "(run postroom rekey-oauth with the old key, or sign in again)")
                self.needs_sign_in[account_id] = reason
                raise ReauthenticationRequired(reason, account=account_id) from None
            if found is None:
                return None
            self._grants[account_id] = found
        return self._grants[account_id]

    async def access_token(self, account_id: str, *, force_refresh: bool = False) -> Secret:
        """A valid access token for the account; refreshed first when due (or forced).

        A checkpoint. One refresh at a time per account: a second caller waits and gets
        the refreshed token.

        Raises:
            ReauthenticationRequired: no grant, or the provider says it is dead.
            OAuthAppFailing: the app's credentials are refused.
            ProviderUnavailable: try again later.
        """
        app = self.app_of(account_id)
        if app is None:
            raise ValueError(f"account {account_id!r} does not sign in with OAuth")
        lock = self._locks.setdefault(account_id, trio.Lock())
        async with lock:
            self._raise_if_failing(app, account_id)
            grant = await self.grant(account_id)
            if grant is None:
                reason = "not signed in yet"
                self.needs_sign_in.setdefault(account_id, reason)
                raise ReauthenticationRequired(f"{reason}: open {self.start_url(account_id)}",
                                               account=account_id)
            if not force_refresh and grant.expires_at - self._now() > REFRESH_AHEAD:
                return Secret(grant.access_token)
            return Secret((await self._refresh(app, grant)).access_token)

    async def _refresh(self, app: OAuthApp, grant: Grant) -> Grant:
        try:
            fresh = await trio.to_thread.run_sync(self.provider(app).refresh, grant,
                                                  abandon_on_cancel=True)
        except ReauthenticationRequired as exc:
            self.needs_sign_in[grant.account] = str(exc)
            log.warning("oauth.grant.dead", account=grant.account, app=app.id, reason=str(exc))
            raise
        except OAuthAppFailing as exc:
            self._app_failing(app, str(exc))
            raise OAuthAppFailing(self._failing_text(app), account=grant.account) from None
        await self.store.run(lambda tx: save_grant(tx, self.cipher, fresh))
        self._grants[grant.account] = fresh
        log.info("oauth.token.refreshed", account=grant.account, app=app.id,
                 expires_in=round(fresh.expires_at - self._now()))
        return fresh

    def _raise_if_failing(self, app: OAuthApp, account_id: str) -> None:
        if app.id in self.app_failures:
            raise OAuthAppFailing(self._failing_text(app), account=account_id)

    def _failing_text(self, app: OAuthApp) -> str:
        return f"oauth app {app.id!r} is failing: {self.app_failures[app.id]}"

    def _app_failing(self, app: OAuthApp, reason: str) -> None:
        if app.id not in self.app_failures:
            self.app_failures[app.id] = reason
            accounts = [a.id for a in self.config.accounts if a.auth == app.id]
            log.error("oauth.app.failing", app=app.id, reason=reason, accounts=accounts)

    # -- what the outside sees -----------------------------------------------------------

    def graph_tokens(self, account: Account, app: OAuthApp) -> TokenProvider:
        """The Graph actor's and transport's token source for ``account`` (``api`` apps).

        Each call gives a valid access token, refreshed first when due; it raises
        :class:`~daemon.errors.ReauthenticationRequired` without a grant.
        """
        del app  # the account names its app; kept for the GraphTokens signature

        async def token() -> str:
            return (await self.access_token(account.id)).reveal()
        return token

    def sending_refusal(self, account_id: str) -> str | None:
        """Why the account cannot send now (the send API refuses at once), or None."""
        app = self.app_of(account_id)
        if app is None:
            return None
        if app.id in self.app_failures:
            return self._failing_text(app)
        if account_id in self.needs_sign_in:
            return (f"account {account_id!r} cannot send: {self.needs_sign_in[account_id]}; "
                    f"sign in at {self.start_url(account_id)}")
        return None

    def account_notes(self, account_id: str) -> dict[str, Any]:
        """The ``oauth`` entry of the account in /status (None for other accounts)."""
        app = self.app_of(account_id)
        if app is None:
            return {}
        notes: dict[str, Any] = {"app": app.id, "provider": app.provider}
        grant = self._grants.get(account_id)
        if grant is not None:
            notes["user"] = grant.user
        if account_id in self.needs_sign_in or grant is None:
            notes["authenticate"] = self.start_url(account_id)
            notes["reason"] = self.needs_sign_in.get(account_id, "not signed in yet")
        if app.id in self.app_failures:
            notes["app_error"] = self._failing_text(app)
        notes.update(self._app_warnings(app))
        return {"oauth": notes}

    def apps_status(self) -> list[dict[str, Any]]:
        """One entry per app for /status: failing or not, secret expiry."""
        entries = []
        for app in self.config.oauth_apps:
            entry: dict[str, Any] = {"app": app.id, "name": app.display_name,
                                     "provider": app.provider,
                                     "failing": app.id in self.app_failures,
                                     "error": self.app_failures.get(app.id),
                                     "client_secret_days_left": self.secret_days_left(app)}
            entry.update(self._app_warnings(app))
            entries.append(entry)
        return entries

    def secret_days_left(self, app: OAuthApp) -> int | None:
        return secret_days_left(app, self._today())

    def warnings(self) -> list[tuple[str, str]]:
        """``(app id, text)`` for every app whose secret expires soon or that is Testing."""
        found = []
        for app in self.config.oauth_apps:
            for text in self._app_warnings(app).get("warnings", []):
                found.append((app.id, text))
        return found

    def _app_warnings(self, app: OAuthApp) -> dict[str, Any]:
        texts = app_warnings(app, self._today())
        return {"warnings": texts} if texts else {}

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED
                  ) -> None:
        """Log the apps' warnings now and once a day, until cancelled."""
        task_status.started()
        while True:
            for app_id, text in self.warnings():
                log.warning("oauth.app.warning", app=app_id, warning=text)
            await trio.sleep(_DAY)
