"""The OAuth commands of the ``postroom`` CLI: ``authenticate`` and ``rekey-oauth``.

Both run outside the daemon. ``authenticate`` prints a one-time start link (see
:class:`~daemon.oauth.flow.StartLinks`) for operators without the admin page;
``rekey-oauth`` re-encrypts every stored grant after the secret key changed (the daemon
must be stopped, so nothing writes a grant with the old key meanwhile).
"""

from __future__ import annotations

__all__ = ["accounts_warnings", "authenticate", "rekey"]

import hashlib
import sys
import time
from datetime import date
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

from daemon.config import OAuthApp, load_secret_key
from daemon.oauth.expiry import app_warnings
from daemon.oauth.flow import START_LINK_LIFETIME, StartLinks
from daemon.oauth.tokens import GrantUnreadable, TokenCipher, reseal_grants


def authenticate(config: Any, account_id: str) -> int:
    """Print the start link for ``account_id``; the exit code."""
    try:
        connection = config.connection_for(account_id)
    except KeyError as exc:
        print(exc.args[0], file=sys.stderr)
        return 1
    if not isinstance(connection, OAuthApp):
        print(f"account {account_id!r} does not sign in with OAuth", file=sys.stderr)
        return 1
    link = StartLinks(load_secret_key(config), time.time).make(account_id)
    query = urlencode({"account": account_id, "link": link})
    print(f"{config.daemon.public_base_url.rstrip('/')}/oauth/start?{query}")
    print(f"Open it in a browser within {int(START_LINK_LIFETIME // 60)} minutes; it works "
          "once.", file=sys.stderr)
    return 0


def rekey(config: Any, old_key_file: Path) -> int:
    """Re-seal every grant from the key in ``old_key_file`` to the configured one."""
    from daemon.store import open_store

    old_text = old_key_file.read_text().strip()
    old = TokenCipher(hashlib.sha256(old_text.encode()).digest())
    new = TokenCipher(load_secret_key(config))
    store = open_store(config.daemon.store)
    try:
        with store.transaction() as tx:
            count = reseal_grants(tx, old, new, [a.id for a in config.accounts])
    except GrantUnreadable as exc:
        print(f"{exc}: is {old_key_file} the previous key? Nothing was changed.",
              file=sys.stderr)
        return 1
    finally:
        store.close()
    print(f"re-encrypted {count} OAuth grant{'s' if count != 1 else ''}")
    return 0


def accounts_warnings(config: Any) -> list[str]:
    """The lines ``postroom accounts`` prints under its table."""
    return [f"warning: oauth app {app.id}: {text}" for app in config.oauth_apps
            for text in app_warnings(app, date.today())]
