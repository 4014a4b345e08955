"""A whole daemon with OAuth accounts: config writer, a browser that consents, a clock.

``write_oauth_config`` writes a postroom.toml whose ``imap_smtp`` app points at an
emulator (:mod:`tests.fakes.entra` or :mod:`tests.fakes.google_oauth`) for its endpoints
and at the test Dovecot and SMTP server for mail. :func:`consent` plays the browser:
``/oauth/start`` -> the emulator's authorize page -> back to the daemon's callback
(query or form_post), returning the callback's answer.
"""

from __future__ import annotations

import html
import json
import re
import shutil
import ssl
import textwrap
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

REPO = Path(__file__).resolve().parents[2]
DEMO = REPO / "config" / "demo"

ACCOUNTS = (("support", "ann@contoso.example"), ("sales", "bob@contoso.example"))


@dataclass
class Clock:
    """Epoch seconds with a movable offset, for the OAuth manager's token expiry."""

    offset: float = 0.0

    def __call__(self) -> float:
        import time

        return time.time() + self.offset


def write_oauth_config(root: Path, *, port: int, app: str, dovecot: Any, smtp: Any = None,
                       accounts: tuple[tuple[str, str], ...] = ACCOUNTS,
                       redirect_uri: str | None = None, extra_app: str = "",
                       api_token: bool = False) -> Path:
    shutil.copy(DEMO / "seed.json", root / "seed.json")
    runtime = json.loads((DEMO / "runtime.json").read_text())
    runtime["conversationParents"][0]["accounts"] = [a for a, _ in accounts]
    (root / "runtime.json").write_text(json.dumps(runtime))
    if api_token:
        (root / "api-token").write_text("api-token-for-oauth-tests")
    smtp_lines = (f'smtp_host = "127.0.0.1"\nsmtp_port = {smtp.port}\nsmtp_tls = "none"'
                  if smtp is not None else 'smtp_host = "127.0.0.1"\nsmtp_tls = "none"')
    accounts_toml = "".join(textwrap.dedent(f"""
        [[accounts]]
        id = "{account}"
        email = "{email}"
        auth = "m365"
        backoff_cap_seconds = 0.5
        """) for account, email in accounts)
    redirect = f'redirect_uri = "{redirect_uri}"' if redirect_uri else ""
    token = 'api_token_file = "api-token"' if api_token else ""
    (root / "postroom.toml").write_text(textwrap.dedent(f"""\
        [daemon]
        store = "sqlite:///postroom.db"
        runtime = "runtime.json"
        seed_objects = "seed.json"
        public_base_url = "http://127.0.0.1:{port}"
        shutdown_grace_seconds = 5

        [http]
        bind = "127.0.0.1:{port}"
        {token}

        [[oauth_apps]]
        id = "m365"
        name = "Contoso"
        client_secret_env = "TEST_OAUTH_SECRET"
        base_scope = "imap_smtp"
        imap_host = "127.0.0.1"
        imap_port = {dovecot.imap_port}
        imap_tls = "none"
        {redirect}
        """) + app + "\n" + smtp_lines + "\n" + extra_app + "\n" + accounts_toml)
    return root / "postroom.toml"


def entra_app(entra: Any, client_id: str) -> str:
    return textwrap.dedent(f"""\
        provider = "microsoft"
        client_id = "{client_id}"
        tenant_id = "contoso"
        authority_base_url = "{entra.base_url}"
        ca_file = "{entra.ca_file}"
        """)


def google_app(google: Any, client_id: str) -> str:
    return textwrap.dedent(f"""\
        provider = "google"
        client_id = "{client_id}"
        authorize_url = "{google.authorize_url}"
        token_url = "{google.token_url}"
        ca_file = "{google.ca_file}"
        """)


_INPUT = re.compile(r'<input type="hidden" name="([^"]+)" value="([^"]*)">')
_ACTION = re.compile(r'<form method="post" action="([^"]+)">')


async def follow_to_callback(authorize_url: str, ca_file: Path) -> httpx.Response:
    """Visit the provider's authorize URL and go back to the callback as a browser does."""
    context = ssl.create_default_context(cafile=str(ca_file))
    async with httpx.AsyncClient(verify=context, trust_env=False) as idp:
        page = await idp.get(authorize_url)
    async with httpx.AsyncClient(trust_env=False) as browser:
        if page.status_code == 302:
            return await browser.get(page.headers["location"])
        action = html.unescape(_ACTION.search(page.text).group(1))
        form = {k: html.unescape(v) for k, v in _INPUT.findall(page.text)}
        return await browser.post(action, data=form)


async def consent(base_url: str, account: str, ca_file: Path, *,
                  headers: dict[str, str] | None = None) -> httpx.Response:
    async with httpx.AsyncClient(base_url=base_url, trust_env=False) as client:
        start = await client.get("/oauth/start", params={"account": account},
                                 headers=headers or {})
    assert start.status_code == 302, start.text
    return await follow_to_callback(start.headers["location"], ca_file)


@dataclass
class Running:
    daemon: Any
    base: str
    path: Path

    async def get(self, url: str, **kwargs: Any) -> httpx.Response:
        async with httpx.AsyncClient(base_url=self.base, trust_env=False) as client:
            return await client.get(url, **kwargs)

    async def post(self, url: str, **kwargs: Any) -> httpx.Response:
        async with httpx.AsyncClient(base_url=self.base, trust_env=False) as client:
            return await client.post(url, **kwargs)

    async def stored_grant(self, account: str) -> str | None:
        from daemon.oauth.tokens import GRANT_KEY

        return await self.daemon.store.run(lambda tx: tx.get_checkpoint(account, GRANT_KEY))


@asynccontextmanager
async def running_daemon(path: Path, environ: dict[str, str]) -> AsyncIterator[Running]:
    """Run the daemon of ``path`` in the test's Trio run; stop it on the way out."""
    import trio

    from daemon.app import run_daemon
    from daemon.config import load_config

    config = load_config(path, environ=environ)
    stop = trio.Event()
    async with trio.open_nursery() as nursery:
        daemon = await nursery.start(lambda task_status: run_daemon(
            config, stop=stop, handle_signals=False, task_status=task_status))
        try:
            yield Running(daemon, config.daemon.public_base_url, path)
        finally:
            stop.set()
