"""The mailbox actor of an ``imap_smtp`` OAuth account: wait for consent, then IMAP XOAUTH2.

State owned: nothing beyond :mod:`daemon.actors.imap`'s (this wraps it) and the account's
:class:`~daemon.actors.status.AccountStatus` while waiting.

Receives: wake-ups on ``handle.wakeups``; a completed sign-in wakes the account
(:class:`~daemon.oauth.manager.OAuthManager` calls the daemon's ``wake``).

States: ``needs_authentication`` while the account has no grant (valid configuration,
not an error: no restart loop, the start link is in /status), then the IMAP actor's
states. A grant that dies later is ``auth_error`` (set by the supervisor, which parks at
once on :class:`~daemon.errors.ReauthenticationRequired`).

Errors: as :func:`daemon.actors.imap.run_imap_account`, plus the token errors the login
step raises (``ReauthenticationRequired``, ``OAuthAppFailing``, a transient
``ProviderUnavailable``).

Cancellation: at any checkpoint, as the IMAP actor.
"""

from __future__ import annotations

__all__ = ["run_oauth_imap_account"]

from functools import partial
from typing import Any

import structlog
import trio

from daemon.actors.imap import run_imap_account
from daemon.actors.status import AccountHandle, AccountState
from daemon.config import Account, OAuthApp
from daemon.imap.login import xoauth2_login
from daemon.oauth.manager import OAuthManager

log = structlog.get_logger("postroom.oauth")


async def run_oauth_imap_account(account: Account, app: OAuthApp, *, oauth: OAuthManager,
                                 handle: AccountHandle,
                                 task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED,
                                 **imap: Any) -> None:
    """Wait (visibly) until the account has a grant, then run the IMAP actor with XOAUTH2.

    Args:
        account, app: the account and its ``imap_smtp`` OAuth app (whose mail servers
            are used).
        oauth: the daemon's OAuth manager (tokens, sign-in state).
        handle: the account's status and wake-up channel.
        task_status: ``started()`` once waiting for consent or logged in.
        imap: passed on to :func:`~daemon.actors.imap.run_imap_account` (``submit``,
            ``submit_many``, ``store``).
    """
    started = False
    while await oauth.grant(account.id) is None:
        oauth.needs_sign_in.setdefault(account.id, "not signed in yet")
        handle.status.set_state(AccountState.NEEDS_AUTHENTICATION,
                                f"not signed in yet: open {oauth.start_url(account.id)}")
        log.warning("oauth.account.needs_authentication", account=account.id,
                    start=oauth.start_url(account.id))
        if not started:
            started = True
            task_status.started()
        await handle.wakeups.receive()
    login = xoauth2_login(account.email, partial(oauth.access_token, account.id))
    await run_imap_account(account, app.mail_servers(), login=login, handle=handle,
                           task_status=trio.TASK_STATUS_IGNORED if started else task_status,
                           **imap)
